"""Tests for konbu.predict: every image format and mode reads to the tensor a model sees, and a
photo-like rendering of an MNIST digit normalises back to (nearly) the original.

    PYTHONPATH=src python -m pytest tests/test_predict.py -q

Fixtures are generated in tmp_path from the embedded MNIST sample; PIL's own transforms and
torchvision's Normalize are the answer keys where one exists.
"""

import io

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from konbu.data import load_dataset
from konbu.errors import ImageError, KonbuError, ShapeError
from konbu.inference import normalise
from konbu.predict import mnist_normalise, prepare_batch, read_image, to_model_input, top_k

MNIST_PREPROCESS = {"image_shape": [1, 28, 28], "mean": [0.1307], "std": [0.3081],
                    "classes": [str(d) for d in range(10)], "ink": "mnist", "ink_box": 20}
DIGITS_TO_CHECK = 100   # enough to measure a rate, few enough to keep the file fast


@pytest.fixture(scope="module")
def mnist_test():
    return load_dataset("mnist-sample", "test")


@pytest.fixture(scope="module")
def mnist_digits(mnist_test):
    return mnist_test.images[:DIGITS_TO_CHECK, 0].numpy()   # (N, 28, 28) uint8, white on black


def plain_preprocess(channels, height, width):
    return {"image_shape": [channels, height, width], "mean": [0.5] * channels, "std": [0.25] * channels,
            "classes": ["a", "b"], "ink": "", "ink_box": 0}


def correlation(first, second):
    return float(np.corrcoef(first.ravel().astype(float), second.ravel().astype(float))[0, 1])


def centre_of_mass(image):
    image = image.astype(np.float64)
    rows, columns = np.mgrid[:image.shape[0], :image.shape[1]]
    return (image * rows).sum() / image.sum(), (image * columns).sum() / image.sum()


def ink_box(image):
    rows, columns = np.nonzero(image.any(axis=1))[0], np.nonzero(image.any(axis=0))[0]
    return rows[0], rows[-1], columns[0], columns[-1]


def render_on_paper(digit, scale, rng, paper=205, ink=35, noise=5.0, size=(220, 190), at=(20, 40)):
    """An MNIST digit as a user's photo: dark pen on unevenly lit grey paper, upscaled, off-centre, noisy."""
    strokes = np.asarray(Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC))
    strokes = strokes.astype(np.float64) / 255   # 0 paper .. 1 full ink
    height, width = size
    rows, columns = np.mgrid[:height, :width]
    canvas = paper + 15 * columns / width - 10 * rows / height + rng.normal(0, noise, size)
    top, left = at
    region = canvas[top:top + strokes.shape[0], left:left + strokes.shape[1]]
    region -= strokes * (region - ink)
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)


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
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "TIFF": "tiff", "WEBP": "webp"}


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


