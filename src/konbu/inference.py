"""Batched inference on uint8 images: normalise on the device, forward, return float32 logits.

Validation during training, `konbu evaluate` and `konbu predict` all go through `logits()`, so the
normalisation a model was trained with is the one it is evaluated and served with.

Test-time augmentation (`tta`) averages the logits of altered copies of each image: "flip" the
image and its mirror image, "flip-shift" airbench's (half the flip pair, and a quarter each the flip
pairs of the image moved one pixel up-left and one down-right, edges reflected). It is for
evaluation (a run's `--tta`, `konbu evaluate --tta`); `konbu predict` answers from one pass.
"""

import torch
import torch.nn.functional as F

from .device import autocast
from .train.config import check_tta


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 ((x / 255) - mean) / std, per channel, on images' device."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    # one fused multiply-add instead of three passes: x * (1 / (255 std)) - mean / std
    return torch.addcmul(-mean / std, images.float(), 1.0 / (255.0 * std))


# Batches of 256: on a 2-core CPU, chollet-mnist's 4,000 images took 1.0 s in batches of 1,000 and 0.52 s
# in batches of 256 (fp32; the activations of a large batch spill out of the caches); 64 gained nothing more
BATCH_SIZE = 256


def _augmented(model, x: torch.Tensor, tta: str, channels_last: bool) -> torch.Tensor:
    """The model's float32 logits for normalised x, averaged over the `tta` views."""
    def forward(view):
        if channels_last:
            view = view.contiguous(memory_format=torch.channels_last)
        return model(view).float()

    if tta == "none":
        return forward(x)

    def flip_pair(view):
        return 0.5 * (forward(view) + forward(view.flip(3)))

    out = flip_pair(x)
    if tta == "flip":
        return out
    height, width = x.shape[2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return 0.5 * out + 0.25 * (flip_pair(padded[..., :height, :width]) + flip_pair(padded[..., 2:, 2:]))


@torch.inference_mode()
def logits(model, images: torch.Tensor, mean, std, device=None, precision="fp32", batch_size=BATCH_SIZE,
           channels_last=False, tta: str = "none") -> torch.Tensor:
    """Logits [N, K] (float32, on the CPU) for uint8 images [N, C, H, W], in eval mode, averaged over
    the `tta` views (TTA)."""
    check_tta(tta, "tta")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    if was_training:   # eval() and train() walk every module: ~0.3 ms, a fifth of a one-image predict
        model.eval()
    outputs = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = normalise(images[start:start + batch_size].to(device, non_blocking=True), mean, std)
            with autocast(device, precision):
                outputs.append(_augmented(model, x, tta, channels_last).cpu())
    finally:
        if was_training:
            model.train()
    if not outputs:
        return torch.empty(0, getattr(model, "num_classes", 0))
    return torch.cat(outputs)
