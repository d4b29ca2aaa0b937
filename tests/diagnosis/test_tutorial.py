"""The tutorial comparison on the tf-beginners recipe shortened to 10 of its 1,000 steps on the
embedded digits (~81%, below the tutorial's 92%, for both reasons), on copies whose reported figure
or settings were edited (within the noise, above it, nothing left to blame, the recipe missing) and
on the healthy run, which is no recipe's.

    .venv/bin/python -m pytest -q tests/diagnosis/test_tutorial.py
"""

import json
import math
import shutil

import pytest

from konbu.diagnosis import BETTER, NOTE, Context
from konbu.diagnosis.tutorial import NOISE_SE, tutorial
from konbu.runs import RUN_FILE, Run


def compared(run, tmp_path, records=None, **info):
    """The tutorial findings of a copy of `run` with run.json fields set from `info` (and the
    metrics.jsonl records replaced)."""
    copy = shutil.copytree(run.path, tmp_path / "copy")
    stored = json.loads((copy / RUN_FILE).read_text())
    (copy / RUN_FILE).write_text(json.dumps({**stored, **info}))
    if records is not None:
        (copy / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return tutorial(Context(Run.load(copy)))


@pytest.fixture(scope="module")
def shortened(train):
    return train("tf-beginners", recipe="tf-beginners", dataset="digits", steps=10)


def test_a_shortened_recipe_on_other_data_falls_short_and_says_why(shortened):
    [finding] = tutorial(Context(shortened))
    accuracy, n = shortened.info["final"]["test_accuracy"], shortened.info["final"]["test_n"]
    assert finding.id == "below-tutorial" and finding.severity == BETTER
    assert finding.data["reported"] == 0.92 and finding.data["accuracy"] == accuracy and n == 359
    assert finding.data["standard_error"] == pytest.approx(math.sqrt(0.92 * 0.08 / 359))
    assert finding.data["gap"] == pytest.approx(accuracy - 0.92)
    assert finding.data["gap"] < -NOISE_SE * finding.data["standard_error"]
    assert finding.data["reasons"] == [
        "it trained 10 of the tutorial's 1,000 steps",
        f"it trained on digits, not mnist ({shortened.info['data']['train']:,} training images against 55,002)"]
    assert finding.title.endswith(": it trained 10 of the tutorial's 1,000 steps")
    assert finding.next == ["konbu train --recipe tf-beginners"]


def test_within_the_noise_it_matches_and_above_it_beats(shortened, tmp_path):
    accuracy = shortened.info["final"]["test_accuracy"]
    [finding] = compared(shortened, tmp_path / "close", reported={"accuracy": accuracy + 0.01, "note": "..."})
    assert finding.id == "matches-tutorial" and finding.severity == NOTE   # 1 point on 359 images: +-4
    [finding] = compared(shortened, tmp_path / "beaten", reported={"accuracy": accuracy - 0.08, "note": "..."})
    assert finding.id == "above-tutorial" and "10 of the tutorial's 1,000 steps" in finding.evidence


def test_with_the_tutorials_own_settings_the_seed_is_left(shortened, tmp_path):
    config = {**shortened.info["config"], "steps": 1000}
    records = [json.loads(line) for line in (shortened.path / "metrics.jsonl").read_text().splitlines()]
    records[-1] = {**records[-1], "step": 1000}             # as if it had trained the full 1,000 steps...
    data = {**shortened.info["data"], "train": 55_000}      # ...on all of MNIST
    [finding] = compared(shortened, tmp_path, records, config=config, dataset="mnist", data=data)
    assert finding.id == "below-tutorial" and finding.data["reasons"] == []
    assert "the seed or the machine" in finding.evidence
    assert finding.next == ["konbu train --recipe tf-beginners --seed 1"]


def test_other_changed_settings_are_listed(shortened, tmp_path):
    config = {**shortened.info["config"], "lr": 0.05}
    [finding] = compared(shortened, tmp_path, config=config)
    assert finding.data["reasons"][-1] == "settings changed from the tutorial's: lr 0.05 (tutorial 0.5)"


def test_a_recipe_file_that_is_not_here_still_compares(shortened, tmp_path):
    config = {**shortened.info["config"], "recipe": str(tmp_path / "gone.yaml")}
    [finding] = compared(shortened, tmp_path, config=config)
    assert finding.id == "below-tutorial" and "not on this machine" in finding.evidence


def test_a_run_that_is_no_recipe_or_reports_no_figure_says_nothing(healthy, shortened, tmp_path):
    assert tutorial(Context(healthy)) == []
    assert compared(shortened, tmp_path, reported={"accuracy": None, "note": "no figure"}) == []
