"""The image corpus of issue 13: awkward but valid images are read right, broken ones are one clear
error each, through konbu.images.read_image and through `konbu predict`.

    .venv/bin/python -m pytest -q tests/test_bad_images.py

tests/test_images.py covers every format x mode, EXIF orientation, transparent canvases and the
basic bad files through read_image; this file adds what it lacks: CMYK JPEG, palette PNG with a
transparent index, 16-bit RGB, 1x1 and zero-size images, decompression bombs refused from their
header alone (no pixel decoded, no gigabytes allocated, whatever PIL's own global limit says), and
the whole corpus through the CLI, where each bad image is its own answer ({"image", "error"},
exit 1) and each odd but valid one is predicted like the plain digit it shows. The answer key for a
valid image is the same run's prediction for that digit saved as a plain 8-bit grey PNG.
"""

import io
import json
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

import konbu
from konbu.cli.testing import invoke as konbu_cli
from konbu.data import load_dataset
from konbu.errors import ImageError
from konbu.images import MAX_PIXELS, read_image
from konbu.preprocess import to_model_input


def png_bytes(width, height, bit_depth=8, colour_type=0, rows=b"") -> bytes:
    """A PNG written chunk by chunk: its IHDR may declare any size, whatever the data holds."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def bmp_header(width, height) -> bytes:
    """A 24-bit BMP's two headers (file and BITMAPINFOHEADER) and four bytes of pixels."""
    return b"BM" + struct.pack("<IHHI", 58, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0,
                                                                     0, 0, 0, 0, 0) + b"\0" * 4


def plain(channels=1, side=28):
    return {"image_shape": [channels, side, side], "mean": [0.5] * channels, "std": [0.25] * channels,
            "classes": ["a", "b"], "ink": "", "ink_box": 0}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist-sample", "test").images[:40, 0].numpy()   # (40, 28, 28) uint8, white on black


# ---------------------------------------------------------------------------------------------
# read_image: odd but valid images
# ---------------------------------------------------------------------------------------------

def test_cmyk_jpeg_reads_as_rgb(tmp_path, digits):
    printed = Image.fromarray(255 - digits[0]).convert("CMYK")   # dark ink on white paper, as printed
    path = tmp_path / "print.jpg"
    printed.save(path, quality=95)
    image = read_image(path)
    assert image.mode == "RGB" and image.size == (28, 28)
    expected = np.asarray(Image.open(path).convert("RGB"), dtype=float)   # PIL's own conversion: the answer key
    assert np.abs(np.asarray(image, dtype=float) - expected).max() <= 1
    assert np.corrcoef(np.asarray(image.convert("L"), float).ravel(), 255.0 - digits[0].ravel())[0, 1] > 0.95


def test_palette_png_with_a_transparent_index(tmp_path, digits):
    """A palette PNG whose index 0 (the paper) is transparent (tRNS): flattened, strokes kept."""
    strokes = (digits[1] > 127).astype(np.uint8)
    image = Image.fromarray(strokes, mode="L").convert("P")
    image.putpalette([255, 255, 255, 20, 20, 20] + [0] * 762)
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    assert Image.open(path).info.get("transparency") == 0   # the fixture really has a transparent index
    image = read_image(path)
    grey = np.asarray(image.convert("L"), dtype=float)
    assert image.mode == "RGB" and np.corrcoef(np.abs(grey - grey[0, 0]).ravel(), strokes.ravel())[0, 1] > 0.95


def test_sixteen_bit_rgb_png_keeps_its_levels(tmp_path):
    """48-bit RGB (a PNG PIL can read but not write): 65535 is white, 0 black, in each channel."""
    values = np.zeros((4, 6, 3), ">u2")
    values[:2, :, 0] = 65535   # top half red
    values[2:, :, 2] = 32896   # bottom half mid blue (32896 / 257 = 128)
    rows = b"".join(b"\0" + row.tobytes() for row in values)
    path = tmp_path / "deep.png"
    path.write_bytes(png_bytes(6, 4, 16, 2, rows))
    pixels = np.asarray(read_image(path))
    assert pixels.shape == (4, 6, 3)
    assert pixels[0, 0].tolist() == [255, 0, 0] and pixels[3, 5].tolist() == [0, 0, 128]


