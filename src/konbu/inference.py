"""Batched inference on uint8 images: normalise on the device, forward, return float32 logits.

Validation during training, `konbu evaluate` and `konbu predict` all go through `logits()`, so the
normalisation a model was trained with is the one it is evaluated and served with.
"""

import torch

from .device import autocast


def normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 ((x / 255) - mean) / std, per channel, on images' device."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    # one fused multiply-add instead of three passes: x * (1 / (255 std)) - mean / std
    return torch.addcmul(-mean / std, images.float(), 1.0 / (255.0 * std))


# Batches of 256: on a 2-core CPU, chollet-mnist's 4,000 images took 1.0 s in batches of 1,000 and 0.52 s
# in batches of 256 (fp32; the activations of a large batch spill out of the caches); 64 gained nothing more
BATCH_SIZE = 256


@torch.inference_mode()
def logits(model, images: torch.Tensor, mean, std, device=None, precision="fp32", batch_size=BATCH_SIZE,
           channels_last=False) -> torch.Tensor:
    """Logits [N, K] (float32, on the CPU) for uint8 images [N, C, H, W], in eval mode."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    if was_training:   # eval() and train() walk every module: ~0.3 ms, a fifth of a one-image predict
        model.eval()
    outputs = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = normalise(images[start:start + batch_size].to(device, non_blocking=True), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                outputs.append(model(x).float().cpu())
    finally:
        if was_training:
            model.train()
    if not outputs:
        return torch.empty(0, getattr(model, "num_classes", 0))
    return torch.cat(outputs)
