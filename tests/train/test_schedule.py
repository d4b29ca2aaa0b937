"""Learning-rate schedules against their formulas, and the rate logged every step."""

import math

import pytest
import torch

from konbu.errors import UnknownNameError
from konbu.train.schedule import make_schedule


def rates(name, total, base=0.1):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    schedule = make_schedule(name, optimizer, total)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return seen


def test_cosine_follows_its_formula():
    seen = rates("cosine", 10)
    assert seen == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * s / 10)) for s in range(10)])
    assert seen[0] == pytest.approx(0.1) and seen == sorted(seen, reverse=True)


def test_constant_and_unknown():
    assert rates("constant", 5) == [0.1] * 5
    with pytest.raises(UnknownNameError, match="cosine"):
        rates("zigzag", 5)
