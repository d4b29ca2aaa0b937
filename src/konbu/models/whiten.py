"""The `whiten` layer's module: airbench's frozen first convolution, fitted to the training images.

    {"type": "whiten", "kernel_size": 2, "epsilon": 0.0005}      # in a model spec (built in layers.py)
    {"type": "whiten", "kernel_size": 2, "use_bias": true}       # ... with a trained bias (airbench's)
    fit_whitening(model, train.images, to_input)                 # before the first step (train.parts)
    train_biases(model, epoch <= 3)                              # --whiten-bias-epochs 3 (train.loop)

Its filters come from the data, not from training, so beside the module itself this holds how they
are fitted: the images as the layer sees them (the layers before it run in eval mode), their patch
covariance, and its eigenvectors.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ModelSpecError


class Whiten(nn.Module):
    """A frozen convolution that whitens the image's k x k patches (airbench's first layer): its
    filters are the eigenvectors of the training patches' covariance, each scaled by 1 / sqrt(its
    eigenvalue + eps), and their negatives, so the next layer sees decorrelated inputs of unit
    variance from the first step. The filters are a buffer, never trained: `fit_whitening` sets them
    from the training images before training (they start at zero), and they are saved with the run.
    With `bias`, a per-channel bias (from zero) is the layer's one parameter: airbench trains it for
    the first epochs only (train_biases), which shifts where the GELU after it bends."""

    def __init__(self, channels: int, kernel: int, eps: float, bias: bool = False):
        super().__init__()
        self.kernel, self.eps = kernel, eps
        out = 2 * channels * kernel * kernel
        self.register_buffer("weight", torch.zeros(out, channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out)) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias)

    @torch.no_grad()
    def fit(self, x: torch.Tensor):
        """Set the filters from images x [N, C, H, W] (normalised, float) as this layer sees them."""
        channels, k = x.shape[1], self.kernel
        size = channels * k * k
        total, products, count = torch.zeros(size, dtype=torch.float64), torch.zeros(size, size, dtype=torch.float64), 0
        for chunk in x.split(500):   # in float64 a chunk's patches take 46 MB (CIFAR): all 5,000 would take 460
            patches = chunk.double().cpu().unfold(2, k, 1).unfold(3, k, 1)   # N, C, H', W', k, k
            patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, size)
            total += patches.sum(0)
            products += patches.T @ patches
            count += patches.shape[0]
        mean = total / count
        covariance = products / count - torch.outer(mean, mean)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)       # ascending: the largest first below
        scale = torch.rsqrt(eigenvalues.flip(0).clamp(min=0) + self.eps)
        filters = (eigenvectors.T.flip(0) * scale[:, None]).reshape(-1, channels, k, k)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight.dtype))


WHITEN_SAMPLE = 5000     # training images the whitening is fitted on (airbench: 5,000)


@torch.no_grad()
def fit_whitening(model: nn.Module, images: torch.Tensor, normalise) -> bool:
    """Fit every Whiten layer of `model`, in order, on the first WHITEN_SAMPLE of uint8 `images` as
    it sees them (`normalise`: uint8 -> the model's float input, then the layers before it); whether
    the model had one."""
    whitens = [module for module in model.modules() if isinstance(module, Whiten)]
    if whitens:
        x = normalise(images[:WHITEN_SAMPLE].to(whitens[0].weight.device)).float()
        for whiten in whitens:
            whiten.fit(_input_of(model, whiten, x))
    return bool(whitens)


def _biases(model: nn.Module) -> list:
    return [module.bias for module in model.modules() if isinstance(module, Whiten) and module.bias is not None]


def train_biases(model: nn.Module, trained: bool) -> bool:
    """Let the biases of `model`'s whitening layers train (or freeze them: no gradient, so the
    optimizer leaves them and their momentum as they are); whether that changed anything (a
    data-parallel wrapper must then be built again), and False for a model without one."""
    biases = _biases(model)
    changed = any(bias.requires_grad != trained for bias in biases)
    for bias in biases:
        bias.requires_grad_(trained)
    return changed


def has_bias(model: nn.Module) -> bool:
    return bool(_biases(model))


class _Reached(Exception):
    def __init__(self, value):
        self.value = value


def _input_of(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What `module` receives when `model` runs on x in eval mode (the pass stops there)."""
    def stop(_, inputs):
        raise _Reached(inputs[0])
    handle, was_training = module.register_forward_pre_hook(stop), model.training
    try:
        model.eval()(x)
    except _Reached as reached:
        return reached.value
    finally:
        handle.remove()
        model.train(was_training)
    raise ModelSpecError("a whitening layer is not on the model's forward path")
