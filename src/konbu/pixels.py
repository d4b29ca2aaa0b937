"""Pixels -> model input with numpy and PIL alone: the image-mode rules and the MNIST-style ink
normalisation that konbu's predict applies, written once.

    image = to_grey_or_rgb(upright(Image.open("seven.jpg")))      # an upright "L" or "RGB" image
    array = model_input(image, preprocess)                         # uint8 [C, H, W], what the model sees
    mnist_normalise(np.asarray(photo.convert("L")), size=28, box=20)   # uint8 [28, 28]

This module imports nothing but numpy and PIL (no torch, nothing of konbu) because `konbu export`
copies this very file into every bundle, beside its predict.py: a model served with ONNX Runtime
prepares its images with the same lines of code as `konbu predict`, not with a re-written copy
that could drift. konbu itself reaches it through konbu.images (reading files), konbu.ink (the
ink normalisation) and konbu.preprocess (the serving contract), which turn the plain ValueErrors
raised here into konbu's own errors (ImageError, ShapeError, NoInkError).

`preprocess` is a run's preprocess.json: {"image_shape": [C, H, W], "ink": "mnist" or "",
"ink_box": 20, ...}. With ink="mnist" a photo of a digit (dark pen on light paper, off-centre, any
size) is normalised the way MNIST itself was made: white ink on black, fitted into an ink_box
square, centred by mass. Without it the image is only converted to the model's channels and resized.
"""

import math

import numpy as np
from PIL import Image, ImageFilter, ImageOps

# A phone photo is ~4000 px wide but the digit ends up ~20 px, so normalising at most 1024 px
# loses nothing, averages away sensor noise and keeps memory at a few MB.
MAX_WORKING_SIDE = 1024
# Paper noise, estimated from the border, is ignored up to this many standard deviations.
NOISE_SIGMAS = 5.0
# Ink fainter than this fraction of the strongest ink is paper texture, shadow or JPEG ringing,
# unless it touches a stroke (an anti-aliased edge: ~15% of MNIST's own ink pixels are below it).
INK_FLOOR = 0.15
# An image whose strongest ink differs from the paper by less than this fraction of full scale
# (~20 grey levels of 255) is blank.
MIN_CONTRAST = 0.08


class PixelError(ValueError):
    """Pixels that can't be normalised (NaN values, say); konbu reports it as an ImageError."""


class PixelShapeError(ValueError):
    """An array or canvas of a shape the normalisation can't take; konbu reports it as a ShapeError."""


class NoInkFound(PixelError):
    """The image holds no stroke to normalise: blank paper, a flat colour, or noise only. Its
    message starts "no digit found"; konbu reports it as NoInkError."""


# ---------------------------------------------------------------------------------------------
# Image modes: any PIL image -> an upright "L" or "RGB" image
# ---------------------------------------------------------------------------------------------

def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, as phones save photos sideways and set the tag instead."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not stop us using pixels that decoded fine
        return image.copy()


def to_grey_or_rgb(image: Image.Image) -> Image.Image:
    """Reduce PIL's many modes to the two a model takes: "L" (grey) or "RGB"."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_grey(image)
    if mode in ("LA", "La", "RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        flat = _flatten_alpha(image.convert("RGBA"))
        return flat.convert("L") if mode in ("LA", "La") else flat
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV


def _high_depth_to_grey(image: Image.Image) -> Image.Image:
    """16-bit ("I;16*", "I") and float ("F") greys -> 8 bits. PIL's own convert("L") clips at 255."""
    values = np.nan_to_num(np.asarray(image).astype(np.float64))
    low, high = values.min(), values.max()
    if image.mode == "F":
        # floats in [0, 1] are intensities; anything else (e.g. depth, counts) is stretched
        low, high = (0.0, 1.0) if low >= 0 and high <= 1 else (low, high)
    elif image.mode == "I" and low >= 0 and high <= 255:
        low, high = 0.0, 255.0     # an 8-bit image PIL widened with convert("I")
    elif low >= 0 and high <= 65535:
        low, high = 0.0, 65535.0   # a 16-bit image: full range onto full range, like a viewer does
    # otherwise 32-bit integers of unknown range: stretched min..max
    scaled = (values - low) / max(high - low, 1e-12) * 255
    return Image.fromarray(np.round(np.clip(scaled, 0, 255)).astype(np.uint8))


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    """Composite onto white, unless the visible pixels are light, then onto black.

    A digit drawn on a transparent web canvas carries its shape in alpha only: black strokes
    vanish on a black background and white strokes on a white one. Choosing the background
    opposite to the (alpha-weighted) brightness of the drawn pixels keeps the ink visible;
    mnist_normalise then fixes polarity either way. Fully opaque images are unaffected.
    """
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64)
    brightness = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float64)
    coverage = alpha.sum()
    light_ink = coverage > 0 and (alpha * brightness).sum() / coverage > 127.5
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255) if light_ink else (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


# ---------------------------------------------------------------------------------------------
# The model input
# ---------------------------------------------------------------------------------------------

def model_input(image: Image.Image, preprocess: dict) -> np.ndarray:
    """An "L" or "RGB" image (to_grey_or_rgb's) -> uint8 [C, H, W] exactly as the model was trained on."""
    channels, height, width = (int(n) for n in preprocess["image_shape"])
    if preprocess.get("ink") == "mnist" and channels == 1:
        box = int(preprocess.get("ink_box") or round(min(height, width) * 20 / 28))
        if height != width:
            raise PixelShapeError(f"MNIST-style ink needs a square input, found image_shape "
                                  f"{[channels, height, width]}")
        grey = np.asarray(image.convert("L"))
        return mnist_normalise(grey, size=height, box=box)[None]   # (1, H, W)
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        # PIL's bilinear widens its filter when shrinking, i.e. anti-aliases like
        # torchvision's Resize(antialias=True)
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image)
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)   # (C, H, W)
    return array.copy()   # a writable copy: PIL's buffer is read-only


