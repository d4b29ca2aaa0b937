"""Optimizers by name with Keras's defaults, and the update rules against their formulas."""

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
