"""The dense layer: nn.Linear, whose float32 matrix products on a CPU are done by oneDNN.

PyTorch multiplies float32 matrices on a CPU with MKL, and runs convolutions and bfloat16 products
with oneDNN. On the AVX-512 AMD EPYC of the benchmarks MKL's float32 products ran at about AVX2
speed (a 2,048² product: 212 GFLOP/s; oneDNN's convolutions: 400-540): deep-mnist's
3,136 -> 1,024 layer at batch 64 took 2.4 ms forward, 2.4 ms for the input's gradient and 2.2 ms for
the weights' with MKL, and 1.1, 1.0 and 1.0 ms with oneDNN (`torch.ops.mkldnn._linear_pointwise`, the
product inductor calls). So a large layer's three products go to oneDNN; below SMALL weights (576 ->
64 took 0.03 ms either way) the Python of an autograd.Function would cost more than it saves.

Everywhere else it is nn.Linear's own forward: on a GPU, in bf16 autocast (already oneDNN on a
CPU), for a batch that is not a matrix, and while a model is traced, compiled or exported, which
see the standard `linear` op. The parameters and state dict are nn.Linear's.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

SMALL = 1 << 17   # weights; chollet-mnist's 36,864 stay on F.linear, lenet's 1.2M and deep-mnist's 3.2M don't


def _onednn_linear():
    """oneDNN's dense product (x @ w.T + b for x [N, in], w [out, in]), or None in a torch without it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


ONEDNN_LINEAR = _onednn_linear()


def _product(x, w, b=None):
    return ONEDNN_LINEAR(x, w, b, "none", [], "")


class _OneDnnLinear(torch.autograd.Function):
    """F.linear for a matrix x, with all three products by oneDNN (w.T and x.T are strided views)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _product(x, weight, bias)

    @staticmethod
    @once_differentiable   # a gradient of this gradient is refused with an error, never silently wrong
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = _product(grad, weight.t()) if ctx.needs_input_grad[0] else None
        grad_weight = _product(grad.t(), x.t()) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()


class Dense(nn.Linear):
    """nn.Linear; on a CPU in float32 with at least SMALL weights, its products are oneDNN's."""

    def uses_onednn(self, x: torch.Tensor) -> bool:
        weight = self.weight
        return (ONEDNN_LINEAR is not None and not _tracing()   # first: a tracer sees no more of this
                and weight.numel() >= SMALL and x.dim() == 2
                and x.device.type == "cpu" and x.dtype == torch.float32 == weight.dtype
                and type(x) is torch.Tensor            # not a FakeTensor of a non-strict export
                and not torch.is_autocast_enabled("cpu"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uses_onednn(x):
            return _OneDnnLinear.apply(x, self.weight, self.bias)
        return F.linear(x, self.weight, self.bias)
