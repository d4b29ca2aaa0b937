"""The divergence guard: fires on NaN and on a loss far above its recent median, never on a healthy
run; a run it stops keeps its best weights, says why in run.json and still loads."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import konbu
from konbu.runs import Run
from konbu.train.guard import DivergenceGuard


def test_guard_rules():
    guard = DivergenceGuard(10, num_classes=10)
    healthy = [2.3, 1.5, 0.8, 0.4, 0.2] + [0.05] * 50 + [0.6] + [0.05] * 10   # one hard batch (0.6) is fine
    assert all(guard.check(loss) is None for loss in healthy)
    assert "nan" in DivergenceGuard(10, 10).check(float("nan"))
    assert "inf" in DivergenceGuard(10, 10).check(math.inf)
    reasons = [guard.check(loss) for loss in [3.0, 3.5, 4.0, 4.0, 4.0]]   # back to worse than guessing
    assert reasons[:2] == [None, None] and reasons[-1] and "worse than guessing" in reasons[-1]
    early = DivergenceGuard(10, num_classes=10)
    assert early.check(2.3) is None and early.check(5e4) is not None     # blows up on step 2
    flat = DivergenceGuard(10, num_classes=10)                           # zero init: stuck at ln 10, not diverged
    assert all(flat.check(math.log(10)) is None for _ in range(200))
    restored = DivergenceGuard(10, num_classes=10)
    restored.load_state_dict(json.loads(json.dumps(guard.state_dict())))
    assert restored.state_dict() == guard.state_dict()


def test_forced_lr_1e3_stops_and_keeps_the_best_epoch(tmp_path):
    # one healthy epoch (9 steps) at 1e-3, then the rate jumps to 1e3
    run = konbu.fit(model="tfjs-mnist", dataset="tiny-mnist", epochs=3, batch_size=32, threads=2,
                    lr_schedule="0:1e-3,9:1e3", out=str(tmp_path / "r"), quiet=True)
    stopped = run.info["stopped"]
    assert stopped["reason"] == "diverged" and stopped["epoch"] == 2 and stopped["step"] > 9
    assert stopped["lr"] == 1e3 and stopped["suggested_lr"] == 100 and "--lr 1e+02" in stopped["message"]
    assert run.info["best_epoch"] == 1 and run.info["status"] == "finished"
    # the saved weights are epoch 1's: the same as the checkpoint written at the end of epoch 1
    best, last = load_file(run.path / "weights.safetensors"), load_file(run.path / "last.ckpt" / "model.safetensors")
    assert all(torch.equal(best[k], last[k]) for k in best)
    assert json.loads((run.path / "last.ckpt" / "state.json").read_text())["epoch"] == 1
    loaded = Run.load(run.path)
    metrics = loaded.evaluate()
    assert math.isfinite(metrics["loss"]) and metrics["accuracy"] == pytest.approx(run.info["final"]["test_accuracy"])


def test_forced_lr_1e3_from_the_start_keeps_the_initial_weights(tmp_path):
    events = []
    run = konbu.fit(model="tfjs-mnist", dataset="tiny-mnist", epochs=2, lr=1e3, lr_schedule="constant", threads=2,
                    out=str(tmp_path / "r"), quiet=True, listeners=[events.append])
    assert run.info["stopped"]["reason"] == "diverged" and run.info["stopped"]["step"] <= 3
    assert run.info["best_epoch"] == 0          # no epoch beat the initial weights before it blew up
    assert [e.kind for e in events][-2:] == ["stop", "end"]
    metrics = Run.load(run.path).evaluate()
    assert math.isfinite(metrics["loss"]) and metrics["loss"] < 3     # untrained, not exploded


def test_guard_off_lets_it_run(tmp_path):
    run = konbu.fit(model="softmax", dataset="tiny-mnist", epochs=1, lr=1e3, lr_schedule="constant", guard=0,
                    threads=2, out=str(tmp_path / "r"), quiet=True)
    assert "stopped" not in run.info