def test_resize_to_model_shape_matches_pil_bilinear(tmp_path):
    path = tmp_path / "half.png"
    half_dark_image("RGB").save(path)
    tensor = to_model_input(path, plain_preprocess(3, 12, 16))
    answer = np.asarray(Image.open(path).resize((16, 12), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert torch.equal(tensor, torch.from_numpy(np.ascontiguousarray(answer)))


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
def test_transparent_canvas_keeps_the_ink_visible(tmp_path, mnist_digits, file_format, ink_colour):
    """A digit drawn on a transparent web canvas has its shape in alpha only, in any colour."""
    digit = mnist_digits[0]
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


def test_palette_gif_with_transparency_is_flattened(tmp_path, mnist_digits):
    palette_image = Image.fromarray(np.where(mnist_digits[0] > 127, 1, 0).astype(np.uint8), mode=None).convert("P")
    palette_image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    path = tmp_path / "transparent.gif"
    palette_image.save(path, transparency=0)
    image = read_image(path)
    assert image.mode == "RGB"
    assert correlation(to_model_input(path, MNIST_PREPROCESS)[0].numpy(), mnist_normalise(mnist_digits[0])) > 0.9


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
def test_truncated_image(tmp_path, mnist_digits, file_format):
    buffer = io.BytesIO()
    Image.fromarray(np.kron(mnist_digits[0], np.ones((8, 8), np.uint8))).save(buffer, file_format)
    path = tmp_path / f"cut.{EXTENSIONS[file_format]}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match=r"cut\.\w+.*not a readable image"):
        read_image(path)


@pytest.mark.parametrize("blank", ["white", "black", "noisy grey paper"])
def test_blank_image_has_no_ink(tmp_path, blank):
    rng = np.random.default_rng(0)
    pixels = {"white": np.full((64, 64), 255.0), "black": np.zeros((64, 64)),
              "noisy grey paper": 190 + rng.normal(0, 6, (64, 64))}[blank]
    path = tmp_path / "blank.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    with pytest.raises(ImageError, match="no ink found"):
        to_model_input(path, MNIST_PREPROCESS)


def test_bad_arrays_and_shapes():
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        read_image(np.full((4, 4), 200.0))
    with pytest.raises(ShapeError, match="HxW or HxWxC"):
        read_image(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ShapeError, match="2-D"):
        mnist_normalise(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ShapeError, match="box"):
        mnist_normalise(np.zeros((4, 4), np.uint8), size=8, box=10)
    with pytest.raises(ShapeError, match="image_shape"):
        to_model_input(np.zeros((4, 4), np.uint8), {"image_shape": [28, 28]})
    with pytest.raises(ImageError, match="cannot read an image from a dict"):
        read_image({})


def test_every_error_is_a_konbu_error(tmp_path):
    """The CLI turns KonbuError into a one-line message; anything else would be a traceback."""
    assert issubclass(ImageError, KonbuError) and issubclass(ShapeError, KonbuError)


# ---------------------------------------------------------------------------------------------
# MNIST normalisation
# ---------------------------------------------------------------------------------------------

def test_real_mnist_comes_out_nearly_unchanged(mnist_test):
    originals = mnist_test.images[:, 0].numpy()
    normalised = np.stack([mnist_normalise(image) for image in originals])
    differences = np.abs(normalised.astype(int) - originals.astype(int)).mean(axis=(1, 2))
    assert differences.mean() < 1.5                      # grey levels of 255, averaged over the split
    assert np.mean(differences < 1) > 0.85                # most are the same image
    # the rest moved by at most a pixel: centre of mass on a rounding tie, or a stray speck dropped
    assert np.mean([correlation(a, b) > 0.5 for a, b in zip(normalised, originals)]) > 0.99


@pytest.mark.parametrize("file_format, scale", [("PNG", 3), ("JPEG", 5)])
def test_dark_on_light_photo_normalises_like_the_original(tmp_path, mnist_digits, file_format, scale):
    rng = np.random.default_rng(scale)
    paths = []
    for index, digit in enumerate(mnist_digits):
        path = tmp_path / f"photo{index}.{EXTENSIONS[file_format]}"
        Image.fromarray(render_on_paper(digit, scale, rng)).save(path, file_format)
        paths.append(path)
    normalised = prepare_batch(paths, MNIST_PREPROCESS)[:, 0].numpy()
    correlations = np.array([correlation(a, mnist_normalise(b)) for a, b in zip(normalised, mnist_digits)])
    assert np.mean(correlations > 0.8) > 0.9
    assert np.median(correlations) > 0.9


def test_polarity_does_not_matter(mnist_digits):
    for digit in mnist_digits[:20]:
        light_on_dark = np.kron(digit, np.ones((3, 3), np.uint8))
        dark_on_light = 255 - light_on_dark
        assert np.array_equal(mnist_normalise(light_on_dark), mnist_normalise(dark_on_light))
        # the same on mid-grey paper: 60 vs 200, ink 40 levels beyond either way
        grey_light = (60 + light_on_dark.astype(float) / 255 * 140)
        grey_dark = 200 - light_on_dark.astype(float) / 255 * 140
        difference = np.abs(mnist_normalise(grey_light).astype(int) - mnist_normalise(grey_dark).astype(int))
        assert difference.mean() < 1


def test_centred_by_mass_and_fitted_in_box(mnist_digits):
    rng = np.random.default_rng(7)
    for digit in mnist_digits:
        for image in (digit, render_on_paper(digit, 4, rng)):
            normalised = mnist_normalise(image)
            assert normalised.shape == (28, 28) and normalised.dtype == np.uint8
            centre_y, centre_x = centre_of_mass(normalised)
            assert abs(centre_y - 14) <= 1 and abs(centre_x - 14) <= 1
            top, bottom, left, right = ink_box(normalised)
            assert 18 <= max(bottom - top + 1, right - left + 1) <= 20


@settings(max_examples=40, deadline=None)
@given(canvas_size=st.tuples(st.integers(12, 160), st.integers(12, 160)),
       strokes=st.lists(st.tuples(*[st.floats(0.1, 0.9)] * 4), min_size=1, max_size=4),
       stroke_width=st.floats(0.02, 0.15), paper=st.integers(0, 255), dark_ink=st.booleans(),
       size=st.sampled_from([(28, 20), (16, 12), (8, 8)]))
def test_any_drawing_is_fitted_and_centred(canvas_size, strokes, stroke_width, paper, dark_ink, size):
    height, width = canvas_size
    # 120 grey levels of contrast, dark ink where the paper leaves room for it, else light
    ink_level = paper - 120 if (dark_ink and paper >= 120) or paper > 135 else paper + 120
    image = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(image)
    for x0, y0, x1, y1 in strokes:
        draw.line([(x0 * width, y0 * height), (x1 * width, y1 * height)], fill=ink_level,
                  width=max(1, round(stroke_width * min(width, height))))
    # one pixel is indistinguishable from a noise speck and is read as blank
    assume((np.asarray(image) != paper).sum() >= 2)
    canvas, box = size
    normalised = mnist_normalise(np.asarray(image), size=canvas, box=box)
    assert normalised.shape == (canvas, canvas) and normalised.dtype == np.uint8
    top, bottom, left, right = ink_box(normalised)
    assert bottom - top + 1 <= box and right - left + 1 <= box
    centre_y, centre_x = centre_of_mass(normalised)
    # centred within rounding, unless the mass is so lopsided that centring would leave the canvas
    assert abs(centre_y - canvas / 2) <= 1 or top == 0 or bottom == canvas - 1
    assert abs(centre_x - canvas / 2) <= 1 or left == 0 or right == canvas - 1


def test_large_photo_is_handled_quickly(mnist_digits):
    rng = np.random.default_rng(3)
    photo = render_on_paper(mnist_digits[0], 40, rng, size=(1500, 2000), at=(300, 700))
    assert correlation(mnist_normalise(photo), mnist_normalise(mnist_digits[0])) > 0.8


def test_small_digits_dataset_round_trip():
    """`digits` is 8x8 with ink_box 8: an upscaled copy comes back close to the original."""
    digits = load_dataset("digits", "test")
    preprocess = {"image_shape": [1, 8, 8], "ink": digits.info.ink, "ink_box": digits.info.ink_box}
    originals = digits.images[:50, 0].numpy()
    upscaled = [np.kron(image, np.ones((6, 6), np.uint8)) for image in originals]
    results = prepare_batch(upscaled, preprocess)[:, 0].numpy()
    assert np.median([correlation(a, b) for a, b in zip(results, originals)]) > 0.8


# ---------------------------------------------------------------------------------------------
# Batching, normalising, top-k
# ---------------------------------------------------------------------------------------------

def test_prepare_batch_mixes_sources(tmp_path, mnist_digits):
    path = tmp_path / "digit.png"
    Image.fromarray(mnist_digits[1]).save(path)
    batch = prepare_batch([path, str(path), Image.open(path), mnist_digits[1]], MNIST_PREPROCESS)
    assert batch.dtype == torch.uint8 and tuple(batch.shape) == (4, 1, 28, 28)
    assert all(torch.equal(batch[0], image) for image in batch)
    assert tuple(prepare_batch([], MNIST_PREPROCESS).shape) == (0, 1, 28, 28)


def test_normalise_matches_torchvision():
    from torchvision.transforms import Normalize
    images = torch.randint(0, 256, (5, 3, 6, 7), dtype=torch.uint8)
    mean, std = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
    result = normalise(images, mean, std)
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, Normalize(mean, std)(images.float() / 255))


def test_top_k_matches_a_sort():
    probabilities = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    classes = ["cat", "dog", "eel"]
    result = top_k(probabilities, classes, k=2)
    assert result == [[{"label": "dog", "index": 1, "probability": pytest.approx(0.6)},
                       {"label": "eel", "index": 2, "probability": pytest.approx(0.3)}],
                      [{"label": "cat", "index": 0, "probability": pytest.approx(0.5)},
                       {"label": "eel", "index": 2, "probability": pytest.approx(0.3)}]]
    assert [len(row) for row in top_k(probabilities, classes, k=10)] == [3, 3]   # clipped
    assert isinstance(result[0][0]["probability"], float) and isinstance(result[0][0]["index"], int)
    with pytest.raises(ShapeError):
        top_k(probabilities, classes[:2], k=1)


# ---------------------------------------------------------------------------------------------
# End to end with a tiny trained model: a photo gets the original's prediction
# ---------------------------------------------------------------------------------------------

def test_a_trained_model_predicts_the_photo_like_the_original(tmp_path, mnist_digits):
    """A translation-sensitive MLP (not a CNN) makes a strict check of size and centring."""
    torch.manual_seed(0)
    train = load_dataset("mnist-sample", "train")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    inputs = normalise(train.images, train.mean, train.std)
    for _ in range(5):
        for batch in torch.randperm(len(train)).split(100):
            loss = torch.nn.functional.cross_entropy(model(inputs[batch]), train.labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    rng = np.random.default_rng(11)
    paths = []
    for index, digit in enumerate(mnist_digits):
        paths.append(tmp_path / f"photo{index}.jpg")
        Image.fromarray(render_on_paper(digit, 4, rng)).save(paths[-1], quality=85)
    with torch.no_grad():
        def predict(images):
            return model(normalise(images, train.mean, train.std)).argmax(1)
        original = predict(torch.from_numpy(mnist_digits)[:, None])
        photo = predict(prepare_batch(paths, MNIST_PREPROCESS))
    assert (photo == original).float().mean() > 0.9
