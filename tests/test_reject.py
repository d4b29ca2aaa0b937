"""`predict(..., reject_below=P)`: "I don't know" when the top (calibrated) probability is below P.

    .venv/bin/python -m pytest tests/test_reject.py -q

A digit model sees only digits; shown noise it should not answer "98% 7". The noise here is
random blobs (a random 7x7 on/off pattern upscaled to 28x28): uniform pixel noise is refused before
the model by MNIST-style ink normalisation ("no ink found"); blobs get through it as "ink".
"""

import numpy as np
import pytest
from PIL import Image

import konbu
from konbu.data import load_dataset
from konbu.errors import ConfigError
from konbu.predict import describe, predict, predict_files
from konbu.reporting import calibrate_run

THRESHOLD = 0.6


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = konbu.fit(model="tfjs-mnist", epochs=1, quiet=True, threads=2, out=str(tmp_path_factory.mktemp("j") / "run"))
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
