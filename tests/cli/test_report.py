"""`konbu report`, `konbu show calibration` and `konbu predict --reject-below` through the CLI runner."""

import json
import re

import numpy as np
import pytest
from PIL import Image

import konbu as konbu_api
from konbu.cli.testing import invoke as konbu
from konbu.data import load_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    # trained through the API (quiet, no progress bar): `konbu train` itself is tested in test_commands.py
    out = tmp_path_factory.mktemp("cli-report") / "run"
    konbu_api.fit(model="tfjs-mnist", epochs=1, quiet=True, threads=2, out=str(out))
    return out


def assert_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 800
        assert len(image.convert("L").getcolors(256)) > 20


def test_show_calibration_fits_stores_and_draws(trained, tmp_path):
    (trained / "calibration.json").unlink(missing_ok=True)        # as a run trained before calibration
    result = konbu("show", "calibration", trained)
    assert result.exit_code == 0, result.output
    stored = json.loads((trained / "calibration.json").read_text())
    assert f"fitted temperature {stored['temperature']:.4g} on 400 validation images" in result.output
    assert f"ECE {stored['ece_before']:.2%} -> {stored['ece_after']:.2%}" in result.output
    assert_png(trained / "figures" / "calibration.png")
    # With a temperature stored: draw only (no refit), where --out says.
    result = konbu("show", "calibration", trained, "--out", tmp_path / "reliability.png")
    assert result.exit_code == 0, result.output
    assert "fitted" not in result.output and f"temperature {stored['temperature']:.4g}" in result.output
    assert_png(tmp_path / "reliability.png")


def test_report_rebuilds_every_section(trained):
    (trained / "report.html").unlink(missing_ok=True)
    result = konbu("report", trained)
    assert result.exit_code == 0, result.output
    assert f"report: {trained / 'report.html'}" in result.output.replace("\n", "")
    page = (trained / "report.html").read_text(encoding="utf-8")
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    for section in ("Summary", "Final metrics", "Training curves", "Confusion matrix", "Per-class metrics",
                    "Mistakes", "Filters", "Calibration", "Config"):
        assert section in headings
    assert (trained / "evaluation.json").is_file()


def test_evaluate_prints_calibration(trained):
    result = konbu("evaluate", trained, "--json")
    metrics = json.loads(result.output)
    assert {"temperature", "calibrated_loss", "ece", "calibrated_ece"} <= set(metrics)
    result = konbu("evaluate", trained)
    assert result.exit_code == 0 and "calibration: temperature" in result.output


def test_predict_reject_below(trained, tmp_path):
    digit = tmp_path / "digit.png"
    Image.fromarray(load_dataset("mnist-sample", "test").images[0, 0].numpy()).save(digit)
    blobs = tmp_path / "blobs.png"
    pattern = np.where(np.random.default_rng(3).random((7, 7)) < 0.3, 255, 0).astype(np.uint8)
    Image.fromarray(pattern).resize((28, 28), Image.Resampling.BICUBIC).save(blobs)

    # 1.0: nothing this model says is 100% sure -> every label null, candidates kept
    result = konbu("predict", trained, digit, blobs, "--reject-below", "1.0", "--json")
    assert result.exit_code == 0, result.output
    answers = json.loads(result.output)
    assert [a["label"] for a in answers] == [None, None]
    assert all(len(a["predictions"]) == 3 and a["probability"] == a["predictions"][0]["probability"] for a in answers)
    # 0: never rejects
    answers = json.loads(konbu("predict", trained, digit, "--reject-below", "0", "--json").output)
    assert answers[0]["label"] == answers[0]["predictions"][0]["label"]
    # the printed form names the best guess
    result = konbu("predict", trained, blobs, "--reject-below", "1.0")
    assert re.search(r"unknown \(best guess \S+, \d+%\)", result.output), result.output


@pytest.mark.parametrize("args, message", [
    (["predict", "{run}", "{image}", "--reject-below", "1.5"], "reject-below"),
    (["report", "{missing}"], "not found"),
    (["show", "calibration", "{missing}"], "not found"),
])
def test_user_mistakes_exit_2(trained, tmp_path, args, message):
    image = tmp_path / "digit.png"
    Image.fromarray(load_dataset("mnist-sample", "test").images[1, 0].numpy()).save(image)
    filled = [a.format(run=trained, image=image, missing=tmp_path / "nope") for a in args]
    result = konbu(*filled)
    assert result.exit_code == 2 and message in result.output, result.output


def test_show_calibration_needs_a_validation_split(tmp_path):
    out = tmp_path / "no-val"
    konbu_api.fit(model="softmax", dataset="digits", epochs=1, val_fraction=0.0, quiet=True, threads=2, out=str(out))
    result = konbu("show", "calibration", out)
    assert result.exit_code == 2 and "without a validation split" in result.output
    assert not (out / "calibration.json").exists()
