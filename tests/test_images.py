"""Tests for konbu.images: every image format and mode reads to an upright "L" or "RGB" image (and
from there to the tensor a model sees), transparency keeps the ink visible, and bad input is a
one-line ImageError naming the file.

    PYTHONPATH=src python -m pytest tests/test_images.py -q

Fixtures are generated in tmp_path; PIL's own transforms are the answer keys where one exists.
"""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from konbu.data import load_dataset
from konbu.errors import ImageError, KonbuError, ShapeError
from konbu.images import read_image
from konbu.ink import mnist_normalise
from konbu.preprocess import to_model_input

MNIST_PREPROCESS = {"image_shape": [1, 28, 28], "mean": [0.1307], "std": [0.3081],
                    "classes": [str(d) for d in range(10)], "ink": "mnist", "ink_box": 20}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "TIFF": "tiff", "WEBP": "webp"}


@pytest.fixture(scope="module")
def digit():
    return load_dataset("mnist-sample", "test").images[0, 0].numpy()   # (28, 28) uint8, white on black


def plain_preprocess(channels, height, width):
    return {"image_shape": [channels, height, width], "mean": [0.5] * channels, "std": [0.25] * channels,
            "classes": ["a", "b"], "ink": "", "ink_box": 0}


def correlation(first, second):
    return float(np.corrcoef(first.ravel().astype(float), second.ravel().astype(float))[0, 1])


# ---------------------------------------------------------------------------------------------
# Reading: formats, modes, orientation
# ---------------------------------------------------------------------------------------------

def half_dark_image(mode):
    """32x24: left half dark (20), right half light (230), in the given PIL mode."""
    grey = np.full((24, 32), 230, dtype=np.uint8)
    grey[:, :16] = 20
    if mode == "I;16":
        return Image.fromarray(grey.astype(np.uint16) * 257)
    return Image.fromarray(grey).convert(mode)


FORMAT_MODES = [("PNG", mode) for mode in ("L", "RGB", "RGBA", "P", "I;16", "1", "LA")] + \
    [("JPEG", "L"), ("JPEG", "RGB")] + \
    [("BMP", mode) for mode in ("L", "RGB", "RGBA", "P", "1")] + \
    [("GIF", mode) for mode in ("L", "RGB", "P", "1")] + \
    [("TIFF", mode) for mode in ("L", "RGB", "RGBA", "P", "I;16", "1", "LA")] + \
    [("WEBP", mode) for mode in ("L", "RGB", "RGBA")]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("file_format, mode", FORMAT_MODES)
def test_every_format_and_mode_reads_to_the_model_shape(tmp_path, file_format, mode, channels):
    path = tmp_path / f"half.{EXTENSIONS[file_format]}"
    half_dark_image(mode).save(path, file_format)
    image = read_image(path)
    assert image.mode in ("L", "RGB") and image.size == (32, 24)

    tensor = to_model_input(path, plain_preprocess(channels, 24, 32))
    assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (channels, 24, 32)
    # lossy formats, palettes and 1-bit dithering move values a little, never across the middle
    assert tensor[:, :, :14].float().mean() < 60
    assert tensor[:, :, 18:].float().mean() > 190


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    for source in (Image.fromarray(values), values):
        assert np.asarray(read_image(source)).tolist() == [[0, 4, 128, 255]]
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert np.asarray(read_image(path)).tolist() == [[0, 4, 128, 255]]
    # 32-bit "I" (how older PIL opens 16-bit PNGs) and float "F" images
    assert np.asarray(read_image(Image.fromarray(values.astype(np.int32)))).tolist() == [[0, 4, 128, 255]]
    assert np.asarray(read_image(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)))).tolist() == [[0, 128, 255]]


def test_arrays_of_each_kind_read_the_same():
    grey = np.array([[0, 64], [128, 255]], dtype=np.uint8)
    expected = grey.tolist()
    for source in (grey, grey / 255.0, grey.astype(np.float32) / 255, grey.astype(np.uint16) * 257,
                   grey.astype(np.int64), grey[:, :, None], torch.from_numpy(grey)):
        assert np.asarray(read_image(source)).tolist() == expected
    rgb = np.stack([grey, grey, grey], axis=2)
    assert read_image(rgb).mode == "RGB" and np.asarray(read_image(rgb))[..., 0].tolist() == expected
    assert np.asarray(read_image(grey > 100)).tolist() == [[0, 0], [255, 255]]


