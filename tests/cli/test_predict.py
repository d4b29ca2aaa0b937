"""`konbu predict` with bad files among good ones: every image answered, each bad one with its own
reason, exit code 1; usage mistakes still exit 2 before any image is read.

    .venv/bin/python -m pytest tests/cli/test_predict.py -q

The run is a short tfjs-mnist training (an MNIST-style run: blank paper is "no digit found").
"""

import io
import json

import numpy as np
import pytest
from PIL import Image

from konbu.cli.testing import invoke as konbu
from konbu.data import load_dataset

UNREADABLE = {"empty.png": "an empty file, 0 bytes", "text.png": "not a readable image",
              "truncated.png": "truncated"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "run"
    result = konbu("train", "--model", "tfjs-mnist", "--steps", "60", "--threads", "2", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """{name: path}, in the order they are passed: good.png, four bad ones, noise.png, good2.png."""
    folder = tmp_path_factory.mktemp("images")
    digits = load_dataset("mnist-sample", "test").images
    paths = {name: folder / name for name in ("good.png", "empty.png", "text.png", "truncated.png", "blank.png",
                                              "noise.png", "good2.png")}
    Image.fromarray(digits[0, 0].numpy()).save(paths["good.png"])
    Image.fromarray(digits[1, 0].numpy()).save(paths["good2.png"])
    paths["empty.png"].write_bytes(b"")
    paths["text.png"].write_text("a shopping list, not pixels\n")
    whole = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)).save(whole, "PNG")
    paths["truncated.png"].write_bytes(whole.getvalue()[:len(whole.getvalue()) // 2])
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(paths["blank.png"])
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (28, 28), dtype=np.uint8)).save(paths["noise.png"])
    return paths


def test_every_image_is_answered_and_each_bad_one_says_why(run, images):
    result = konbu("predict", run, *images.values(), "--json")
    assert result.exit_code == 1, result.output
    answers = json.loads(result.stdout)   # stdout stays one JSON list; the summary line is on stderr
    assert [answer["image"] for answer in answers] == [str(path) for path in images.values()]
    by_name = {name: answer for name, answer in zip(images, answers)}
    for name, reason in UNREADABLE.items():
        assert set(by_name[name]) == {"image", "error"} and reason in by_name[name]["error"], by_name[name]
        assert str(images[name]) not in by_name[name]["error"]   # the path is the "image" field, not repeated
    for name in ("good.png", "good2.png"):
        answer = by_name[name]
        assert "error" not in answer and answer["label"] == answer["predictions"][0]["label"]
        assert len(answer["predictions"]) == 3
    # blank paper and pixel noise are answers, not errors: no digit, and why
    for name in ("blank.png", "noise.png"):
        answer = by_name[name]
        assert "error" not in answer and answer["label"] is None and answer["index"] is None
        assert answer["predictions"] == [] and answer["reason"].startswith("no digit found")
    # the good images get the answers they get alone
    alone = konbu("predict", run, images["good.png"], images["good2.png"], "--json")
    assert alone.exit_code == 0
    for answer, together in zip(json.loads(alone.stdout), (by_name["good.png"], by_name["good2.png"])):
        assert answer["label"] == together["label"]
        assert answer["probability"] == pytest.approx(together["probability"], abs=1e-5)
    assert "3 of 7 images could not be read" in result.stderr


def test_the_printed_form_has_one_line_per_bad_image(run, images):
    result = konbu("predict", run, *images.values())
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stdout.splitlines()
    for name, reason in UNREADABLE.items():
        [line] = [line for line in lines if line.startswith(f"{images[name]}:")]
        assert line.startswith(f"{images[name]}: error: ") and reason in line
    [blank] = [line for line in lines if line.startswith(f"{images['blank.png']}:")]
    assert blank.startswith(f"{images['blank.png']}: no digit found")
    assert sum("%" in line for line in lines) >= 2 * 3   # the good images' candidates


def test_reject_below_and_show_input_skip_the_bad_images(run, images, tmp_path):
    result = konbu("predict", run, images["empty.png"], images["blank.png"], images["good.png"],
                   "--reject-below", "1.0", "--json", "--show-input", tmp_path / "check.png")
    assert result.exit_code == 1
    empty, blank, good = json.loads(result.stdout)
    assert set(empty) == {"image", "error"}
    assert blank["label"] is None and blank["reason"].startswith("no digit found")
    assert good["label"] is None and len(good["predictions"]) == 3   # nothing is 100% sure
    assert Image.open(tmp_path / "check.png").size[0] > 100   # the first classified image: good.png


def test_only_bad_images_exit_1_and_nothing_is_shown(run, images, tmp_path):
    result = konbu("predict", run, images["text.png"], images["blank.png"], "--show-input", tmp_path / "check.png")
    assert result.exit_code == 1 and "text.png: error:" in result.stdout
    assert not (tmp_path / "check.png").exists() and "input check" not in result.output
    assert konbu("predict", run, images["blank.png"]).exit_code == 0   # an answer, not a failure


@pytest.mark.parametrize("mistake", ["missing run", "bad threshold", "top 0", "unknown option"])
def test_usage_mistakes_still_exit_2(run, images, tmp_path, mistake):
    args = {"missing run": [tmp_path / "no-run", images["good.png"]],
            "bad threshold": [run, images["empty.png"], "--reject-below", "1.5"],
            "top 0": [run, images["text.png"], "--top", "0"],
            "unknown option": [run, images["good.png"], "--colour"]}[mistake]
    result = konbu("predict", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error" in result.output.lower()
    assert "could not be read" not in result.output   # refused as a whole, before any image
