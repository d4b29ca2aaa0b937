"""Tests for konbu.models.dense: a large dense layer's float32 products on a CPU are oneDNN's, with
nn.Linear's numbers and gradients; everywhere else it is nn.Linear's own forward.

    PYTHONPATH=src python -m pytest tests/models/test_dense.py -q
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from konbu.models import build_net
from konbu.models.dense import ONEDNN_LINEAR, SMALL, Dense


def ops_run(function) -> set:
    """The names of the operators `function()` ran (forward and backward)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        function()
    return {event.key for event in prof.key_averages()}


def twins(in_features, out_features, bias=True):
    """A Dense and an nn.Linear with the same weights."""
    torch.manual_seed(0)
    dense = Dense(in_features, out_features, bias=bias)
    linear = nn.Linear(in_features, out_features, bias=bias)
    linear.load_state_dict(dense.state_dict())
    return dense, linear


@pytest.mark.parametrize("bias", [True, False])
def test_a_large_layer_trains_through_onednn_with_nn_linears_numbers(bias):
    assert ONEDNN_LINEAR is not None             # the project's torch (requirements) is built with oneDNN
    dense, linear = twins(640, 256, bias)        # 163,840 weights: above SMALL
    assert dense.weight.numel() >= SMALL
    x = torch.randn(32, 640, requires_grad=True)
    x_twin = x.detach().clone().requires_grad_()
    target = torch.randn(32, 256)

    def train_step():
        (dense(x) * target).sum().backward()

    ops = ops_run(train_step)
    assert "mkldnn::_linear_pointwise" in ops and not ops & {"aten::addmm", "aten::mm", "aten::linear"}
    (linear(x_twin) * target).sum().backward()
    torch.testing.assert_close(x.grad, x_twin.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dense.weight.grad, linear.weight.grad, rtol=1e-4, atol=1e-4)
    if bias:
        torch.testing.assert_close(dense.bias.grad, linear.bias.grad)
    with torch.inference_mode():
        torch.testing.assert_close(dense(x), linear(x), rtol=1e-4, atol=1e-4)


def test_an_input_without_a_gradient_gets_none():
    dense, _ = twins(640, 256)
    out = dense(torch.randn(4, 640))
    out.sum().backward()
    assert dense.weight.grad is not None and dense.weight.grad.shape == (256, 640)


def test_everywhere_else_it_is_nn_linears_forward():
    small, _ = twins(576, 64)                    # chollet-mnist's dense: the Python would cost more
    assert not small.uses_onednn(torch.randn(2, 576))
    assert "aten::linear" in ops_run(lambda: small(torch.randn(2, 576)))
    large, linear = twins(640, 256)
    assert not large.uses_onednn(torch.randn(2, 3, 640))             # not a matrix
    assert not large.uses_onednn(torch.randn(2, 640, dtype=torch.float64))
    with torch.autocast("cpu", dtype=torch.bfloat16):                # bf16 autocast: its own oneDNN product
        assert not large.uses_onednn(torch.randn(2, 640))
        assert large(torch.randn(2, 640)).dtype == torch.bfloat16
    with pytest.warns(FutureWarning):            # torch.jit is deprecated upstream; `konbu export` still offers it
        traced = torch.jit.trace(large, torch.randn(2, 640))
    assert "mkldnn" not in str(traced.inlined_graph) and "aten::linear" in str(traced.inlined_graph)
    x = torch.randn(3, 640)
    torch.testing.assert_close(traced(x), linear(x), rtol=1e-4, atol=1e-4)


def test_a_spec_dense_layer_is_one_with_nn_linears_state_dict():
    net = build_net([{"type": "flatten"}, {"type": "dense", "units": 300}, {"type": "dense", "units": "classes"}],
                    (1, 28, 28), 10)
    dense = [module for module in net.modules() if isinstance(module, nn.Linear)]
    assert len(dense) == 2 and all(isinstance(module, Dense) for module in dense)
    assert dense[0].uses_onednn(torch.randn(2, 784)) and not dense[1].uses_onednn(torch.randn(2, 300))
    assert set(dense[0].state_dict()) == {"weight", "bias"}
    plain = nn.Linear(784, 300)
    plain.load_state_dict(dense[0].state_dict())
    x = torch.rand(5, 784)
    torch.testing.assert_close(dense[0](x), F.linear(x, plain.weight, plain.bias), rtol=1e-4, atol=1e-4)
