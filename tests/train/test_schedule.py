"""Learning-rate and dropout schedules: each curve against its formula (torch's schedulers as the
answer key where torch has one), warm-up, plateau and the spec parser's errors."""

import math

import pytest
import torch

from konbu.errors import ConfigError, UnknownNameError
from konbu.train.schedule import DropoutSchedule, make_schedule, parse_piecewise, piecewise_base_lr


def optimizer_for(base=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)


def rates(spec, total, base=0.1, **kwargs):
    """The rate each of `total` steps runs with, read off the optimizer as the loop does."""
    optimizer = optimizer_for(base)
    schedule = make_schedule(spec, optimizer, total, **kwargs)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return seen


def torch_rates(make, total, base=0.1):
    optimizer = optimizer_for(base)
    scheduler = make(optimizer)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_cosine_follows_its_formula_and_torchs():
    seen = rates("cosine", 10)
    assert seen == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)])
    assert seen == pytest.approx(torch_rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10), 10))
    floor = rates("cosine:min=0.1", 10)
    assert floor == pytest.approx([0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)])


def test_constant_and_unknown():
    assert rates("constant", 5) == [0.1] * 5
    with pytest.raises(UnknownNameError, match="cosine"):
        rates("zigzag", 5)


def test_step_matches_torch_steplr():
    seen = rates("step:every=4,gamma=0.5", 12)
    assert seen == pytest.approx(torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, 4, 0.5), 12))
    assert rates("step", 9) == pytest.approx([0.1] * 3 + [0.01] * 3 + [0.001] * 3)   # thirds, x0.1
    assert rates("step:every_epochs=2", 8, steps_per_epoch=2) == pytest.approx([0.1] * 4 + [0.01] * 4)


def test_onecycle_matches_torch_onecyclelr():
    seen = rates("onecycle", 50, base=0.4)
    expected = torch_rates(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.4, total_steps=50,
                                                                        cycle_momentum=False), 50, base=0.4)
    assert seen == pytest.approx(expected)
    assert max(seen) == pytest.approx(0.4) and seen[0] == pytest.approx(0.4 / 25)


def test_triangle_rises_and_falls_in_straight_lines():
    seen = rates("triangle", 100, base=0.4)
    peak = 23   # 0.23 x 100 steps
    assert seen[0] == pytest.approx(0.08) and max(seen) == pytest.approx(0.4) and seen.index(max(seen)) == peak
    assert seen[:peak + 1] == pytest.approx([0.08 + 0.32 * s / peak for s in range(peak + 1)])
    assert seen[peak:] == pytest.approx([0.4 - (0.4 - 0.028) * (s - peak) / 77 for s in range(peak, 100)])
    assert rates("triangle:pct=0.5,start=0,end=0", 4, base=1.0) == pytest.approx([0.0, 0.5, 1.0, 0.5])
    for spec in ("triangle:pct=0", "triangle:pct=1", "triangle:start=1.5", "triangle:end=-0.1"):
        with pytest.raises(ConfigError, match="out of range"):
            make_schedule(spec, optimizer_for(), 10)


def test_piecewise_by_step_and_by_epoch():
    assert rates("0:1e-3,3:1e-4,5:1e-5", 7) == pytest.approx([1e-3] * 3 + [1e-4] * 2 + [1e-5] * 2)
    assert rates("epoch:0:1e-3,2:1e-4", 6, steps_per_epoch=2) == pytest.approx([1e-3] * 4 + [1e-4] * 2)
    assert piecewise_base_lr("0:1e-3,1000:1e-4") == 1e-3 and piecewise_base_lr("cosine") is None
    assert parse_piecewise("epoch:0:1,5:2", steps_per_epoch=10) == ([0, 50], [1.0, 2.0])


def test_warmup_in_front_of_any_schedule():
    assert rates("constant", 6, warmup=4) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    cosine = rates("cosine", 10, warmup=3)
    assert cosine == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * s / 10)) * min(1, (s + 1) / 3)
                                    for s in range(10)])
    assert rates("0:1e-2,2:1e-3", 4, warmup=2) == pytest.approx([0.005, 0.01, 1e-3, 1e-3])


def test_plateau_reduces_after_patience_epochs():
    optimizer = optimizer_for(0.1)
    schedule = make_schedule("plateau:factor=0.5,patience=2", optimizer, 100)
    losses = [1.0, 0.9, 0.95, 0.92, 0.91, 0.99, 0.98]
    seen = []
    for loss in losses:
        schedule.epoch_end({"val_loss": loss})
        seen.append(optimizer.param_groups[0]["lr"])
    # better at 0.9; two bad epochs -> x0.5; two more -> x0.5 again
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    restored = make_schedule("plateau:factor=0.5,patience=2", optimizer_for(0.1), 100)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr_at(10) == pytest.approx(0.025)
    fallback = make_schedule("plateau:patience=1", optimizer_for(0.1), 100)
    for loss in (1.0, 2.0):                                # no validation: watches train_loss
        fallback.epoch_end({"train_loss": loss})
    assert fallback.lr_at(0) == pytest.approx(0.01)


@pytest.mark.parametrize("spec, message", [
    ("5:1e-3,10:1e-4", "start at 0"), ("0:1e-3,0:1e-4", "start at 0"), ("0:fast", "STEP:VALUE"),
    ("0:-1", "positive"), ("step:gama=0.5", "gamma"), ("step:gamma=x", "number"),
    ("plateau:monitor=val_f1", "monitor"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        make_schedule(spec, optimizer_for(), 10)


def test_dropout_schedule_sets_every_dropout_layer():
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))
    schedule = DropoutSchedule("0:0.0,3000:0.7,10000:0.9")
    assert [schedule.rate_at(s) for s in (0, 2999, 3000, 9999, 10000, 50000)] == [0.0, 0.0, 0.7, 0.7, 0.9, 0.9]
    schedule.apply(model, 3500)
    assert model[0].p == 0.7 and model[2].p == 0.7
    assert DropoutSchedule("epoch:0:0.1,2:0.3", steps_per_epoch=10).rate_at(20) == 0.3
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        DropoutSchedule("0:0.5,10:1.0")
