"""The class checks on a run made to show them, and their silence on the healthy run.

The run trains on a folder of the embedded digits built to be hard in two known ways: the images of
digit 1 are split between two classes, `one` and `uno`, which no model can tell apart (a confused
pair, and one of the two missed about half the time), and `three` has a tenth of the images of the
others (an imbalanced training set).

    .venv/bin/python -m pytest -q tests/diagnosis/test_classes.py
"""

import json
import shlex
import shutil

import pytest
import torch
from PIL import Image

from konbu import Run
from konbu.data import load_data
from konbu.diagnosis import BETTER, NOTE, Context, diagnose
from konbu.diagnosis.classes import class_imbalance, confused_pairs, low_recall
from konbu.errors import MissingDataError
from konbu.runs import RUN_FILE

# class folder -> (digit, first image of that digit, how many): `one` and `uno` share digit 1
PLAN = {"zero": (0, 0, 150), "one": (1, 0, 75), "uno": (1, 75, 75), "two": (2, 0, 150), "three": (3, 0, 15)}


def findings(run, check):
    return {finding.id: finding for finding in check(Context(run))}


@pytest.fixture(scope="module")
def hard_classes(train, tmp_path_factory):
    root = tmp_path_factory.mktemp("hard-classes")
    train_split, test_split = load_data("digits")
    images = torch.cat([train_split.images, test_split.images])
    labels = torch.cat([train_split.labels, test_split.labels])
    for name, (digit, start, count) in PLAN.items():
        (root / name).mkdir()
        for index, image in enumerate(images[labels == digit][start:start + count]):
            Image.fromarray(image[0].numpy()).save(root / name / f"{index}.png")
    return train("hard-classes", model="mlp", dataset=f"folder:{root}", epochs=10)


def test_the_healthy_run_has_no_class_findings(healthy):
    assert diagnose(healthy, checks=["confused-pairs", "low-recall", "class-imbalance"]) == []


def test_two_classes_of_the_same_digit_are_the_confused_pair(hard_classes):
    found = findings(hard_classes, confused_pairs)["confused-pairs"]
    top = found.data["pairs"][0]
    assert {top["true"], top["predicted"]} == {"one", "uno"} and top["share_of_errors"] >= 0.2
    confusion = torch.tensor(Context(hard_classes).evaluation["confusion"])
    assert found.data["errors"] == int(confusion.sum() - confusion.trace())
    run = shlex.quote(str(hard_classes.path))
    assert found.severity == NOTE and found.next == [f"konbu show confusion {run} --normalize",
                                                     f"konbu show mistakes {run}"]


def test_the_twin_missed_most_has_the_lowest_recall(hard_classes):
    found = findings(hard_classes, low_recall)["low-recall"]
    per_class = {row["label"]: row["recall"] for row in Context(hard_classes).evaluation["per_class"]}
    assert found.severity == BETTER
    assert found.data["classes"][0]["class"] == min(per_class, key=per_class.get)
    assert found.data["classes"][0]["class"] in ("one", "uno", "three")
    assert found.data["mean_recall"] == pytest.approx(sum(per_class.values()) / len(per_class))


def test_a_class_with_a_tenth_of_the_images_is_an_imbalance(hard_classes, tmp_path):
    found = findings(hard_classes, class_imbalance)["class-imbalance"]
    assert found.data["counts"] == {"one": 60, "three": 12, "two": 120, "uno": 60, "zero": 120}   # 80% of PLAN
    assert found.data["ratio"] == 10.0 and found.severity == BETTER
    evaluation = Context(hard_classes).evaluation
    assert found.data["balanced_accuracy"] == evaluation["balanced_accuracy"]
    assert f"{evaluation['balanced_accuracy']:.1%}" in found.evidence
    assert any(command.endswith("--class-weights balanced") for command in found.next)
    assert any(command.endswith("--sampler balanced") for command in found.next)

    # a run that already balances its classes is told so, and not told to do it again
    copy = tmp_path / "balanced"
    shutil.copytree(hard_classes.path, copy)
    info = json.loads((copy / RUN_FILE).read_text())
    info["config"]["sampler"] = "balanced"
    (copy / RUN_FILE).write_text(json.dumps(info))
    compensated = findings(Run.load(copy, device="cpu"), class_imbalance)["class-imbalance"]
    assert compensated.severity == NOTE and compensated.data["compensated"] == ["--sampler balanced"]
    assert not any("--sampler" in command for command in compensated.next)


def test_the_imbalance_needs_the_data_and_says_so(hard_classes, tmp_path):
    copy = tmp_path / "moved"
    shutil.copytree(hard_classes.path, copy)
    info = json.loads((copy / RUN_FILE).read_text())
    info["dataset"] = f"folder:{tmp_path / 'not-here'}"
    (copy / RUN_FILE).write_text(json.dumps(info))
    with pytest.raises(MissingDataError):   # diagnose() skips a check that raises this
        class_imbalance(Context(Run.load(copy, device="cpu")))
