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

The steps themselves are konbu.pixels.model_input (numpy and PIL alone), which `konbu export` copies
into its bundles, so an exported model is fed exactly what this module feeds konbu's.
"""

import numpy as np
import torch

from . import pixels
from .errors import ShapeError
from .images import read_image
from .ink import konbu_errors

__all__ = ["to_model_input", "prepare_batch", "image_shape"]


def to_model_input(source, preprocess: dict) -> torch.Tensor:
    """One image -> uint8 [C, H, W] exactly as the model was trained on."""
    image_shape(preprocess)   # konbu's own message for a broken preprocess.json, before any image is read
    image = read_image(source)
    with konbu_errors():
        return torch.from_numpy(pixels.model_input(image, preprocess))


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