@pytest.mark.parametrize("mode, value", [("L", 200), ("RGB", (10, 200, 30)), ("RGBA", (10, 200, 30, 255)),
                                         ("1", 1), ("I;16", 40000)])
def test_one_pixel_images(tmp_path, mode, value):
    path = tmp_path / f"dot-{mode.replace(';', '')}.png"
    Image.new(mode, (1, 1), value).save(path)
    image = read_image(path)
    assert image.size == (1, 1) and image.mode in ("L", "RGB")
    channels = 3 if image.mode == "RGB" else 1
    assert tuple(to_model_input(path, plain(channels)).shape) == (channels, 28, 28)   # upscaled, not refused


def test_zero_size_image_is_refused(tmp_path):
    path = tmp_path / "nothing.png"
    path.write_bytes(png_bytes(0, 10))
    with pytest.raises(ImageError, match=r"nothing\.png"):
        read_image(path)


# ---------------------------------------------------------------------------------------------
# Decompression bombs: refused from the header, before a pixel is decoded
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def no_decoding(monkeypatch):
    """Fails a test in which any image is decoded (ImageFile.load is where PIL decodes pixels)."""
    decoded = []
    original = ImageFile.ImageFile.load

    def load(self):
        decoded.append(self.size)
        return original(self)
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return decoded


BOMBS = {"png-20000x20000": png_bytes(20000, 20000, rows=b"\0" * 100), "bmp-20000x20000": bmp_header(20000, 20000),
         "png-10000x10000": png_bytes(10000, 10000, rows=b"\0" * 100), "png-90000x1000": png_bytes(90000, 1000)}


@pytest.mark.parametrize("pil_limit", ["default", "switched off"])
@pytest.mark.parametrize("name", BOMBS)
def test_bomb_is_refused_before_decoding(tmp_path, monkeypatch, no_decoding, name, pil_limit):
    """10000x10000 is where PIL only warns and then decodes (100 MB); with PIL's global limit
    switched off (Image.MAX_IMAGE_PIXELS = None, as some libraries do) konbu's own still holds."""
    if pil_limit == "switched off":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = tmp_path / f"{name}.{name[:3]}"
    path.write_bytes(BOMBS[name])
    assert path.stat().st_size < 200
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # PIL's DecompressionBombWarning must not escape either
        with pytest.raises(ImageError, match=rf"{path.name}: .*(too large to decode safely|more than konbu decodes)"):
            read_image(path)
    assert time.perf_counter() - started < 1.0 and no_decoding == []


def test_a_large_photo_under_the_limit_is_read(tmp_path):
    """The control: a 24-megapixel scan (6000x4000, a few KB of PNG) is decoded as usual."""
    path = tmp_path / "scan.png"
    path.write_bytes(png_bytes(6000, 4000, rows=bytes(4000 * 6001)))
    assert 6000 * 4000 < MAX_PIXELS and read_image(path).size == (6000, 4000)


# ---------------------------------------------------------------------------------------------
# The corpus through `konbu predict`
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def predictor(tmp_path_factory, digits):
    """A small trained run, and the digits it is most sure of (the answer keys' inputs)."""
    folder = tmp_path_factory.mktemp("bad-images")
    run = konbu.fit(model="softmax", epochs=3, threads=2, quiet=True, out=str(folder / "run"))
    top = [answer[0] for answer in run.predict(list(digits), top=1)]
    order = sorted(range(len(digits)), key=lambda i: -top[i]["probability"])
    return run.path, [i for i in order if top[i]["probability"] > 0.5], [t["label"] for t in top]


