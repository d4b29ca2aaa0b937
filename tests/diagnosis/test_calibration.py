"""The calibration check on a run made over-confident (72 training images memorised without label
smoothing), on the healthy run (under-confident by konbu's default smoothing 0.1, which predict's
temperature corrects: no finding) and on copies whose calibration.json or settings were edited.

    .venv/bin/python -m pytest -q tests/diagnosis/test_calibration.py
"""

import json
import shutil

import pytest

from konbu.diagnosis import BETTER, NOTE, Context
from konbu.diagnosis.calibration import LIKELIHOOD_RATIO, MATERIAL_ECE, calibration
from konbu.runs import CALIBRATION_FILE, RUN_FILE, Run

# 72 digits at lr 0.03 in batches of 8 for 25 epochs, no smoothing: T ~ 2.3, ECE ~ 8% before
OVERCONFIDENT = dict(model="mlp", dataset="digits", epochs=25, val_fraction=0.95, label_smoothing=0, augment="none",
                     lr_schedule="constant", lr=0.03, batch_size=8)


def calibrated(run, tmp_path, label_smoothing=None, **stored):
    """The calibration findings of a copy of `run` with calibration.json fields (and smoothing) replaced."""
    copy = shutil.copytree(run.path, tmp_path / "copy")
    if stored:
        saved = json.loads((copy / CALIBRATION_FILE).read_text())
        (copy / CALIBRATION_FILE).write_text(json.dumps({**saved, **stored}))
    if label_smoothing is not None:
        info = json.loads((copy / RUN_FILE).read_text())
        info["config"]["label_smoothing"] = label_smoothing
        (copy / RUN_FILE).write_text(json.dumps(info))
    return calibration(Context(Run.load(copy)))


def nll_gain(n: int, ratio: float) -> dict:
    """val_nll_before/after whose likelihood ratio 2 n (before - after) is `ratio`."""
    return {"val_nll_before": 0.5, "val_nll_after": 0.5 - ratio / (2 * n)}


@pytest.fixture(scope="module")
def overconfident(train):
    return train("overconfident", **OVERCONFIDENT)


def test_a_memorising_run_is_over_confident(overconfident):
    [finding] = calibration(Context(overconfident))
    stored = json.loads((overconfident.path / CALIBRATION_FILE).read_text())
    assert finding.id == "overconfident"
    assert finding.data["temperature"] == stored["temperature"] > 1.5
    assert finding.data["ece_before"] == stored["ece_before"] > finding.data["threshold"] >= MATERIAL_ECE
    assert finding.data["likelihood_ratio"] > LIKELIHOOD_RATIO
    assert "without label smoothing" in finding.evidence and "konbu predict applies T" in finding.evidence
    same = "--epochs 25 --batch-size 8 --lr 0.03 --lr-schedule constant --augment none --val-fraction 0.95"
    assert finding.next == [f"konbu train --model mlp --dataset digits {same} --label-smoothing 0.1",
                            f"konbu show calibration {overconfident.path}"]
    assert finding.figure == "figures/calibration.png"


def test_the_default_smoothing_under_confidence_is_not_reported(healthy):
    stored = json.loads((healthy.path / CALIBRATION_FILE).read_text())
    assert stored["temperature"] < 1 and stored["ece_before"] > 0.05   # it is there, and T takes it out
    assert calibration(Context(healthy)) == []


def test_heavy_smoothing_is_named_as_the_cause(healthy, tmp_path):
    [finding] = calibrated(healthy, tmp_path, label_smoothing=0.3)
    assert finding.id == "underconfident" and finding.severity == NOTE
    assert "Label smoothing 0.3" in finding.evidence and "73%" in finding.evidence   # 1 - 0.3 + 0.3 / 10
    assert finding.next[0] == "konbu train --model mlp --dataset digits --epochs 20 --label-smoothing 0.1"


def test_under_confidence_without_smoothing(healthy, tmp_path):
    [finding] = calibrated(healthy, tmp_path, label_smoothing=0)
    assert finding.id == "underconfident" and "Without label smoothing" in finding.evidence
    assert finding.next == [f"konbu show calibration {tmp_path / 'copy'}"]


def test_over_confidence_despite_smoothing_suggests_more(healthy, tmp_path):
    n = 1000
    [finding] = calibrated(healthy, tmp_path, temperature=1.8, ece_before=0.09, ece_after=0.05, n=n, **nll_gain(n, 40))
    assert finding.id == "overconfident" and finding.severity == BETTER    # 5% left after T: predict is off too
    assert "Even with label smoothing 0.1" in finding.evidence
    assert finding.next[0].endswith("--label-smoothing 0.2")


@pytest.mark.parametrize("stored", [
    dict(temperature=1.5, ece_before=0.025, ece_after=0.01, n=4000),      # under 3%: not material
    dict(temperature=1.5, ece_before=0.06, ece_after=0.02, n=143),        # under 1/sqrt(143) = 8.4%: chance
    dict(temperature=2.9, ece_before=0.05, ece_after=0.04, n=1000, val_nll_before=2.3020, val_nll_after=2.3010),
])                                                                        # a likelihood ratio of 2: no direction
def test_miscalibration_within_noise_is_not_reported(healthy, tmp_path, stored):
    stored = {**nll_gain(stored["n"], 50), **stored}     # a clear direction, unless the case says otherwise
    assert calibrated(healthy, tmp_path, label_smoothing=0, **stored) == []


def test_a_run_without_calibration_says_nothing(healthy, tmp_path):
    copy = shutil.copytree(healthy.path, tmp_path / "copy")
    (copy / CALIBRATION_FILE).unlink()
    assert calibration(Context(Run.load(copy))) == []
