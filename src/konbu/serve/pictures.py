"""Tensors -> PNG data URLs, the form the web app's JSON carries images in.

A 28x28 digit is ~300 bytes as PNG: small enough to send dozens inline, so a view of mistakes or
of a confusion cell is one request. The page enlarges them with `image-rendering: pixelated`.
"""

import base64
import io

import numpy as np
import torch
from PIL import Image


def png_bytes(image) -> bytes:
    """A uint8 tensor [C, H, W] (C = 1 or 3) or [H, W], a numpy array [H, W] or [H, W, 3] (as PIL
    holds images), or a PIL image -> PNG bytes."""
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy()
        image = array[0] if array.ndim == 3 and array.shape[0] == 1 else array.transpose(1, 2, 0) \
            if array.ndim == 3 else array
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.ascontiguousarray(np.asarray(image).astype(np.uint8)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)   # speed over size: these are tiny
    return buffer.getvalue()


def data_url(image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def scaled(values: torch.Tensor, limit: float | None = None) -> torch.Tensor:
    """Float [.., H, W] -> uint8 for display: 0..max (or -limit..limit to 0..255 when `limit`)."""
    values = values.detach().float().cpu()
    if limit is not None:
        return ((values / max(limit, 1e-12)).clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8)
    top = float(values.max()) if values.numel() else 0.0
    return (values.clamp(min=0) / max(top, 1e-12) * 255).round().to(torch.uint8)
