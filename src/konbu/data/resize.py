"""Resizing whole datasets at once: uint8 [N, C, H, W] -> uint8 [N, C, size, size].

    small = resize_images(images, 28)
    fitted = fit_images(images, (3, 32, 32))   # another model's input: size and channels (konbu train --from-run)

Batched tensor ops (bilinear with antialiasing, torchvision's `Resize` on tensors) in chunks, not
a per-image PIL loop: ETL9G's hiragana alone are 284,000 images of 128x127.
"""

import torch
import torch.nn.functional as F

CHUNK = 4096   # images per interpolate call: bounds the float32 copy to ~270 MB at 128x128


def resize_images(images: torch.Tensor, size) -> torch.Tensor:
    """Stretch every image to `size` x `size`, or to (height, width) (bilinear, antialiased when shrinking)."""
    height, width = tuple(size) if isinstance(size, (tuple, list, torch.Size)) else (size, size)
    if tuple(images.shape[-2:]) == (height, width):
        return images
    out = torch.empty((images.shape[0], images.shape[1], height, width), dtype=torch.uint8)
    for start in range(0, images.shape[0], CHUNK):
        chunk = images[start:start + CHUNK].float()
        resized = F.interpolate(chunk, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + CHUNK] = resized.round().clamp(0, 255).to(torch.uint8)
    return out


# ITU-R BT.601 luma, what PIL's convert("L") uses: a colour photo becomes the grey a person would see
LUMA = (0.299, 0.587, 0.114)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repeating the one channel; RGB -> grey by luminance (LUMA); else unchanged.
    Any other pair (e.g. 4 channels) has no meaning to convert by: ValueError."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    if have == 3 and channels == 1:
        out = torch.empty((images.shape[0], 1, *images.shape[2:]), dtype=torch.uint8)
        weights = torch.tensor(LUMA).view(1, 3, 1, 1)
        for start in range(0, images.shape[0], CHUNK):   # chunks: a float copy of all of CIFAR is 600 MB
            grey = (images[start:start + CHUNK].float() * weights).sum(dim=1, keepdim=True)
            out[start:start + CHUNK] = grey.round().clamp(0, 255).to(torch.uint8)
        return out
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels (only grey <-> RGB)")


def fit_images(images: torch.Tensor, shape) -> torch.Tensor:
    """Images brought to `shape` (C, H, W): resized as --image-size does, channels converted."""
    return resize_images(convert_channels(images, shape[0]), tuple(shape[1:]))
