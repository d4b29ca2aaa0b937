"""`predict(..., reject_below=P)`: "I don't know" when the top (calibrated) probability is below P.

    .venv/bin/python -m pytest tests/test_reject.py -q

A digit model sees only digits; shown noise it should not answer "98% 7". The noise here is
random blobs (a random 7x7 on/off pattern upscaled to 28x28): uniform pixel noise is refused before
the model by MNIST-style ink normalisation ("no ink found"); blobs get through it as "ink".

Also the in-memory API's answers for images with no digit (label None, a reason) and for bad ones
(raised), and predict_files' per-file answers (every file answered, an "error" for a bad one).
"""

import numpy as np
import pytest
from PIL import Image

import konbu
from konbu.data import load_dataset
from konbu.errors import ConfigError, ImageError
from konbu.predict import describe, predict, predict_files
from konbu.reporting import calibrate_run

THRESHOLD = 0.6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # one epoch of a cosine at Keras's 1e-3: a model this unsure of noise is what the threshold was chosen on
    run = konbu.fit(model="tfjs-mnist", epochs=1, lr_schedule="cosine", lr=1e-3, quiet=True, threads=2,
                    out=str(tmp_path_factory.mktemp("j") / "run"))
    calibrate_run(run)
    return run


def noise_images(count=24, seed=0):
    rng = np.random.default_rng(seed)
    patterns = [np.where(rng.random((7, 7)) < 0.3, 255, 0).astype(np.uint8) for _ in range(count)]
    return [np.asarray(Image.fromarray(pattern).resize((28, 28), Image.Resampling.BICUBIC)) for pattern in patterns]


def test_noise_is_mostly_unknown_and_digits_mostly_known(run):
    noise = run.predict(noise_images(), top=3, reject_below=THRESHOLD)
    digits = run.predict([image[0].numpy() for image in load_dataset("mnist-sample", "test").images[:60]],
                         top=3, reject_below=THRESHOLD)
    unknown_noise = sum(answer["label"] is None for answer in noise)
    unknown_digits = sum(answer["label"] is None for answer in digits)
    assert unknown_noise >= 2 / 3 * len(noise), [round(a["probability"], 2) for a in noise]
    assert unknown_digits <= 0.25 * len(digits)
    for answer in noise + digits:
        # the rule, exactly: unknown iff the best probability is below the threshold
        assert (answer["label"] is None) == (answer["probability"] < THRESHOLD)
        assert (answer["index"] is None) == (answer["label"] is None)
        # the candidates stay, best first, and the best one's probability is the answer's
        assert len(answer["predictions"]) == 3 and answer["predictions"][0]["probability"] == answer["probability"]
        if answer["label"] is not None:
            assert answer["label"] == answer["predictions"][0]["label"]


def test_describe_says_unknown_with_the_best_guess():
    candidates = [{"label": "7", "index": 7, "probability": 0.41}, {"label": "1", "index": 1, "probability": 0.3}]
    assert describe({"label": None, "index": None, "probability": 0.41, "predictions": candidates}) == \
        "unknown (best guess 7, 41%)"
    assert describe({"label": "7", "index": 7, "probability": 0.41, "predictions": candidates}) == "7 (41%)"


def test_without_a_threshold_the_answer_shape_is_unchanged(run):
    image = noise_images(1)[0]
    plain = run.predict(image, top=2)
    assert isinstance(plain, list) and set(plain[0]) == {"label", "index", "probability"}
    # threshold 0 never rejects: same candidates, label = the best one
    kept = predict(run, image, top=2, reject_below=0.0)
    assert kept["predictions"] == plain and kept["label"] == plain[0]["label"]


def test_predict_files_reports_null_label(run, tmp_path):
    path = tmp_path / "noise.png"
    Image.fromarray(noise_images(1)[0]).save(path)
    [answer] = predict_files(run, [path], top=3, reject_below=1.0)   # nothing is ever 100% sure here
    assert answer["image"] == str(path) and answer["label"] is None and len(answer["predictions"]) == 3


@pytest.mark.parametrize("threshold", [-0.1, 1.5, True, float("nan"), "high"])
def test_threshold_must_be_a_probability(run, threshold):
    with pytest.raises(ConfigError, match="reject-below"):
        run.predict(noise_images(1)[0], reject_below=threshold)


# ---------------------------------------------------------------------------------------------
# Images with no digit, and images that can't be read
# ---------------------------------------------------------------------------------------------

def test_blank_and_pixel_noise_are_no_digit_answers(run):
    blank, pixels = np.full((28, 28), 255, np.uint8), np.random.default_rng(0).integers(0, 256, (28, 28), np.uint8)
    digit, blobs = load_dataset("mnist-sample", "test").images[0, 0].numpy(), noise_images(1)[0]
    plain = run.predict([digit, blank, pixels, blobs], top=3)
    assert [len(answer) for answer in plain] == [3, 0, 0, 3]   # no candidates for an image with no digit
    decided = run.predict([digit, blank, pixels, blobs], top=3, reject_below=0.0)
    for answer in decided[1:3]:
        assert answer == {"label": None, "index": None, "probability": None, "predictions": [],
                          "reason": answer["reason"]} and answer["reason"].startswith("no digit found")
        assert describe(answer) == answer["reason"]
    # the digit and the blobs are answered as they are alone: the blank images change nothing
    alone = run.predict(digit, top=3)
    assert [p["index"] for p in decided[0]["predictions"]] == [p["index"] for p in alone]
    assert [p["probability"] for p in decided[0]["predictions"]] == pytest.approx([p["probability"] for p in alone],
                                                                                  abs=1e-5)
    assert decided[3]["label"] is not None and len(decided[3]["predictions"]) == 3


def test_a_bad_in_memory_image_raises(run):
    with pytest.raises(ImageError, match=r"values in \[0, 1\]"):
        run.predict([noise_images(1)[0], np.full((28, 28), 7.0)])


def test_predict_files_answers_every_file(run, tmp_path):
    good, empty, blank = tmp_path / "good.png", tmp_path / "empty.png", tmp_path / "blank.png"
    Image.fromarray(load_dataset("mnist-sample", "test").images[0, 0].numpy()).save(good)
    empty.write_bytes(b"")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(blank)
    answers = predict_files(run, [empty, good, tmp_path / "missing.png", blank], top=2)
    assert [answer["image"] for answer in answers] == [str(empty), str(good), str(tmp_path / "missing.png"),
                                                       str(blank)]
    assert answers[0] == {"image": str(empty), "error": answers[0]["error"]} and "0 bytes" in answers[0]["error"]
    assert answers[2] == {"image": str(tmp_path / "missing.png"), "error": answers[2]["error"]}
    assert answers[2]["error"].startswith("no such file")
    assert set(answers[1]) == {"image", "label", "index", "probability", "predictions"}
    assert answers[1] == {"image": str(good), **predict(run, good, top=2, reject_below=0.0)}
    assert answers[3]["label"] is None and answers[3]["reason"].startswith("no digit found")
    assert describe(answers[0]) == "error: " + answers[0]["error"]
