"""The weight checks on runs made to show them: zero init (symmetry), lr 1e-9 on a small CNN (frozen
filters), sgd at lr 10 with the guard off and a run whose ReLUs were switched off by hand (dead
units); none of them on the healthy run. Every `next` command parses as `konbu train` flags.

    .venv/bin/python -m pytest -q tests/diagnosis/test_weights.py
"""

import json
import shlex
import shutil

import pytest
import torch

import konbu
from konbu.cli.testing import invoke
from konbu.diagnosis import BETTER, NOTE, WRONG, Context, diagnose
from konbu.diagnosis.weights import (
    DEAD_SHARE,
    FROZEN_TOLERANCE,
    alive_units,
    dead_units,
    frozen_filters,
    symmetry,
)
from konbu.diagnosis.commands import train_command
from konbu.runs import WEIGHTS_FILE, save_weights
from konbu.train.config import TrainConfig

SMALL_CNN = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"}, {"type": "flatten"},
             {"type": "dense", "units": "classes"}]   # fits the 8x8 digits: 4 maps of 6x6


def findings(run, check):
    return {finding.id: finding for finding in check(Context(run))}


def edited_copy(run, tmp_path, edit) -> konbu.Run:
    """The run copied to tmp_path with `edit(model)` applied to its weights, loaded afresh."""
    copy = tmp_path / "edited"
    shutil.copytree(run.path, copy)
    model = konbu.Run.load(copy, device="cpu").model
    with torch.no_grad():
        edit(model)
    save_weights(copy / WEIGHTS_FILE, model)
    return konbu.Run.load(copy, device="cpu")


def assert_real_train_flags(commands):
    """Each `konbu train` command's flags are options `konbu train --help` lists."""
    help_text = invoke("train", "--help").output
    for command in commands:
        words = shlex.split(command)
        if words[:2] == ["konbu", "train"]:
            for word in words[2:]:
                if word.startswith("--"):
                    assert word in help_text, f"{word} in {command!r} is not a `konbu train` flag"


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "small-cnn.json"
    path.write_text(json.dumps(SMALL_CNN))
    return path


def test_the_healthy_run_has_no_weight_findings(healthy):
    assert diagnose(healthy, checks=["dead-units", "frozen-filters", "symmetry"]) == []
    dead = sum(int((~fired).sum()) for fired in alive_units(healthy, Context(healthy).validation.images).values())
    assert dead < DEAD_SHARE * 512 / 4   # far under the threshold, not just under it


def test_zero_init_is_reported_as_symmetry_only(train):
    run = train("zeros", model="mlp", dataset="digits", init="zeros", epochs=2)
    found = findings(run, symmetry)["symmetry"]
    assert found.severity == WRONG
    assert found.data["layers"] == [{"layer": "dense", "units": 512, "weight_norm": 0.0}]   # the output layer's
    assert found.next[0] == "konbu train --model mlp --dataset digits --epochs 2 --init default"   # biases differ
    assert "--init tf" in found.next[1]
    assert_real_train_flags(found.next)
    # every hidden unit is dead and frozen too, but that is the symmetry: one finding, one fix
    assert dead_units(Context(run)) == []


def test_a_tiny_learning_rate_leaves_the_filters_frozen(train, small_cnn, tmp_path):
    run = train("frozen", model=str(small_cnn), dataset="digits", lr=1e-9, epochs=1)
    found = findings(run, frozen_filters)["frozen-filters"]
    assert found.severity == WRONG
    assert [(row["layer"], row["count"], row["total"]) for row in found.data["layers"]] == [("conv2d", 4, 4)]
    assert "--lr 0.001" in found.next[1] and found.next[0].startswith("konbu lr-find")
    assert_real_train_flags(found.next)

    def move(filters):   # filters 0..filters-1 changed by 1% of their size: moved, at 10x the tolerance
        def edit(model):
            model.module_named("conv2d").weight[:filters] *= 1 + 10 * FROZEN_TOLERANCE
        return edit

    three_moved = edited_copy(run, tmp_path / "three", move(3))
    one_frozen = findings(three_moved, frozen_filters)["frozen-filters"]
    assert one_frozen.severity == BETTER and one_frozen.data["layers"][0]["count"] == 1   # 25%: reported
    assert frozen_filters(Context(edited_copy(run, tmp_path / "all", move(4)))) == []


def test_relus_switched_off_by_hand_are_counted_exactly(healthy, tmp_path):
    images = Context(healthy).validation.images
    before = ~alive_units(healthy, images)["dense"]

    def silence(model):   # a bias of -1e4 keeps a unit below 0 for any normalised digit
        model.module_named("dense").bias[:200] = -1e4

    run = edited_copy(healthy, tmp_path, silence)
    expected = before.clone()
    expected[:200] = True
    found = findings(run, dead_units)["dead-units"]
    assert found.data["layers"] == [{"layer": "dense", "count": int(expected.sum()), "total": 512,
                                     "share": int(expected.sum()) / 512}]
    assert found.data["split"] == "validation" and found.data["images"] == images.shape[0]
    assert found.severity == NOTE     # 39-41%: worth knowing, not yet half


def test_a_huge_learning_rate_kills_the_relus(train):
    run = train("dead", model="mlp", dataset="digits", optimizer="sgd", lr=10, guard=0, epochs=2)
    found = findings(run, dead_units)["dead-units"]
    assert found.severity == WRONG and found.data["layers"][0]["share"] > 0.9
    assert found.next[0].startswith("konbu train --model mlp --dataset digits --epochs 2 --optimizer sgd")
    assert "--lr 1 --warmup 100" in found.next[0]
    assert_real_train_flags(found.next)


def test_train_command_repeats_a_recipe_with_the_change():
    config = {**TrainConfig.from_overrides(recipe="symmetry", variant="zeros", epochs=7).to_dict(), "threads": 2}
    assert train_command(config, init="tf") == "konbu train --recipe symmetry --variant zeros --epochs 7 --init tf"
    plain = TrainConfig.from_overrides(model="my spec.yaml", restore_best=False).to_dict()
    assert train_command(plain) == "konbu train --model 'my spec.yaml' --dataset mnist-sample --keep-last"
