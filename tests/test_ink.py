"""Tests for konbu.ink (MNIST-style normalisation): real MNIST comes out nearly unchanged, and a
photo-like rendering of an MNIST digit (dark pen on uneven grey paper, off-centre, noisy) normalises
back to (nearly) the original, so a model trained on MNIST predicts the photo like the original.

    PYTHONPATH=src python -m pytest tests/test_ink.py -q

Fixtures are generated in tmp_path from the embedded MNIST sample.
"""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from konbu.data import load_dataset
from konbu.errors import ImageError, ShapeError
from konbu.inference import normalise
from konbu.ink import mnist_normalise
from konbu.preprocess import prepare_batch, to_model_input

MNIST_PREPROCESS = {"image_shape": [1, 28, 28], "mean": [0.1307], "std": [0.3081],
                    "classes": [str(d) for d in range(10)], "ink": "mnist", "ink_box": 20}
DIGITS_TO_CHECK = 100   # enough to measure a rate, few enough to keep the file fast


@pytest.fixture(scope="module")
def mnist_test():
    return load_dataset("mnist-sample", "test")


@pytest.fixture(scope="module")
def mnist_digits(mnist_test):
    return mnist_test.images[:DIGITS_TO_CHECK, 0].numpy()   # (N, 28, 28) uint8, white on black


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
# Bad input: blank pictures and impossible shapes
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("blank", ["white", "black", "noisy grey paper"])
def test_blank_image_has_no_ink(tmp_path, blank):
    rng = np.random.default_rng(0)
    pixels = {"white": np.full((64, 64), 255.0), "black": np.zeros((64, 64)),
              "noisy grey paper": 190 + rng.normal(0, 6, (64, 64))}[blank]
    path = tmp_path / "blank.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    with pytest.raises(ImageError, match="no ink found"):
        to_model_input(path, MNIST_PREPROCESS)


def test_bad_shapes():
    with pytest.raises(ShapeError, match="2-D"):
        mnist_normalise(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ShapeError, match="box"):
        mnist_normalise(np.zeros((4, 4), np.uint8), size=8, box=10)


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


@pytest.mark.parametrize("file_format, extension, scale", [("PNG", "png", 3), ("JPEG", "jpg", 5)])
def test_dark_on_light_photo_normalises_like_the_original(tmp_path, mnist_digits, file_format, extension, scale):
    rng = np.random.default_rng(scale)
    paths = []
    for index, digit in enumerate(mnist_digits):
        path = tmp_path / f"photo{index}.{extension}"
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
