"""konbu.reporting on real runs: calibrate_run stores a temperature that predict uses, and
build_report draws every figure, writes evaluation.json and a report with every section.

    .venv/bin/python -m pytest tests/test_reporting.py -q

Each run is a 1-epoch tfjs-mnist on the embedded MNIST sample (a few seconds on 2 cores).
"""

import json
import re

import pytest
import torch
from PIL import Image

import konbu
from konbu.data import load_dataset, validation_split
from konbu.errors import ConfigError, RunDirectoryError
from konbu.inspect.calibration import expected_calibration_error
from konbu.reporting import build_report, calibrate_run, run_validation_split

CALIBRATION_KEYS = {"temperature", "val_nll_before", "val_nll_after", "ece_before", "ece_after", "bins", "n"}
REPORT_SECTIONS = ["Diagnosis", "Summary", "Final metrics", "Training curves", "Confusion matrix", "Per-class metrics", "Mistakes",
                   "Filters", "Calibration", "Model summary", "Per-epoch metrics", "Config", "Versions"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return konbu.fit(model="tfjs-mnist", epochs=1, quiet=True, threads=2, out=str(tmp_path_factory.mktemp("r") / "run"))


def assert_png(path, min_width=300):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= min_width
        assert len(image.convert("L").getcolors(256)) > 8, f"{path.name} looks blank"


def test_validation_split_is_the_one_fit_used(run):
    val = run_validation_split(run)
    assert len(val) == run.info["data"]["validation"] == 400
    full = load_dataset("mnist-sample", "train")
    _, expected = validation_split(full, run.info["config"]["val_fraction"], run.info["config"]["seed"])
    assert torch.equal(val.images, expected.images) and torch.equal(val.labels, expected.labels)


def test_calibrate_run_stores_the_temperature_predict_uses(run):
    summary = calibrate_run(run)
    stored = json.loads((run.path / "calibration.json").read_text())
    assert stored == summary and set(stored) == CALIBRATION_KEYS and stored["n"] == 400
    assert stored["temperature"] > 0 and stored["temperature"] != 1.0
    assert stored["val_nll_after"] <= stored["val_nll_before"]
    assert run.temperature == stored["temperature"]
    assert_png(run.path / "figures" / "calibration.png", 800)

    reloaded = konbu.Run.load(run.path)
    assert reloaded.temperature == stored["temperature"]
    test = load_dataset("mnist-sample", "test")
    digit = test.images[0, 0].numpy()
    answer = reloaded.predict(digit, top=10)
    batch = torch.from_numpy(digit)[None, None]
    expected = (reloaded.logits(batch) / stored["temperature"]).softmax(dim=1)[0]
    by_index = {a["index"]: a["probability"] for a in answer}
    assert by_index == pytest.approx({i: float(p) for i, p in enumerate(expected)}, abs=1e-6)


def test_evaluate_accuracy_does_not_depend_on_the_temperature(run):
    original = run.temperature
    try:
        run.temperature = 1.0
        plain = run.evaluate()
        run.temperature = 3.0
        scaled = run.evaluate()
    finally:
        run.temperature = original
    assert scaled["accuracy"] == plain["accuracy"] and scaled["per_class"] == plain["per_class"]
    assert scaled["loss"] == plain["loss"]                       # the raw loss, as training logged it
    assert scaled["calibrated_loss"] != plain["calibrated_loss"]
    assert plain["calibrated_loss"] == pytest.approx(plain["loss"])
    assert scaled["temperature"] == 3.0 and plain["ece"] == pytest.approx(plain["calibrated_ece"])


def test_build_report_on_a_run_from_before_calibration(run):
    # Older runs have no calibration.json: they load with T = 1, and the report fits one on the
    # validation split recomputed as fit() made it.
    (run.path / "calibration.json").unlink(missing_ok=True)
    (run.path / "figures" / "calibration.png").unlink(missing_ok=True)
    old = konbu.Run.load(run.path)
    assert old.temperature == 1.0
    path = build_report(old)
    assert path == run.path / "report.html"
    assert json.loads((run.path / "calibration.json").read_text())["n"] == 400 and old.temperature != 1.0
    for name in ("curves", "confusion", "mistakes", "filters", "calibration"):
        assert_png(run.path / "figures" / f"{name}.png")
    evaluation = json.loads((run.path / "evaluation.json").read_text())
    assert evaluation["n"] == 1000 and len(evaluation["per_class"]) == 10
    assert evaluation["temperature"] == old.temperature
    assert evaluation["accuracy"] == pytest.approx(run.info["final"]["test_accuracy"])
    page = path.read_text(encoding="utf-8")
    assert re.findall(r"<h2>(.*?)</h2>", page) == REPORT_SECTIONS
    # curves, confusion, mistakes, filters before + after, calibration; and any figure a finding shows
    shown = sum(bool(f["figure"]) for f in json.loads((run.path / "diagnosis.json").read_text())["findings"])
    assert page.count("data:image/png;base64,") == 6 + shown
    assert f"T = {old.temperature:.3g}" in page


def test_figures_drawn_in_a_forked_child_are_the_ones_one_process_draws(run, monkeypatch, one_thread):
    """build_report draws the curves, confusion and mistakes in a forked child (a second core for
    matplotlib): the same bytes as drawing them all here."""
    import os

    from konbu import forked

    forks = []
    fork = os.fork

    def counted_fork():
        forks.append(1)
        return fork()
    monkeypatch.setattr(os, "fork", counted_fork)
    names = ("curves", "confusion", "mistakes", "filters", "calibration")

    def drawn():
        for name in names:
            (run.path / "figures" / f"{name}.png").unlink()
        build_report(konbu.Run.load(run.path))
        return {name: (run.path / "figures" / f"{name}.png").read_bytes() for name in names}
    in_child = drawn()
    assert forks == [1]
    monkeypatch.setattr(forked, "can_fork", lambda: False)
    assert drawn() == in_child and forks == [1]


def test_damaged_calibration_json_is_a_run_directory_error(run):
    file = run.path / "calibration.json"
    saved = file.read_text() if file.exists() else None
    try:
        file.write_text('{"temperature": -2}')
        with pytest.raises(RunDirectoryError, match="positive number"):
            konbu.Run.load(run.path)
        file.write_text("{torn")
        with pytest.raises(RunDirectoryError, match="not valid JSON"):
            konbu.Run.load(run.path)
    finally:
        file.write_text(saved) if saved is not None else file.unlink()


def test_no_validation_split_cannot_be_calibrated(run):
    run.info["config"]["val_fraction"] = 0.0     # in memory only: run.json is untouched
    try:
        with pytest.raises(ConfigError, match="validation split"):
            calibrate_run(run)
    finally:
        run.info["config"]["val_fraction"] = json.loads((run.path / "run.json").read_text())["config"]["val_fraction"]


def test_softmax_regression_gets_class_weights(tmp_path):
    run = konbu.fit(model="softmax", dataset="digits", epochs=1, quiet=True, threads=2, out=str(tmp_path / "softmax"))
    val = run_validation_split(run)
    page = build_report(run, val_dataset=val).read_text(encoding="utf-8")
    assert_png(run.path / "figures" / "class_weights.png")
    assert not (run.path / "figures" / "filters.png").exists()
    assert "<h2>Class weights</h2>" in page and "<h2>Filters</h2>" not in page
    # the stored temperature calibrates the validation split at least as well as the raw softmax
    logits = run.logits(val.images)
    stored = json.loads((run.path / "calibration.json").read_text())
    assert expected_calibration_error((logits / run.temperature).softmax(dim=1), val.labels) == pytest.approx(
        stored["ece_after"])
