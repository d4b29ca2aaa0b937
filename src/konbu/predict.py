"""Prediction input: an image file or array -> exactly the uint8 tensor a trained model sees.

    run = konbu.Run.load("runs/deep")
    predict(run, ["seven.jpg", "photo.png"], top=3)       # [[{"label", "index", "probability"}, ...], ...]

    images = prepare_batch(["seven.jpg"], run.preprocess)  # uint8 [N, C, H, W]: what the model sees

`preprocess` is the run's preprocess.json: {"image_shape": [C, H, W], "mean", "std", "classes",
"ink": "mnist" or "", "ink_box": 20}. With ink="mnist" a user's photo of a digit (dark pen on
light paper, off-centre, any size) is normalised the way MNIST itself was made: white ink on
black, fitted into an ink_box square, centred by mass. Without it the image is only converted to
the model's channels and resized.
"""

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from .errors import ConfigError, ImageError, KonbuError, ShapeError
from .inspect import plot_input_check

READABLE_FORMATS = "PNG, JPEG, BMP, GIF, TIFF, WebP"

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


# ---------------------------------------------------------------------------------------------
# Reading: a path, a PIL image or an array -> an upright 8-bit "L" or "RGB" PIL image
# ---------------------------------------------------------------------------------------------

def read_image(source) -> Image.Image:
    """Read `source` (path, PIL image, or HxW / HxWxC array) as an upright "L" or "RGB" image.

    16-bit images are scaled to 8 bits, palettes expanded, transparency flattened onto a
    background chosen to keep the ink visible, and EXIF orientation applied.
    """
    if isinstance(source, (str, Path)):
        image = _open_file(Path(source))
    elif isinstance(source, Image.Image):
        image = _upright(source)
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        image = _image_from_array(source)
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}; "
                         "pass a file path, a PIL image or a numpy array (HxW or HxWxC)")
    try:
        return _to_grey_or_rgb(image)
    except (ValueError, OSError) as error:   # exotic modes PIL can open but not convert
        raise ImageError(f"cannot convert a {image.mode!r} image to grey or RGB ({error}); "
                         "save it as an 8-bit grey or RGB PNG") from error


def _open_file(path: Path) -> Image.Image:
    if not path.exists():
        raise ImageError(f"{path}: no such file; konbu reads {READABLE_FORMATS} images")
    if not path.is_file():
        raise ImageError(f"{path}: is a directory, not an image file; konbu reads {READABLE_FORMATS}")
    try:
        with Image.open(path) as image:
            # load() decodes every byte now, so a truncated file fails here rather than later;
            # for an animated GIF or multi-page TIFF, Image.open is on the first frame. The EXIF
            # block is read while the file is still open.
            image.load()
            return _upright(image)
    except Image.DecompressionBombError as error:
        raise ImageError(f"{path}: image too large to decode safely ({error})") from error
    except Exception as error:  # a corrupt file can make a decoder fail with almost any exception
        raise ImageError(f"{path}: not a readable image ({type(error).__name__}: {error}); "
                         f"konbu reads {READABLE_FORMATS}") from error


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, as phones save photos sideways and set the tag instead."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not stop us using pixels that decoded fine
        return image.copy()


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


def _to_grey_or_rgb(image: Image.Image) -> Image.Image:
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
# MNIST-style normalisation: any grey digit -> white ink on black, fitted to a box, mass-centred
# ---------------------------------------------------------------------------------------------

