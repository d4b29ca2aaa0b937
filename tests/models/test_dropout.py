"""Tests for konbu.models.dropout: training on a CPU, each unit is kept with probability 1 - p and
scaled by 1 / (1 - p) from a vectorised uniform draw (not bernoulli_); the seed repeats it; eval
mode, p = 0 and the dropout schedule behave as nn.Dropout's.

    PYTHONPATH=src python -m pytest tests/models/test_dropout.py -q
"""

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from konbu.models import build_net
from konbu.models.dropout import Dropout
from konbu.train.schedule import DropoutSchedule


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.3, 0.5])
def test_each_unit_is_kept_with_probability_one_minus_p_and_scaled(p, dtype):
    layer = Dropout(p).train()
    x = torch.full((1000, 1000), 2.0, dtype=dtype, requires_grad=True)
    out = layer(x)
    assert out.dtype == dtype
    kept = out != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005          # 1M draws: the SD is 0.0005
    torch.testing.assert_close(out[kept].float(), torch.full((int(kept.sum()),), 2.0 / (1 - p)), rtol=1e-2, atol=0)
    out.sum().backward()
    torch.testing.assert_close(x.grad.float(), kept.float() / (1 - p), rtol=1e-2, atol=0)


def test_the_mask_is_drawn_without_bernoulli_and_repeats_with_the_seed():
    layer = Dropout(0.5).train()
    x = torch.randn(64, 1024)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        layer(x)
    ops = {event.key for event in prof.key_averages()}
    assert "aten::uniform_" in ops and "aten::bernoulli_" not in ops
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first)
    assert not torch.equal(layer(x), first)


def test_eval_mode_and_p_zero_pass_the_input_through():
    x = torch.randn(8, 16)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_a_spec_dropout_is_one_and_the_schedule_sets_its_rate():
    net = build_net([{"type": "flatten"}, {"type": "dense", "units": 32}, {"type": "dropout", "rate": 0.5},
                     {"type": "dense", "units": "classes"}], (1, 8, 8), 10)
    dropouts = [module for module in net.modules() if isinstance(module, nn.Dropout)]
    assert len(dropouts) == 1 and isinstance(dropouts[0], Dropout)
    DropoutSchedule("0:0.0,10:0.7").apply(net, 12)
    assert dropouts[0].p == pytest.approx(0.7)
