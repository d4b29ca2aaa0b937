"""metrics.csv and TensorBoard are listeners on the one event stream; both continue after a resume
without repeating steps."""

import csv
import sys

import pytest

import konbu
from konbu.errors import KonbuError
from konbu.train import logs
from konbu.train.events import Event

SETTINGS = dict(model="softmax", dataset="tiny-mnist", batch_size=64, threads=2, quiet=True, tensorboard=True)


def scalars(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_csv_and_tensorboard_follow_the_run(tmp_path):
    run = konbu.fit(epochs=2, out=str(tmp_path / "r"), **SETTINGS)
    rows = list(csv.DictReader((run.path / "metrics.csv").open()))
    epochs = run.history
    assert [int(r["epoch"]) for r in rows] == [1, 2] and rows[0].keys() >= {"train_loss", "val_accuracy", "lr"}
    assert float(rows[1]["val_accuracy"]) == pytest.approx(epochs[1]["val_accuracy"])
    loss = scalars(run.path / "tensorboard", "train/loss")
    batch = [r for r in konbu.runs.read_metrics(run.path / "metrics.jsonl") if r["kind"] == "batch"]
    assert [step for step, _ in loss] == [r["step"] for r in batch] == list(range(1, 11))   # 5 steps an epoch
    assert [v for _, v in loss] == pytest.approx([r["loss"] for r in batch], rel=1e-5)
    assert [v for _, v in scalars(run.path / "tensorboard", "train/lr")] == pytest.approx([r["lr"] for r in batch])
    assert [s for s, _ in scalars(run.path / "tensorboard", "epoch/val_accuracy")] == [5, 10]


def test_logs_continue_after_a_resume(tmp_path):
    out = tmp_path / "r"

    def interrupt(event):
        if event.kind == "batch" and event.data["step"] == 7:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        konbu.fit(epochs=2, out=str(out), listeners=[interrupt], **SETTINGS)
    assert [r["epoch"] for r in csv.DictReader((out / "metrics.csv").open())] == ["1"]
    konbu.fit(resume=str(out), quiet=True)
    assert [r["epoch"] for r in csv.DictReader((out / "metrics.csv").open())] == ["1", "2"]
    steps = [step for step, _ in scalars(out / "tensorboard", "train/loss")]
    assert steps == list(range(1, 11))
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 12


def test_missing_tensorboard_is_a_friendly_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # None in sys.modules: import fails
    with pytest.raises(KonbuError, match=r"pip install 'konbu\[tensorboard\]'"):
        logs.TensorBoardLog("unused")


def test_csv_log_is_a_plain_listener(tmp_path):
    log = logs.CsvLog(tmp_path / "m.csv")
    log(Event("start", {}))
    log(Event("batch", {"step": 1}))
    log(Event("epoch", {"record": {"kind": "epoch", "epoch": 1, "step": 3, "train_loss": 0.5, "extra": 1},
                        "batch_records": []}))
    assert (tmp_path / "m.csv").read_text().splitlines() == [",".join(logs.CSV_COLUMNS), "1,3,0.5,,,,,,"]
