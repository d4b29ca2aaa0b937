"""Optimizers by name with Keras's defaults, and the update rules against their formulas."""

import subprocess
import sys

import pytest
import torch

from konbu.errors import ConfigError, UnknownNameError
from konbu.train.optim import OPTIMIZERS, default_lr, make_optimizer


def parameter(value=1.0):
    return torch.nn.Parameter(torch.tensor([value]))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_steps_downhill(name):
    p = parameter(2.0)
    optimizer = make_optimizer(name, [p])
    for _ in range(5):
        optimizer.zero_grad()
        (p ** 2).sum().backward()
        optimizer.step()
    assert p.item() < 2.0


def test_keras_defaults():
    assert {name: default_lr(name) for name in OPTIMIZERS} == {"sgd": 1e-2, "adam": 1e-3, "adamw": 1e-3,
                                                              "rmsprop": 1e-3, "adadelta": 1.0}
    rmsprop = make_optimizer("rmsprop", [parameter()]).defaults
    assert rmsprop["alpha"] == 0.9 and rmsprop["eps"] == 1e-7
    assert make_optimizer("adamw", [parameter()]).defaults["weight_decay"] == 0.004
    assert make_optimizer("adamw", [parameter()], weight_decay=0.0).defaults["weight_decay"] == 0.0
    assert make_optimizer("adadelta", [parameter()]).defaults["rho"] == 0.95
    assert make_optimizer("adam", [parameter()]).defaults["weight_decay"] == 0.0


def test_sgd_nesterov_momentum_follows_its_formula():
    p = parameter(1.0)
    optimizer = make_optimizer("sgd", [p], lr=0.1, momentum=0.9, nesterov=True)
    value, velocity = 1.0, 0.0
    for _ in range(3):
        optimizer.zero_grad()
        (p ** 2).sum().backward()          # gradient 2p
        optimizer.step()
        gradient = 2 * value
        velocity = 0.9 * velocity + gradient
        value -= 0.1 * (gradient + 0.9 * velocity)   # PyTorch's (Sutskever) Nesterov
        assert p.item() == pytest.approx(value, rel=1e-6)


def test_weight_decay_pulls_towards_zero_without_a_gradient():
    p = parameter(1.0)
    optimizer = make_optimizer("sgd", [p], lr=0.1, weight_decay=0.5)
    p.grad = torch.zeros(1)
    optimizer.step()
    assert p.item() == pytest.approx(1.0 - 0.1 * 0.5)


def test_bad_combinations():
    with pytest.raises(ConfigError, match="--momentum"):
        make_optimizer("sgd", [parameter()], nesterov=True)
    with pytest.raises(ConfigError, match="sgd and rmsprop"):
        make_optimizer("adam", [parameter()], momentum=0.9)
    with pytest.raises(UnknownNameError, match="adadelta"):
        make_optimizer("adagrad-ish", [parameter()])


# ----------------------------------------------------------------------------- the same arithmetic as torch.optim

TORCH_TWINS = {   # konbu's rule with Keras's defaults -> the torch.optim class with the same settings
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3, fused=True),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01, eps=1e-7, weight_decay=1e-3, fused=True),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01, eps=1e-7, weight_decay=0.004, fused=True),
    "rmsprop": lambda params: torch.optim.RMSprop(params, lr=0.01, alpha=0.9, eps=1e-7, momentum=0.5,
                                                  weight_decay=1e-3, foreach=True),
    "adadelta": lambda params: torch.optim.Adadelta(params, lr=1.0, rho=0.95, eps=1e-7, weight_decay=1e-3,
                                                    foreach=True),
}
KONBU_SETTINGS = {"sgd": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
                  "adam": dict(lr=0.01, weight_decay=1e-3), "adamw": dict(lr=0.01),
                  "rmsprop": dict(lr=0.01, momentum=0.5, weight_decay=1e-3), "adadelta": dict(weight_decay=1e-3)}


def small_cnn(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3))
    return model.to(memory_format=torch.channels_last)     # konbu trains channels_last: strided states


def train_steps(model, optimizer, steps=6, seed=1):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 1, 8, 8, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_rule_matches_torch_optim_to_the_bit(name):
    ours, theirs = small_cnn(), small_cnn()
    konbu_optimizer = make_optimizer(name, ours.parameters(), **KONBU_SETTINGS[name])
    torch_optimizer = TORCH_TWINS[name](list(theirs.parameters()))
    train_steps(ours, konbu_optimizer)
    train_steps(theirs, torch_optimizer)
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(mine, reference)
    for mine, reference in zip(konbu_optimizer.state.values(), torch_optimizer.state.values()):
        assert mine.keys() == reference.keys()
        assert all(torch.equal(mine[key], reference[key]) for key in mine)


@pytest.mark.parametrize("name", ["rmsprop", "adam", "sgd"])
def test_state_dicts_cross_between_konbu_and_torch(name):
    """A checkpoint written before konbu had its own optimizers (torch.optim's state_dict) resumes
    exactly, and konbu's loads into torch.optim: the same layout."""
    ours, theirs = small_cnn(), small_cnn()
    torch_optimizer = TORCH_TWINS[name](list(theirs.parameters()))
    train_steps(theirs, torch_optimizer, steps=3)
    ours.load_state_dict(theirs.state_dict())
    konbu_optimizer = make_optimizer(name, ours.parameters(), **KONBU_SETTINGS[name])
    konbu_optimizer.load_state_dict(torch_optimizer.state_dict())
    train_steps(ours, konbu_optimizer, steps=3, seed=2)
    train_steps(theirs, torch_optimizer, steps=3, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))

    again = TORCH_TWINS[name](list(small_cnn().parameters()))
    again.load_state_dict(konbu_optimizer.state_dict())
    assert torch.equal(again.state_dict()["state"][0]["step" if name != "sgd" else "momentum_buffer"],
                       konbu_optimizer.state_dict()["state"][0]["step" if name != "sgd" else "momentum_buffer"])


