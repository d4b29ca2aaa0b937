"""MNIST-style normalisation: any grey picture of a digit -> white ink on black, fitted into a box
and centred by mass, the way MNIST itself was made.

    mnist_normalise(np.asarray(photo.convert("L")), size=28, box=20)   # uint8 [28, 28]

A picture with no stroke standing out of its paper (blank paper, one flat colour, or pixel noise,
whose strongest "mark" is no stronger than the noise itself) raises NoInkError, an ImageError
whose message starts "no digit found": konbu.predict answers such an image with label None and
that reason instead of guessing a digit.

The normalisation itself lives in konbu.pixels, which needs numpy and PIL alone, so that the
bundles of `konbu export` carry the very same code (see there for how it works). This module is
its konbu face: it also takes PIL images and tensors, and raises konbu's errors.
"""

from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image

from . import pixels
from .errors import ImageError, ShapeError
from .images import read_image

__all__ = ["NoInkError", "mnist_normalise", "konbu_errors"]


class NoInkError(ImageError):
    """The image holds no stroke to normalise: blank paper, a flat colour, or noise only."""


@contextmanager
def konbu_errors():
    """konbu.pixels' plain ValueErrors -> konbu's errors, same message: NoInkFound -> NoInkError,
    PixelShapeError -> ShapeError, PixelError -> ImageError (so the CLI exits 2, predict answers
    "no digit found")."""
    try:
        yield
    except pixels.NoInkFound as error:
        raise NoInkError(str(error)) from None
    except pixels.PixelShapeError as error:
        raise ShapeError(str(error)) from None
    except pixels.PixelError as error:
        raise ImageError(str(error)) from None


def mnist_normalise(gray, size: int = 28, box: int = 20) -> np.ndarray:
    """Normalise a greyscale digit image the way MNIST was made -> uint8 [size, size].

    `gray`: a 2-D array (uint8, uint16, bool, float in [0, 1]; [1, H, W] and [H, W, 1] too), a
    tensor, or a PIL image (read as konbu.images.read_image does, then made grey). See
    konbu.pixels.mnist_normalise for the steps.
    """
    if isinstance(gray, Image.Image):
        gray = np.asarray(read_image(gray).convert("L"))
    elif isinstance(gray, torch.Tensor):
        gray = gray.detach().cpu().numpy()
    with konbu_errors():
        return pixels.mnist_normalise(gray, size=size, box=box)