def mnist_normalise(gray, size: int = 28, box: int = 20) -> np.ndarray:
    """Normalise a greyscale digit image the way MNIST was made -> uint8 [size, size].

    The paper level is fitted from the border as a plane (so an unevenly lit photo works) and
    subtracted; the ink is whichever side of it holds more mass (dark pen or white chalk); noise
    and faint shading are zeroed and the contrast stretched to MNIST's white on black; the
    ink's bounding box is resized to fit box x box (aspect kept, anti-aliased) and pasted so its
    centre of mass sits at the canvas centre (size / 2, MNIST's convention), clipped inside.
    The image should show one digit, with paper around it rather than a table.
    """
    if not 1 <= box <= size:
        raise ShapeError(f"expected 1 <= ink box <= canvas size, found box {box} and size {size}")
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
        raise ImageError(f"no ink found: the strongest mark differs from the background by "
                         f"{contrast / full_scale:.0%} of full scale (needs {MIN_CONTRAST:.0%} and twice the noise); "
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
    """A 2-D grey image -> (float64 [H, W] array, the value of full white for its dtype)."""
    if isinstance(gray, Image.Image):
        gray = read_image(gray).convert("L")
    elif isinstance(gray, torch.Tensor):
        gray = gray.detach().cpu().numpy()
    gray = np.asarray(gray)
    if gray.ndim == 3 and gray.shape[0] == 1:   # [1, H, W], a model input
        gray = gray[0]
    elif gray.ndim == 3 and gray.shape[2] == 1:   # [H, W, 1]
        gray = gray[:, :, 0]
    if gray.ndim != 2 or min(gray.shape) == 0:
        raise ShapeError(f"expected a greyscale image as a non-empty 2-D array, found shape {tuple(gray.shape)}; "
                         "convert colour images to grey first")
    pixels = gray.astype(np.float64)
    if not np.isfinite(pixels).all():
        raise ImageError("the image array holds NaN or infinite values; pass finite intensities")
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
        raise ImageError("no ink found after resizing; pass an image of a digit with visible strokes")
    centre_y = (digit.sum(axis=1) * np.arange(height)).sum() / mass
    centre_x = (digit.sum(axis=0) * np.arange(width)).sum() / mass
    top = min(max(math.floor(size / 2 - centre_y + 0.5), 0), size - height)
    left = min(max(math.floor(size / 2 - centre_x + 0.5), 0), size - width)
    canvas = np.zeros((size, size), dtype=np.float64)
    canvas[top:top + height, left:left + width] = digit
    return np.round(canvas * 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Model input
# ---------------------------------------------------------------------------------------------

def to_model_input(source, preprocess: dict) -> torch.Tensor:
    """One image -> uint8 [C, H, W] exactly as the model was trained on."""
    channels, height, width = _image_shape(preprocess)
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


def _image_shape(preprocess: dict):
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
        return torch.empty((0, *_image_shape(preprocess)), dtype=torch.uint8)
    return torch.stack(images)


def top_k(probabilities: torch.Tensor, classes, k: int) -> list:
    """[N, K] probabilities -> per row, the k best {"label", "index", "probability"}, best first."""
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes):
        raise ShapeError(f"expected probabilities [N, {len(classes)}] for {len(classes)} classes, "
                         f"found {tuple(probabilities.shape)}")
    if k < 1:
        raise ConfigError(f"top-k needs k >= 1, found {k}")
    values, indices = probabilities.detach().float().cpu().topk(min(k, len(classes)), dim=1)
    return [[{"label": str(classes[index]), "index": index, "probability": value}
             for value, index in zip(row_values, row_indices)]
            for row_values, row_indices in zip(values.tolist(), indices.tolist())]


# ---------------------------------------------------------------------------------------------
# Prediction with a run
# ---------------------------------------------------------------------------------------------

def predict(run, images, top: int = 5):
    """Top-`top` classes for one image (-> list of dicts) or a list of images (-> list of lists)."""
    single = not isinstance(images, (list, tuple))
    batch = prepare_batch([images] if single else list(images), run.preprocess)
    probabilities = run.logits(batch).softmax(dim=1)
    answers = top_k(probabilities, run.classes, top)
    return answers[0] if single else answers


def predict_files(run, paths, top: int = 3, show_input=None) -> list:
    """`konbu predict`: [{"image": path, "predictions": [...]}, ...]. With `show_input`, save the
    first image's model input beside training examples of its predicted class (the input checker)."""
    paths = [str(path) for path in paths]
    batch = prepare_batch(paths, run.preprocess)
    probabilities = run.logits(batch).softmax(dim=1)
    answers = top_k(probabilities, run.classes, top)
    if show_input is not None:
        best = answers[0][0]
        plot_input_check(batch[0], _training_examples(run, best["index"]), best["label"], best["probability"],
                         show_input)
    return [{"image": path, "predictions": predictions} for path, predictions in zip(paths, answers)]


def _training_examples(run, label: int, count: int = 8) -> torch.Tensor:
    """A few training images of class `label`, or none when the run's dataset isn't on disk here."""
    from .data import is_available, load_dataset

    name, data_dir = run.info.get("dataset"), run.info.get("config", {}).get("data_dir")
    try:
        if not is_available(name, data_dir):
            return torch.empty((0, *_image_shape(run.preprocess)), dtype=torch.uint8)
        train = load_dataset(name, "train", data_dir)
    except KonbuError:  # a run copied from another machine: the figure shows the input alone
        return torch.empty((0, *_image_shape(run.preprocess)), dtype=torch.uint8)
    return train.images[train.labels == label][:count]