def predict_json(run_path, *paths):
    result = konbu_cli("predict", run_path, *paths, "--top", 1, "--json")
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def exif_rotated(digit, path):
    """Stored turned a quarter counter-clockwise, with EXIF orientation 6 ("turn 90 degrees clockwise
    to show"), as a phone saves a photo taken sideways."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(digit)).save(path, quality=95, exif=exif.tobytes())


def animated(first, second, path):
    Image.fromarray(first).save(path, save_all=True, append_images=[Image.fromarray(second)], duration=100)


def transparent_canvas(digit, path):
    canvas = np.zeros((28, 28, 4), np.uint8)
    canvas[..., 3] = digit   # black strokes whose shape is all in alpha, as a web canvas saves them
    Image.fromarray(canvas).save(path)


def palette_with_transparency(digit, path):
    image = Image.fromarray((digit > 127).astype(np.uint8), mode="L").convert("P")
    image.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    image.save(path, transparency=0)


VALID = {   # name -> (file name, writer(digit, other digit, path))
    "cmyk-jpeg": ("print.jpg", lambda d, o, p: Image.fromarray(255 - d).convert("CMYK").save(p, quality=95)),
    "16-bit-png": ("deep.png", lambda d, o, p: Image.fromarray(d.astype(np.uint16) * 257).save(p)),
    "palette-transparency-png": ("palette.png", lambda d, o, p: palette_with_transparency(d, p)),
    "rgba-png": ("canvas.png", lambda d, o, p: transparent_canvas(d, p)),
    "animated-gif": ("moving.gif", lambda d, o, p: animated(d, o, p)),
    "exif-rotated-jpeg": ("phone.jpg", lambda d, o, p: exif_rotated(d, p)),
}


@pytest.mark.parametrize("name", VALID)
def test_odd_but_valid_image_is_predicted_like_the_plain_digit(predictor, digits, tmp_path, name):
    run_path, sure, labels = predictor
    digit_index = sure[0]
    other = next(i for i in sure if labels[i] != labels[digit_index])   # a second frame that would say otherwise
    file_name, write = VALID[name]
    path = tmp_path / file_name
    write(digits[digit_index], digits[other], path)
    code, [answer] = predict_json(run_path, path)
    assert code == 0 and "error" not in answer, answer
    assert answer["predictions"][0]["label"] == labels[digit_index]


def test_exif_rotation_is_what_the_model_sees(predictor, tmp_path, digits):
    """The rotation is honoured, not merely survived: the model input matches the upright digit
    and not the sideways pixels as stored (JPEG's ringing moves the ink crop a little, hence 0.6)."""
    run_path = predictor[0]
    preprocess = json.loads((run_path / "preprocess.json").read_text())
    exif_rotated(digits[3], tmp_path / "phone.jpg")
    Image.fromarray(digits[3]).save(tmp_path / "upright.png")
    Image.fromarray(np.rot90(digits[3])).save(tmp_path / "sideways.png")
    seen, upright, sideways = (to_model_input(tmp_path / name, preprocess).numpy().ravel()
                               for name in ("phone.jpg", "upright.png", "sideways.png"))
    assert np.corrcoef(seen, upright)[0, 1] > 0.6 and np.corrcoef(seen, sideways)[0, 1] < 0.3


NOISE = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)   # incompressible: a cut loses pixels
BROKEN = {   # name -> (file name, content, a part of the reason)
    "zero-bytes": ("empty.png", lambda: b"", "empty file"),
    "text-named-png": ("notes.png", lambda: b"shopping: eggs, rice, kombu\n", "not a readable image"),
    "truncated-png": ("cut.png", lambda: encoded(NOISE, "PNG")[:2000], "not a readable image"),
    "truncated-jpeg": ("cut.jpg", lambda: encoded(NOISE, "JPEG")[:2000], "not a readable image"),
    "zero-size-png": ("nothing.png", lambda: png_bytes(0, 10), "not a readable image"),
    "bomb-png": ("bomb.png", lambda: BOMBS["png-20000x20000"], "too large"),
    "bomb-bmp": ("bomb.bmp", lambda: BOMBS["bmp-20000x20000"], "too large"),
}


def encoded(pixels, file_format) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, file_format)
    return buffer.getvalue()


@pytest.mark.parametrize("name", BROKEN)
def test_broken_image_is_its_own_answer(predictor, tmp_path, name):
    run_path = predictor[0]
    file_name, content, says = BROKEN[name]
    path = tmp_path / file_name
    path.write_bytes(content())
    code, [answer] = predict_json(run_path, path)
    assert code == 1 and answer["image"] == str(path) and "predictions" not in answer
    assert says in answer["error"] and "\n" not in answer["error"], answer


@pytest.mark.parametrize("mode, value", [("L", 0), ("L", 255), ("RGBA", (0, 0, 0, 0))])
def test_one_pixel_image_through_predict(predictor, tmp_path, mode, value):
    """One pixel holds no stroke: an answer ("no digit found") or that image's own error, never a crash."""
    path = tmp_path / "dot.png"
    Image.new(mode, (1, 1), value).save(path)
    code, [answer] = predict_json(predictor[0], path)
    assert (code, "predictions" in answer) in ((0, True), (1, False)), answer
