"""Reading images: a path, a PIL image or an array -> an upright 8-bit "L" or "RGB" PIL image.

Reads PNG, JPEG, BMP, GIF (first frame), TIFF and WebP in grey, RGB, RGBA, palette, 1-bit and
16-bit modes, and honours EXIF orientation. Anything unreadable raises ImageError naming the file;
so does an image whose header declares more than MAX_PIXELS (a decompression bomb), before a
single pixel of it is decoded.

The mode rules (EXIF orientation, 16-bit, palettes, transparency) are konbu.pixels', which needs
numpy and PIL alone, so that `konbu export`'s bundles read images with the same code.
"""

import io
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import ImageError, ShapeError
from .pixels import to_grey_or_rgb, upright

READABLE_FORMATS = "PNG, JPEG, BMP, GIF, TIFF, WebP"
# PIL's default limit (a quarter GiB as 24-bit RGB), fixed here: far above any camera's photo (a
# 61-megapixel full frame), far below what a decompression bomb would make PIL allocate
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3


def read_image(source) -> Image.Image:
    """Read `source` (path, PIL image, or HxW / HxWxC array) as an upright "L" or "RGB" image.

    16-bit images are scaled to 8 bits, palettes expanded, transparency flattened onto a
    background chosen to keep the ink visible, and EXIF orientation applied.
    """
    if isinstance(source, (str, Path)):
        image = _open_file(Path(source))
    elif isinstance(source, Image.Image):
        image = upright(source)
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        image = _image_from_array(source)
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}; "
                         "pass a file path, a PIL image or a numpy array (HxW or HxWxC)")
    try:
        return to_grey_or_rgb(image)
    except (ValueError, OSError) as error:   # exotic modes PIL can open but not convert
        raise ImageError(f"cannot convert a {image.mode!r} image to grey or RGB ({error}); "
                         "save it as an 8-bit grey or RGB PNG") from error


def _open_file(path: Path) -> Image.Image:
    if not path.exists():
        raise ImageError(f"{path}: no such file; konbu reads {READABLE_FORMATS} images")
    if not path.is_file():
        raise ImageError(f"{path}: is a directory, not an image file; konbu reads {READABLE_FORMATS}")
    if path.stat().st_size == 0:   # PIL would only say "cannot identify image file"
        raise ImageError(f"{path}: not a readable image (an empty file, 0 bytes); konbu reads {READABLE_FORMATS}")
    return _decode(path, path)


def read_image_bytes(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An image file's bytes (an upload) -> an upright "L" or "RGB" image, refused like a file
    would be (ImageError naming `name`), and refused above `max_pixels` before decoding: a server
    decoding many uploads at once keeps a lower limit than one user reading one file."""
    if not data:
        raise ImageError(f"{name}: not a readable image (empty, 0 bytes); konbu reads {READABLE_FORMATS}")
    return read_image(_decode(io.BytesIO(data), name, max_pixels))   # (exif_transpose drops the tag: no double turn)


def _decode(source, name, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open a path or a binary stream: header check, full decode, EXIF orientation."""
    try:
        with warnings.catch_warnings():
            # PIL only warns between its limit and twice it, then decodes anyway: refuse those too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:   # reads the header only: size and mode, no pixels yet
                _check_pixels(name, image.size, max_pixels)
                # load() decodes every byte now, so a truncated file fails here rather than later;
                # for an animated GIF or multi-page TIFF, Image.open is on the first frame. The EXIF
                # block is read while the file is still open.
                image.load()
                return upright(image)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"{name}: image too large to decode safely ({error}); konbu decodes images of up to "
                         f"{max_pixels:,} pixels: shrink it first") from error
    except Image.UnidentifiedImageError as error:   # PIL's message only repeats the path
        raise ImageError(f"{name}: not a readable image (its first bytes match none of {READABLE_FORMATS}: "
                         "another kind of file, or a damaged header)") from error
    except Exception as error:  # a corrupt file can make a decoder fail with almost any exception
        raise ImageError(f"{name}: not a readable image ({type(error).__name__}: {error}); "
                         f"konbu reads {READABLE_FORMATS}") from error


def _check_pixels(path, size, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse an image by the size its header declares, before a byte of it is decoded.

    A decompression bomb declares, say, 20,000 x 20,000 pixels in a file of a few hundred bytes:
    decoding it would take gigabytes. PIL's own limit is a global that any caller may switch off
    (Image.MAX_IMAGE_PIXELS = None), so konbu keeps its own."""
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{path}: the image declares {width}x{height} pixels, so it holds none; "
                         f"konbu reads {READABLE_FORMATS} images of at least 1x1")
    if width * height > max_pixels:
        side = int(math.sqrt(max_pixels)) // 100 * 100
        raise ImageError(f"{path}: {width:,}x{height:,} pixels is more than konbu decodes ({max_pixels:,} pixels, "
                         f"about {side:,}x{side:,}); a decompression bomb, or a scan far larger than any model's "
                         "input: shrink it first")


def _image_from_array(array) -> Image.Image:
    """An HxW or HxWxC array (uint8, uint16, bool, other integers in 0..255, float in [0, 1])."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ShapeError(f"expected an image array of shape HxW or HxWxC with C in 1..4, "
                         f"found shape {tuple(array.shape)}; a CxHxW array needs .transpose(1, 2, 0)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ShapeError(f"expected a non-empty image array, found shape {tuple(array.shape)}")
    # fromarray picks the mode from the shape: HxW "L", HxWx2 "LA", HxWx3 "RGB", HxWx4 "RGBA"
    return Image.fromarray(_to_uint8(array))


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        # 65535 / 257 = 255 exactly: full 16-bit range onto full 8-bit range
        return np.round(array / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        low, high = float(np.min(array)), float(np.max(array))
        if not (math.isfinite(low) and math.isfinite(high)) or low < -1e-6 or high > 1 + 1e-6:
            raise ImageError(f"a float image array must hold values in [0, 1], found [{low:g}, {high:g}]; "
                             "divide by 255 (or pass uint8)")
        return np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(np.min(array)), int(np.max(array))
        if low < 0 or high > 255:
            raise ImageError(f"an integer image array other than uint16 must hold values in 0..255, "
                             f"found {low}..{high}; convert it to uint8 or uint16")
        return array.astype(np.uint8)
    raise ImageError(f"cannot read an image array of dtype {array.dtype}; pass uint8, uint16 or float in [0, 1]")


def file_error_reason(error: ImageError, path) -> str:
    """The message of an ImageError that read_image raised for the file `path`, without the leading
    "PATH: " it starts with: for a list that names each file itself (konbu predict's answers, a
    folder dataset's skipped files)."""
    return str(error).removeprefix(f"{Path(path)}: ")
