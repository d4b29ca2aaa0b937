"""net.Stack: an activation followed by a max-pool runs pool-first, with the same numbers."""

import pytest
import torch
from torch import nn

from konbu.models import build_model, model_spec
from konbu.models.net import Stack


def _pair(model):
    """The model, and a copy whose Stacks run in the written order (plain nn.Sequential)."""
    import copy
    plain = copy.deepcopy(model)
    for module in plain.modules():
        if isinstance(module, Stack):
            module.__class__ = nn.Sequential
    return model, plain


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "leaky_relu", "sigmoid"])
def test_pooling_first_gives_the_same_outputs_and_gradients(activation):
    torch.manual_seed(0)
    spec = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": activation},
            {"type": "maxpool2d", "pool_size": 2, "padding": "same"},
            {"type": "flatten"}, {"type": "dense", "units": "classes"}]
    fast, plain = _pair(build_model({"name": "t", "layers": spec, "source": "test"}, (1, 9, 9), 3))
    x = torch.randn(5, 1, 9, 9)
    outputs = [model(x) for model in (fast, plain)]
    assert torch.allclose(outputs[0], outputs[1], atol=1e-6)
    for output in outputs:
        output.square().sum().backward()
    for a, b in zip(fast.parameters(), plain.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)


def test_the_activation_runs_on_the_pooled_map():
    model = build_model(model_spec("chollet-mnist"), (1, 28, 28), 10)
    seen = []
    original = torch.nn.functional.relu

    def counting(x, *args, **kwargs):
        seen.append(tuple(x.shape))
        return original(x, *args, **kwargs)

    torch.nn.functional.relu = counting
    try:
        model(torch.randn(2, 1, 28, 28))
    finally:
        torch.nn.functional.relu = original
    assert seen[0] == (2, 32, 13, 13)   # after the pool, not the conv's 26x26


def test_a_hooked_activation_sees_its_full_map():
    """Feature maps and Grad-CAM hook the activation: then the pair runs in the written order."""
    model = build_model(model_spec("chollet-mnist"), (1, 28, 28), 10)
    shapes = []
    handle = model.module_named("conv2d_relu").register_forward_hook(lambda m, a, out: shapes.append(out.shape))
    model(torch.randn(2, 1, 28, 28))
    handle.remove()
    assert shapes == [(2, 32, 26, 26)]
