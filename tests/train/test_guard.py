"""The divergence guard: fires on NaN and on a loss far above its recent median, never on a healthy
run; a run it stops keeps its best weights, says why in run.json and still loads."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import konbu
import konbu.device
from konbu.runs import Run
from konbu.train import epoch as epoch_module
from konbu.train import events as events_module
from konbu.train.guard import DeviceGuard, DivergenceGuard, make_guard
from konbu.train.optim import make_optimizer


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


# ----------------------------------------------------------------------------- the same rule on the device

def _float32(values):
    return [float(torch.tensor(v, dtype=torch.float32)) for v in values]


SEQUENCES = {
    "healthy, then worse than guessing": [2.3, 1.5, 0.8, 0.4, 0.2] + [0.05] * 50 + [0.6] + [0.05] * 10
                                         + [3.0, 3.5, 4.0, 4.0, 4.0],
    "nan first": [float("nan")],
    "inf second": [2.3, math.inf],
    "blows up on step 2": [2.3, 5e4],
    "stuck at ln 10": [math.log(10)] * 200,
    "a long run, then a jump": [2.3 * 0.99 ** i + 0.1 * ((i * 7919) % 13) / 13 for i in range(300)] + [40.0] * 6,
}


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_the_device_guard_decides_as_the_host_guard(name):
    host, device = DivergenceGuard(10, num_classes=10), DeviceGuard(10, num_classes=10, device=torch.device("cpu"))
    expected = None
    for step, loss in enumerate(_float32(SEQUENCES[name]), 1):
        skip = device.watch(torch.tensor(loss, dtype=torch.float32), step)
        reason = host.check(loss)
        assert skip.item() == (1.0 if expected or reason else 0.0)       # skipped from the firing step on
        expected = expected or (reason and (step, reason))
    if expected:                           # the loop reads the verdict some steps later: still the firing step's
        for step in range(step + 1, step + 10):
            assert device.watch(torch.tensor(0.05), step).item() == 1.0
    fired = device.verdict()
    assert (fired and (fired.step, fired.reason)) == expected
    if expected is None:                   # the same history, in the host guard's layout
        assert device.state_dict() == host.state_dict()


def test_guard_states_cross_between_host_and_device():
    """A checkpoint's guard state resumes under either guard with the same decisions."""
    losses = _float32(SEQUENCES["a long run, then a jump"])
    host = DivergenceGuard(10, num_classes=10)
    for loss in losses[:150]:
        host.check(loss)
    device = DeviceGuard(10, num_classes=10, device=torch.device("cpu"))
    device.load_state_dict(json.loads(json.dumps(host.state_dict())))
    assert device.state_dict() == host.state_dict()
    again = DivergenceGuard(10, num_classes=10)
    again.load_state_dict(device.state_dict())
    for step, loss in enumerate(losses[150:], 151):
        device.watch(torch.tensor(loss), step)
        reason = host.check(loss)
        assert again.check(loss) == reason
        if reason:
            break
    assert device.verdict() == (step, reason) and step == 301


def test_make_guard_reads_the_loss_on_the_host_where_the_step_waits_anyway():
    def optimizer(name):
        return make_optimizer(name, [torch.nn.Parameter(torch.zeros(1))])
    meta = torch.device("meta")            # a device that runs ahead of the host, as a GPU does
    assert isinstance(make_guard(10, 10, meta, optimizer("sgd")), DeviceGuard)
    assert isinstance(make_guard(10, 10, meta, optimizer("adamw")), DeviceGuard)
    assert isinstance(make_guard(10, 10, meta, optimizer("rmsprop")), DivergenceGuard)   # no device skip
    assert isinstance(make_guard(10, 10, torch.device("cpu"), optimizer("sgd")), DivergenceGuard)
    assert make_guard(0, 10, meta, optimizer("sgd")) is None


@pytest.mark.parametrize("sync_every", [epoch_module.SYNC_EVERY, 1000])
def test_a_run_stopped_on_the_device_is_the_run_stopped_on_the_host(tmp_path, monkeypatch, sync_every):
    """The device-side guard, made to run on the CPU: the same stop, steps, metrics and weights as
    the host check, also when the loop learns of it only at the epoch's end (the skipped steps are
    then forgotten), and the live metrics.jsonl, appended at every step, never shows a skipped one."""
    settings = dict(model="tfjs-mnist", dataset="tiny-mnist", epochs=3, batch_size=32, threads=2, optimizer="sgd",
                    momentum=0.9, lr_schedule="0:1e-2,12:1e3", quiet=True)
    host = konbu.fit(**settings, out=str(tmp_path / "host"))
    monkeypatch.setattr(konbu.device, "IN_HOST_TIME", ())          # as on a GPU: the device runs ahead
    monkeypatch.setattr(epoch_module, "SYNC_EVERY", sync_every)
    watched, watch = [], DeviceGuard.watch

    def watching(guard, loss, step):
        watched.append(step)
        return watch(guard, loss, step)
    monkeypatch.setattr(DeviceGuard, "watch", watching)
    monkeypatch.setattr(events_module, "LIVE_INTERVAL", 0)
    events, live = [], set()

    def listen(event):
        events.append(event)
        if event.kind == "batch":   # metrics.jsonl as a follower reads it after this step's append
            lines = (tmp_path / "device" / "metrics.jsonl").read_text().splitlines()
            live.update(json.loads(line)["step"] for line in lines if json.loads(line)["kind"] == "batch")
    device = konbu.fit(**settings, out=str(tmp_path / "device"), listeners=[listen])
    stopped = device.info["stopped"]
    assert stopped == host.info["stopped"] and stopped["reason"] == "diverged" and stopped["epoch"] == 2
    assert [e.kind for e in events][-2:] == ["stop", "end"]
    assert watched[0] == 1 and watched[-1] > stopped["step"]       # the device rule; steps past the firing one skipped
    assert max(live) == stopped["step"] - 1
    records = [(tmp_path / name / "metrics.jsonl").read_text().splitlines() for name in ("host", "device")]
    strip = [[{k: v for k, v in json.loads(line).items() if k not in ("seconds", "images_per_second")}
              for line in lines] for lines in records]
    assert strip[0] == strip[1] and strip[1][-1]["step"] == stopped["step"] - 1
    for run in (host, device):
        best = load_file(run.path / "weights.safetensors")
        assert all(torch.equal(best[k], v) for k, v in load_file(host.path / "weights.safetensors").items())
