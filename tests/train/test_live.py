"""Live files: metrics.jsonl grows per batch (appended lines, a prefix of the file each epoch's end
rewrites) and progress.json says where the run is, so a follower in another process sees a run as
it trains. Every test here sets the live interval to 0 (a write at every step) unless it checks the
throttle itself."""

import json

import pytest

import konbu
from konbu.runs import MetricsFollower, read_metrics, read_progress
from konbu.train import events
from konbu.train.events import Event, MetricsLog, ProgressFile, jsonl

# 270 training images (tiny-mnist less its validation split) at batch 64: 5 steps an epoch
SETTINGS = dict(model="softmax", dataset="tiny-mnist", batch_size=64, threads=1, deterministic=True, device="cpu",
                quiet=True)
STEPS_PER_EPOCH = 5


@pytest.fixture(autouse=True)
def live_every_step(monkeypatch):
    monkeypatch.setattr(events, "LIVE_INTERVAL", 0)


class Watch:
    """A listener that reads the run directory from disk at every step, as a follower would, and
    keeps what the epochs' ends say the file holds (what MetricsLog wrote before live appending)."""

    def __init__(self, run_dir, interrupt_at=None):
        self.run_dir, self.interrupt_at = run_dir, interrupt_at
        self.follower = MetricsFollower(run_dir)
        self.followed = []            # what the follower has, resets applied
        self.resets = 0
        self.seen = []                # (step, metrics.jsonl text, progress.json) at each batch event
        self.expected = []            # the records the epochs' ends write

    def __call__(self, event):
        if event.kind == "start":
            self.expected = list(event.data["previous"])
        elif event.kind == "epoch":
            self.expected += event.data["batch_records"] + [event.data["record"]]
        if event.kind == "batch":
            self.seen.append((event.data["step"], (self.run_dir / "metrics.jsonl").read_text(),
                              read_progress(self.run_dir)))
            self.poll()
            if event.data["step"] == self.interrupt_at:
                raise KeyboardInterrupt

    def poll(self):
        reset, records = self.follower.poll()
        self.followed = records if reset else self.followed + records
        self.resets += reset


def batch_steps(text):
    return [r["step"] for r in map(json.loads, text.splitlines()) if r["kind"] == "batch"]


def test_metrics_grow_per_step_and_end_as_the_epochs_write_them(tmp_path):
    watch = Watch(tmp_path / "r")
    konbu.fit(epochs=3, out=str(tmp_path / "r"), listeners=[watch], **SETTINGS)
    final = (tmp_path / "r" / "metrics.jsonl").read_text()
    assert final == jsonl(watch.expected)                   # the same file as without live appending
    records = [json.loads(line) for line in final.splitlines()]
    assert batch_steps(final) == list(range(1, 16))          # in order, each step once
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2, 3]
    for step, text, _ in watch.seen:
        assert text.endswith("\n") and final.startswith(text)   # mid-epoch: whole lines, a prefix of the end
        assert batch_steps(text) == list(range(1, step + 1))    # this epoch's steps so far are already there
    watch.poll()
    assert watch.followed == records


def test_progress_file_mid_run_and_at_the_end(tmp_path):
    watch = Watch(tmp_path / "r")
    konbu.fit(epochs=2, out=str(tmp_path / "r"), listeners=[watch], **SETTINGS)
    for step, _, progress in watch.seen:
        epoch, batch = (step - 1) // STEPS_PER_EPOCH + 1, (step - 1) % STEPS_PER_EPOCH + 1
        assert progress["state"] == "training" and progress["updated"] > 0
        assert [progress[k] for k in ("epoch", "epochs", "step", "total_steps")] == [epoch, 2, step, 10]
        assert (progress["batch"], progress["batches"]) == (batch, STEPS_PER_EPOCH)
        assert progress["images_per_second"] > 0
        assert (progress["eta_seconds"] is None) == (step == 1)   # measurable from the second step on
    end = read_progress(tmp_path / "r")
    assert end["state"] == "finished" and end["step"] == end["total_steps"] == 10 and end["eta_seconds"] == 0


def test_a_resume_leaves_no_step_twice(tmp_path):
    out = tmp_path / "r"
    watch = Watch(out, interrupt_at=7)
    with pytest.raises(KeyboardInterrupt):
        konbu.fit(epochs=3, out=str(out), listeners=[watch], **SETTINGS)
    assert batch_steps((out / "metrics.jsonl").read_text()) == list(range(1, 8))   # step 7: the one interrupted
    progress = read_progress(out)
    assert progress["state"] == "interrupted" and progress["step"] == 7
    # a process killed after its checkpoint leaves steps the resume will take again, and maybe a torn line
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"kind": "batch", "epoch": 2, "step": 8, "loss": 1.0, "accuracy": 0.5, "lr": 0.001}\n{"kind": "ba')
    watch.poll()
    resumed = Watch(out)
    resumed.follower, resumed.followed = watch.follower, watch.followed   # one follower across both processes
    konbu.fit(resume=str(out), quiet=True, listeners=[resumed])
    final = (out / "metrics.jsonl").read_text()
    assert batch_steps(final) == list(range(1, 16)) and final == jsonl(resumed.expected)
    for step, text, _ in resumed.seen:
        assert batch_steps(text) == list(range(1, step + 1))   # never the stale step 8 before the new one
    resumed.poll()
    assert resumed.resets == 1 and resumed.followed == read_metrics(out)   # reset by the resume's shorter file
    assert read_progress(out)["state"] == "finished"


def batch_event(step, records, seconds=1.0):
    return Event("batch", dict(epoch=1, step=step, batch=step, batches=10, records=records, seconds=seconds,
                               images=32 * step))


def test_the_throttle_reads_the_device_only_when_it_writes(tmp_path):
    calls = []

    def records():   # EpochProgress.batch_records: a device sync per call
        calls.append(1)
        return [{"kind": "batch", "epoch": 1, "step": s} for s in range(1, len(calls) + 1)]

    log, progress = MetricsLog(tmp_path / "m.jsonl", interval=60), ProgressFile(tmp_path / "p.json", interval=60)
    start = Event("start", dict(epochs=1, total_steps=10, steps_per_epoch=10, step=0, previous=[]))
    for listener in (log, progress):
        listener(start)
        for step in range(1, 6):
            listener(batch_event(step, records))
    assert len(calls) == 1 and len((tmp_path / "m.jsonl").read_text().splitlines()) == 1   # the first step only
    assert json.loads((tmp_path / "p.json").read_text())["step"] == 0     # as the start wrote it, a moment ago
    progress(Event("stop", dict(reason="early_stopping", step=5, epoch=1)))
    assert json.loads((tmp_path / "p.json").read_text())["step"] == 5     # a stop writes the latest step
    progress(Event("end", dict(final={}, seconds=1.0)))
    assert json.loads((tmp_path / "p.json").read_text())["state"] == "stopped"   # stopped early, then finished
