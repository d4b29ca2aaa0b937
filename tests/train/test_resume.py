"""Exact resume: a run interrupted at step k and resumed ends bit-identical to one that never
stopped (--deterministic, CPU), with metrics.jsonl continuing without duplicates."""

import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

import konbu
from konbu.errors import ConfigError
from konbu.runs import Run, read_metrics

# everything that draws random numbers or keeps state across steps: shuffling, dropout (deep-mnist
# style spec below), augmentation, EMA, lookahead, a momentum optimizer, a schedule with warm-up, and
# what changes by epoch (a whitening bias that trains in epoch 1 only)
LAYERS = [{"type": "whiten", "use_bias": True}, {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
          {"type": "maxpool2d", "pool_size": 2}, {"type": "flatten"}, {"type": "dropout", "rate": 0.3},
          {"type": "dense", "units": "classes"}]
SETTINGS = dict(dataset="tiny-mnist", epochs=3, batch_size=32, threads=2, deterministic=True, precision="fp32",
                device="cpu", optimizer="sgd", lr=0.05, momentum=0.9, lr_schedule="cosine", warmup=5,
                augment="rotate=10,shift=0.1", ema=0.9, lookahead=0.9, dropout_schedule="0:0.1,12:0.4",
                whiten_bias_epochs=1, quiet=True)


class InterruptAt:
    """A listener that presses Ctrl-C at the batch event of step `step` (or the event of epoch `epoch`)."""

    def __init__(self, step=None, epoch=None, signal_at=None):
        self.step, self.epoch, self.signal_at = step, epoch, signal_at

    def __call__(self, event):
        if event.kind == "batch" and event.data["step"] == self.step:
            raise KeyboardInterrupt
        if event.kind == "batch" and event.data["step"] == self.signal_at:
            os.kill(os.getpid(), signal.SIGINT)     # a real Ctrl-C: fit stops once this step is complete
        if event.kind == "epoch" and event.data["record"]["epoch"] == self.epoch:
            raise KeyboardInterrupt


def spec_file(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps(LAYERS))
    return str(path)


def train(out, **extra):
    return konbu.fit(**{**SETTINGS, **extra, "out": str(out)})


def same_weights(a, b):
    wa, wb = load_file(a), load_file(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module", autouse=True)
def model_file(tmp_path_factory):
    SETTINGS["model"] = spec_file(tmp_path_factory.mktemp("spec"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train(tmp_path_factory.mktemp("resume") / "whole")


# ceil(270 / 32) = 9 steps an epoch: mid-epoch; an epoch's last step; while its epoch record is logged
@pytest.mark.parametrize("where, stop_at", [({"step": 14}, 14), ({"step": 18}, 18), ({"epoch": 2}, 18),
                                            ({"signal_at": 5}, 5)])
def test_interrupted_and_resumed_run_is_bit_identical(uninterrupted, tmp_path, where, stop_at):
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(out, listeners=[InterruptAt(**where)])
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["interrupted"]["step"] == stop_at
    state = json.loads((out / "last.ckpt" / "state.json").read_text())
    assert state["step"] == stop_at and not state["epoch_done"]
    resumed = konbu.fit(resume=str(out), quiet=True)
    for name in ("last.ckpt/model.safetensors", "last.ckpt/ema.safetensors", "last.ckpt/lookahead.safetensors",
                 "weights.safetensors"):
        assert same_weights(uninterrupted.path / name, resumed.path / name), name
    steps = [r["step"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "batch"]
    assert steps == list(range(1, 28))                                     # every step once
    whole = [r for r in read_metrics(uninterrupted.path / "metrics.jsonl") if r["kind"] == "batch"]
    again = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "batch"]
    assert [(r["loss"], r["lr"]) for r in whole] == [(r["loss"], r["lr"]) for r in again]
    assert resumed.info["status"] == "finished" and resumed.info["resumed"][0]["step"] == stop_at
    assert resumed.info["final"]["test_accuracy"] == uninterrupted.info["final"]["test_accuracy"]
    assert Run.load(out).evaluate()["n"] == 100


def test_checkpoint_every_writes_mid_epoch_state(tmp_path):
    seen = []

    def watch(event):   # the batch event of step 5 comes after step 4's checkpoint
        if event.kind == "batch" and event.data["step"] == 5:
            folder = tmp_path / "r" / "last.ckpt"
            seen.append((json.loads((folder / "state.json").read_text()), load_file(folder / "progress.safetensors")))
    train(tmp_path / "r", epochs=1, checkpoint_every=4, listeners=[watch])
    state, progress = seen[0]
    assert state["step"] == 4 and state["batch"] == 4 and not state["epoch_done"] and len(state["records"]) == 4
    assert sorted(progress["order"].tolist()) == list(range(270))      # the epoch's shuffle, saved
    final = json.loads((tmp_path / "r" / "last.ckpt" / "state.json").read_text())
    assert final["epoch_done"] and final["step"] == 9
    assert not (tmp_path / "r" / "last.ckpt" / "progress.safetensors").exists()


def test_resume_refuses_a_finished_run_or_other_settings(uninterrupted, tmp_path):
    with pytest.raises(ConfigError, match="finished"):
        konbu.fit(resume=str(uninterrupted.path), quiet=True)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(out, listeners=[InterruptAt(step=3)])
    with pytest.raises(ConfigError, match="epochs 3 \\(run\\) vs 5 \\(given\\)"):
        konbu.fit(resume=str(out), epochs=5, quiet=True)
    with pytest.raises(ConfigError, match="leave out --out"):
        konbu.fit(resume=str(out), out=str(tmp_path / "elsewhere"), quiet=True)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(out)
    resumed = konbu.fit(resume=str(out), threads=1, quiet=True)   # threads may change: speed, not numbers
    assert resumed.info["status"] == "finished"


def test_another_seed_gives_other_weights(uninterrupted, tmp_path):
    # (the same seed gives the same bits: the interrupted runs above are separate runs that match)
    other = train(tmp_path / "other", seed=1, epochs=1)
    assert not same_weights(uninterrupted.path / "weights.safetensors", other.path / "weights.safetensors")
    assert not torch.are_deterministic_algorithms_enabled()   # fit restores the global switch


def ctrl_c_while_finishing(monkeypatch, presses: int):
    """Press Ctrl-C `presses` times once the last step is done, while the run is being finished."""
    from konbu.train import loop

    finish = loop.finish_run

    def pressed_then_finish(*args, **kwargs):
        for _ in range(presses):
            os.kill(os.getpid(), signal.SIGINT)
        return finish(*args, **kwargs)
    monkeypatch.setattr(loop, "finish_run", pressed_then_finish)


def test_one_ctrl_c_after_the_last_step_lets_the_run_finish(uninterrupted, tmp_path, monkeypatch):
    """The web app's stop button can land during the test evaluation: the run still ends finished
    (not "running" forever, not resumable), with the weights of a run nobody stopped."""
    ctrl_c_while_finishing(monkeypatch, 1)
    run = train(tmp_path / "run")
    assert run.info["status"] == "finished" and (tmp_path / "run" / "report.html").is_file()
    assert same_weights(run.path / "weights.safetensors", uninterrupted.path / "weights.safetensors")


def test_a_second_ctrl_c_while_finishing_stops_and_resume_finishes(uninterrupted, tmp_path, monkeypatch):
    ctrl_c_while_finishing(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "interrupted"
    monkeypatch.undo()
    run = konbu.fit(resume=str(tmp_path / "run"), quiet=True)
    assert run.info["status"] == "finished" and run.info["final"] == uninterrupted.info["final"]
    assert same_weights(run.path / "weights.safetensors", uninterrupted.path / "weights.safetensors")


@pytest.mark.parametrize("marks", ["create_run", "mark_resumed"])
def test_a_ctrl_c_just_after_run_json_says_running_still_marks_it_interrupted(uninterrupted, tmp_path, monkeypatch,
                                                                              marks):
    """The web app stops a job as soon as run.json says it runs: a press between that write and the
    first step is kept for after the step, so the run ends "interrupted" (and resumable), never
    "running" with no process training it."""
    from konbu.train import loop

    out = tmp_path / "run"
    if marks == "mark_resumed":
        with pytest.raises(KeyboardInterrupt):
            train(out, listeners=[InterruptAt(step=4)])
    write = getattr(loop, marks)

    def written_then_pressed(*args, **kwargs):
        info = write(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return info
    monkeypatch.setattr(loop, marks, written_then_pressed)
    with pytest.raises(KeyboardInterrupt):
        konbu.fit(resume=str(out), quiet=True) if marks == "mark_resumed" else train(out)
    info = json.loads((out / "run.json").read_text())
    first = 5 if marks == "mark_resumed" else 1
    assert info["status"] == "interrupted" and info["interrupted"]["step"] == first   # one more step, then stop
    monkeypatch.undo()
    run = konbu.fit(resume=str(out), quiet=True)
    assert run.info["status"] == "finished" and run.info["final"] == uninterrupted.info["final"]
    assert same_weights(run.path / "weights.safetensors", uninterrupted.path / "weights.safetensors")