# ---------------------------------------------------------------------------------------------
# MNIST-style ink normalisation
# ---------------------------------------------------------------------------------------------

def mnist_normalise(gray, size: int = 28, box: int = 20) -> np.ndarray:
    """Normalise a greyscale digit image (a 2-D array) the way MNIST was made -> uint8 [size, size].

    The paper level is fitted from the border as a plane (so an unevenly lit photo works) and
    subtracted; the ink is whichever side of it holds more mass (dark pen or white chalk); noise
    and faint shading are zeroed and the contrast stretched to MNIST's white on black; the
    ink's bounding box is resized to fit box x box (aspect kept, anti-aliased) and pasted so its
    centre of mass sits at the canvas centre (size / 2, MNIST's convention), clipped inside.
    The image should show one digit, with paper around it rather than a table.
    """
    if not 1 <= box <= size:
        raise PixelShapeError(f"expected 1 <= ink box <= canvas size, found box {box} and size {size}")
    pixels, full_scale = _grey_as_float(gray)
    pixels = _shrink_to_working_size(pixels)

    residual = pixels - _paper_plane(pixels)
    noise_level = NOISE_SIGMAS * _noise_sigma(pixels)
    # Ink is whichever side of the paper holds more mass beyond the noise: robust to a few
    # bright JPEG halos around dark strokes, which a "darkest or brightest pixel" rule is not.
    dark_mass = np.clip(-residual - noise_level, 0, None).sum()
    light_mass = np.clip(residual - noise_level, 0, None).sum()
    ink = -residual if dark_mass > light_mass else residual

    contrast = _strongest_ink(ink)
    if contrast < MIN_CONTRAST * full_scale or contrast <= 2 * noise_level:
        raise NoInkFound(f"no digit found (no ink found: the strongest mark differs from the background by "
                         f"{contrast / full_scale:.0%} of full scale, needs {MIN_CONTRAST:.0%} and twice the noise); "
                         "pass an image of a digit with visible strokes")
    # Hysteresis: strokes are the pixels above the floor, plus their fainter anti-aliased
    # edges (above the noise, touching a stroke); so paper shading is zeroed while a clean
    # MNIST digit keeps every one of its pixels.
    strokes = _drop_specks(ink >= max(noise_level, INK_FLOOR * contrast))
    edges = (_count_neighbours(strokes) > 0) & (ink > noise_level)
    ink = np.where(strokes | edges, np.minimum(ink / contrast, 1.0), 0.0)

    rows, columns = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    ink = ink[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    digit = _fit_in_box(ink, box)
    return _paste_centred_by_mass(digit, size)


def _grey_as_float(gray):
    """A 2-D grey array -> (float64 [H, W] array, the value of full white for its dtype)."""
    gray = np.asarray(gray)
    if gray.ndim == 3 and gray.shape[0] == 1:   # [1, H, W], a model input
        gray = gray[0]
    elif gray.ndim == 3 and gray.shape[2] == 1:   # [H, W, 1]
        gray = gray[:, :, 0]
    if gray.ndim != 2 or min(gray.shape) == 0:
        raise PixelShapeError(f"expected a greyscale image as a non-empty 2-D array, found shape "
                              f"{tuple(gray.shape)}; convert colour images to grey first")
    pixels = gray.astype(np.float64)
    if not np.isfinite(pixels).all():
        raise PixelError("the image array holds NaN or infinite values; pass finite intensities")
    high = float(pixels.max())
    if gray.dtype == np.bool_ or (np.issubdtype(gray.dtype, np.floating) and high <= 1):
        return pixels, 1.0
    if gray.dtype == np.uint16:
        return pixels, 65535.0
    return pixels, 255.0 if high <= 255 else high


def _shrink_to_working_size(pixels: np.ndarray) -> np.ndarray:
    """Box-average a large photo down to MAX_WORKING_SIDE (see there why)."""
    height, width = pixels.shape
    scale = MAX_WORKING_SIDE / max(height, width)
    if scale >= 1:
        return pixels
    smaller = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrunk = Image.fromarray(pixels.astype(np.float32)).resize(smaller, Image.Resampling.BOX)
    return np.asarray(shrunk, dtype=np.float64)


def _border_width(shape) -> int:
    """The paper frame: 4% of the shorter side, 1 px on MNIST's 28, ~30 px on a 1024x768 photo."""
    return max(1, round(0.04 * min(shape)))


def _border_mask(shape) -> np.ndarray:
    width = _border_width(shape)
    mask = np.ones(shape, dtype=bool)
    mask[width:-width, width:-width] = False
    return mask


def _paper_plane(pixels: np.ndarray) -> np.ndarray:
    """The paper's brightness as a plane level + slope_y * y + slope_x * x, from the border.

    Slopes come from medians of the four border strips, which ignore ink touching a strip; a
    plane follows the light falling off across a photographed page, which a single level would
    mistake for faint ink on one side.
    """
    height, width = pixels.shape
    strip = _border_width(pixels.shape)
    slope_y = (np.median(pixels[-strip:]) - np.median(pixels[:strip])) / max(height - strip, 1)
    slope_x = (np.median(pixels[:, -strip:]) - np.median(pixels[:, :strip])) / max(width - strip, 1)
    rows = np.arange(height)[:, None] - (height - 1) / 2
    columns = np.arange(width)[None, :] - (width - 1) / 2
    tilt = slope_y * rows + slope_x * columns   # (H, W)
    return np.median((pixels - tilt)[_border_mask(pixels.shape)]) + tilt


def _noise_sigma(pixels: np.ndarray) -> float:
    """Standard deviation of pixel noise, from the median absolute difference of neighbours.

    Strokes and shading are smooth at the scale of one pixel, so most neighbour differences are
    noise alone even when ink covers the border; the difference of two noisy pixels has sqrt(2)
    times the noise's deviation, and 1.4826 * median |x| is the deviation of a normal x.
    """
    differences = np.concatenate([np.diff(pixels, axis=0).ravel(), np.diff(pixels, axis=1).ravel()])
    return 1.4826 * float(np.median(np.abs(differences))) / math.sqrt(2) if differences.size else 0.0


def _strongest_ink(ink: np.ndarray) -> float:
    """The strongest ink held by at least two pixels of a 3x3 neighbourhood.

    The second-largest of each 3x3 window (rank 7 of 0..8) drops a lone hot pixel of sensor or
    JPEG noise but, unlike a median, keeps a one-pixel-wide stroke.
    """
    filtered = Image.fromarray(ink.astype(np.float32)).filter(ImageFilter.RankFilter(3, 7))
    return float(np.asarray(filtered).max())


def _count_neighbours(mask: np.ndarray) -> np.ndarray:
    """For each pixel, how many of its 8 neighbours are set."""
    padded = np.pad(mask, 1).astype(np.uint8)
    height, width = mask.shape
    return sum(padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


def _drop_specks(strokes: np.ndarray) -> np.ndarray:
    """Unset pixels with no set neighbour: a lone noise speck would stretch the bounding box."""
    kept = strokes & (_count_neighbours(strokes) > 0)
    return kept if kept.any() else strokes   # only specks: they are the mark, not a blank image


def _fit_in_box(ink: np.ndarray, box: int) -> np.ndarray:
    """Resize so the longer side is `box`, keeping aspect ratio; anti-aliased when shrinking."""
    height, width = ink.shape
    scale = box / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(ink.astype(np.float32)).resize(new_size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float64), 0, 1)


def _paste_centred_by_mass(digit: np.ndarray, size: int) -> np.ndarray:
    """Integer shift putting the centre of mass at index size / 2 (where MNIST's sits), clipped."""
    height, width = digit.shape
    mass = digit.sum()
    if mass <= 0:
        raise NoInkFound("no digit found (no ink found after resizing); pass an image of a digit with visible strokes")
    centre_y = (digit.sum(axis=1) * np.arange(height)).sum() / mass
    centre_x = (digit.sum(axis=0) * np.arange(width)).sum() / mass
    top = min(max(math.floor(size / 2 - centre_y + 0.5), 0), size - height)
    left = min(max(math.floor(size / 2 - centre_x + 0.5), 0), size - width)
    canvas = np.zeros((size, size), dtype=np.float64)
    canvas[top:top + height, left:left + width] = digit
    return np.round(canvas * 255).astype(np.uint8)