def test_a_group_that_starts_later_starts_its_momentum_then():
    """--fine-tune: the backbone's parameters get gradients only once unfrozen; their velocity starts
    at their own first gradient, as torch.optim.SGD's does, while the head's keeps going."""
    models = small_cnn(), small_cnn()
    optimizers = [make_optimizer("sgd", [{"params": m[0].parameters()}, {"params": m[3].parameters()}],
                                 lr=0.05, momentum=0.9) for m in models[:1]]
    optimizers.append(torch.optim.SGD([{"params": models[1][0].parameters()}, {"params": models[1][3].parameters()}],
                                      lr=0.05, momentum=0.9, foreach=True))
    for model, optimizer in zip(models, optimizers):
        model[0].requires_grad_(False)                  # frozen: no gradient, no state, no step
        train_steps(model, optimizer, steps=2)
        assert all(p not in optimizer.state for p in model[0].parameters())
        model[0].requires_grad_(True)
        train_steps(model, optimizer, steps=3, seed=2)
    for mine, reference in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(mine, reference, rtol=1e-6, atol=1e-7)


def _snapshot(model, optimizer):
    return ([p.detach().clone() for p in model.parameters()],
            [{k: v.clone() for k, v in state.items()} for state in optimizer.state.values()])


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a[0], b[0])) and len(a[1]) == len(b[1]) and all(
        s.keys() == t.keys() and all(torch.equal(s[k], t[k]) for k in s) for s, t in zip(a[1], b[1]))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_a_skipped_step_changes_nothing_and_the_next_is_a_normal_one(name):
    """The divergence guard's device-side skip (a NaN gradient, as after a blown-up loss): no
    parameter, buffer or step count moves, also on a first step, and later steps are exactly those
    of an optimizer that never saw the skipped one."""
    skipping, plain = small_cnn(), small_cnn()
    plain.load_state_dict(skipping.state_dict())
    settings = KONBU_SETTINGS[name] if name != "sgd" else {"lr": 0.05, "momentum": 0.9, "nesterov": True}
    optimizers = [make_optimizer(name, m.parameters(), **settings) for m in (skipping, plain)]
    assert optimizers[0].can_skip
    on, off = torch.ones((), dtype=torch.float32), torch.zeros((), dtype=torch.float32)
    for first in (True, False):
        before = _snapshot(skipping, optimizers[0])
        for p in skipping.parameters():
            p.grad = torch.full_like(p, float("nan"))
        optimizers[0].step(skip=on)
        after = _snapshot(skipping, optimizers[0])
        if first:   # the state is made, as it was before any step: zeros, no step counted
            assert all(torch.equal(a, b) for a, b in zip(before[0], after[0]))
            assert after[1] and all(not v.any() for state in after[1] for v in state.values())
        else:
            assert _same(before, after)
        generator = torch.Generator().manual_seed(3 if first else 4)
        x, y = torch.randn(8, 1, 8, 8, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        for model, optimizer, skip in ((skipping, optimizers[0], off), (plain, optimizers[1], None)):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step(skip=skip)
        assert _same(_snapshot(skipping, optimizers[0]), _snapshot(plain, optimizers[1]))


@pytest.mark.parametrize("name", ["rmsprop", "adadelta"])
def test_rules_without_a_device_skip_refuse_one(name):
    model = small_cnn()
    optimizer = make_optimizer(name, model.parameters())
    train_steps(model, optimizer, steps=1)
    assert not optimizer.can_skip
    with pytest.raises(ValueError, match="cannot skip"):
        optimizer.step(skip=torch.zeros(()))


def test_a_saved_state_for_other_groups_is_refused():
    optimizer = make_optimizer("adam", small_cnn().parameters())
    other = make_optimizer("adam", list(small_cnn().parameters())[:2])
    with pytest.raises(ValueError, match="other parameter groups"):
        optimizer.load_state_dict(other.state_dict())


def test_a_negative_rate_is_a_config_error():
    with pytest.raises(ConfigError, match="learning rate"):
        make_optimizer("rmsprop", [parameter()], lr=-0.1)


def test_training_never_imports_the_compiler():
    """Building and stepping every optimizer, and fitting a temperature, leave torch._dynamo
    unimported (seconds of start-up on a small CPU); a fresh interpreter tells."""
    code = ("import sys, torch\n"
            "from konbu.train.optim import OPTIMIZERS, make_optimizer\n"
            "from konbu.inspect.calibration import fit_temperature\n"
            "p = torch.nn.Parameter(torch.ones(3))\n"
            "for name in OPTIMIZERS:\n"
            "    o = make_optimizer(name, [p]); (p ** 2).sum().backward(); o.step(); o.zero_grad()\n"
            "fit_temperature(torch.randn(50, 4), torch.randint(0, 4, (50,)))\n"
            "print('torch._dynamo' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
