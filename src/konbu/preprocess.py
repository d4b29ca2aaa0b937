"""An image file or array -> exactly the uint8 tensor a trained model sees (the serving contract).

    images = prepare_batch(["seven.jpg"], run.preprocess)  # uint8 [N, C, H, W]
    one = to_model_input("seven.jpg", run.preprocess)       # uint8 [C, H, W]

`preprocess` is the run's preprocess.json: {"image_shape": [C, H, W], "mean", "std", "classes",
"ink": "mnist" or "", "ink_box": 20}. With ink="mnist" a user's photo of a digit (dark pen on
light paper, off-centre, any size) is normalised the way MNIST itself was made: white ink on
black, fitted into an ink_box square, centred by mass. Without it the image is only converted to
the model's channels and resized. predict, the inspection figures and the web app all use this.

A file that can't be read raises konbu.errors.ImageError naming it; with ink="mnist", an image
with no stroke on it (blank paper, a flat colour, pixel noise) raises konbu.ink.NoInkError, an
ImageError that konbu.predict answers as "no digit found" rather than as a failure.
"""

import numpy as np
import torch
from PIL import Image

from .errors import ShapeError
from .images import read_image
from .ink import mnist_normalise

__all__ = ["to_model_input", "prepare_batch", "image_shape"]


def to_model_input(source, preprocess: dict) -> torch.Tensor:
    """One image -> uint8 [C, H, W] exactly as the model was trained on."""
    channels, height, width = image_shape(preprocess)
    image = read_image(source)
    if preprocess.get("ink") == "mnist" and channels == 1:
        box = int(preprocess.get("ink_box") or round(min(height, width) * 20 / 28))
        if height != width:
            raise ShapeError(f"MNIST-style ink needs a square input, found image_shape {[channels, height, width]}")
        grey = np.asarray(image.convert("L"))
        return torch.from_numpy(mnist_normalise(grey, size=height, box=box)).unsqueeze(0)
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        # PIL's bilinear widens its filter when shrinking, i.e. anti-aliases like
        # torchvision's Resize(antialias=True)
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image)
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)   # (C, H, W)
    return torch.from_numpy(array.copy())   # a writable copy: PIL's buffer is read-only


def image_shape(preprocess: dict):
    shape = preprocess.get("image_shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(isinstance(v, (int, np.integer)) and v > 0 for v in shape)):
        raise ShapeError(f"preprocess image_shape must be [C, H, W] of positive integers, found {shape!r}")
    if shape[0] not in (1, 3):
        raise ShapeError(f"konbu feeds images as 1 (grey) or 3 (RGB) channels, the model expects {shape[0]}")
    return tuple(int(v) for v in shape)


def prepare_batch(sources, preprocess: dict) -> torch.Tensor:
    """Many images -> uint8 [N, C, H, W]."""
    images = [to_model_input(source, preprocess) for source in sources]
    if not images:
        return torch.empty((0, *image_shape(preprocess)), dtype=torch.uint8)
    return torch.stack(images)