def test_gif_reads_its_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), level) for level in (40, 200)]
    path = tmp_path / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert int(np.asarray(read_image(path)).mean()) == 40


@pytest.mark.parametrize("orientation, dark_side", [(6, "top"), (8, "bottom"), (3, "right"), (1, "left")])
def test_exif_orientation_is_honoured(tmp_path, orientation, dark_side):
    stored = np.full((20, 40), 230, dtype=np.uint8)
    stored[:, :10] = 20   # dark left quarter, as stored
    exif = Image.Exif()
    exif[0x0112] = orientation   # Orientation tag
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes())

    upright = np.asarray(read_image(path)).astype(float)
    assert upright.shape == ((40, 20) if orientation in (6, 8) else (20, 40))
    edges = {"top": upright[:5], "bottom": upright[-5:], "left": upright[:, :5], "right": upright[:, -5:]}
    assert edges[dark_side].mean() < 60
    assert all(edge.mean() > 150 for side, edge in edges.items() if side != dark_side)


@pytest.mark.parametrize("file_format", ["PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("ink_colour", [(0, 0, 0), (255, 255, 255), (200, 30, 30)])
def test_transparent_canvas_keeps_the_ink_visible(tmp_path, digit, file_format, ink_colour):
    """A digit drawn on a transparent web canvas has its shape in alpha only, in any colour."""
    canvas = np.zeros((28, 28, 4), dtype=np.uint8)
    canvas[..., :3] = ink_colour
    canvas[..., 3] = digit
    path = tmp_path / f"canvas.{EXTENSIONS[file_format]}"
    Image.fromarray(canvas).save(path, file_format, lossless=True) if file_format == "WEBP" \
        else Image.fromarray(canvas).save(path, file_format)

    grey = np.asarray(read_image(path).convert("L")).astype(float)
    assert abs(correlation(np.abs(grey - grey[0, 0]), digit)) > 0.95   # the strokes survived
    normalised = to_model_input(path, MNIST_PREPROCESS)[0].numpy()
    assert correlation(normalised, mnist_normalise(digit)) > 0.95


def test_palette_gif_with_transparency_is_flattened(tmp_path, digit):
    palette_image = Image.fromarray(np.where(digit > 127, 1, 0).astype(np.uint8), mode=None).convert("P")
    palette_image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    path = tmp_path / "transparent.gif"
    palette_image.save(path, transparency=0)
    image = read_image(path)
    assert image.mode == "RGB"
    assert correlation(to_model_input(path, MNIST_PREPROCESS)[0].numpy(), mnist_normalise(digit)) > 0.9


# ---------------------------------------------------------------------------------------------
# Bad input: a one-line ImageError naming the file and what konbu reads, never a traceback
# ---------------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"nothere\.png.*no such file.*PNG, JPEG"):
        read_image(tmp_path / "nothere.png")


def test_directory(tmp_path):
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


@pytest.mark.parametrize("content", [b"this is not an image\n", b""])
def test_text_file_named_png(tmp_path, content):
    path = tmp_path / "notes.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=r"notes\.png.*not a readable image.*PNG, JPEG, BMP, GIF, TIFF, WebP"):
        read_image(path)


@pytest.mark.parametrize("file_format", ["PNG", "JPEG"])
def test_truncated_image(tmp_path, digit, file_format):
    buffer = io.BytesIO()
    Image.fromarray(np.kron(digit, np.ones((8, 8), np.uint8))).save(buffer, file_format)
    path = tmp_path / f"cut.{EXTENSIONS[file_format]}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match=r"cut\.\w+.*not a readable image"):
        read_image(path)


def test_bad_arrays():
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        read_image(np.full((4, 4), 200.0))
    with pytest.raises(ShapeError, match="HxW or HxWxC"):
        read_image(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageError, match="cannot read an image from a dict"):
        read_image({})


def test_every_error_is_a_konbu_error():
    """The CLI turns KonbuError into a one-line message; anything else would be a traceback."""
    assert issubclass(ImageError, KonbuError) and issubclass(ShapeError, KonbuError)
