"""The curve and learning-rate checks on runs made to show them (a small training set for 40 epochs:
overfitting; sgd at lr 10: divergence; one epoch at lr 1e-6: underfitting and a slow start) and on
copies of the healthy run whose metrics.jsonl was cut or edited (too short, noise, spikes, a plateau,
a NaN loss); none of them on the healthy run. Every `next` command uses real konbu flags.

    .venv/bin/python -m pytest -q tests/diagnosis/test_curves.py
"""

import json
import math
import re
import shlex
import shutil

import pytest

from konbu.cli.testing import invoke
from konbu.diagnosis import BETTER, WRONG, Context
from konbu.diagnosis.curves import (
    OVERFIT_RISE,
    SPIKE_WINDOW,
    diverged,
    loss_spikes,
    overfitting,
    plateau,
    slow_start,
    too_short,
    underfitting,
)
from konbu.runs import RUN_FILE, Run

CURVE_CHECKS = (overfitting, too_short, underfitting, diverged, loss_spikes, slow_start, plateau)
# 72 training images of the digits, no augmentation or smoothing, a constant rate, 40 epochs: the
# validation loss bottoms out around epoch 7 and rises ~12% by the end while training loss -> 0
OVERFIT = dict(model="mlp", dataset="digits", epochs=40, val_fraction=0.9, label_smoothing=0, augment="none",
               lr_schedule="constant", lr=0.01, batch_size=16)


def findings(run, checks=CURVE_CHECKS) -> dict:
    """{id: Finding} of `checks` on a Run or a run directory."""
    context = Context(run if isinstance(run, Run) else Run.load(run))
    return {finding.id: finding for check in checks for finding in check(context)}


def assert_real_commands(commands):
    """Each command is a konbu command (`konbu train`, `konbu show calibration`, ...) whose --flags
    its own --help lists."""
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "konbu", command
        names = words[1:3] if words[1] == "show" else words[1:2]
        result = invoke(*names, "--help")
        assert result.exit_code == 0, command
        for flag in (word for word in words if word.startswith("--")):
            assert re.search(rf"{re.escape(flag)}(?![\w-])", result.output), f"{flag} of {command!r} is not a flag"


def edited(run, tmp_path, records=None, **info):
    """A copy of `run` with metrics.jsonl replaced by `records` and run.json fields set from `info`."""
    copy = shutil.copytree(run.path, tmp_path / "copy")
    if records is not None:
        (copy / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    stored = json.loads((copy / RUN_FILE).read_text())
    (copy / RUN_FILE).write_text(json.dumps({**stored, **info}))
    return copy


def records_of(run) -> list:
    return [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]


def epoch(number, train_loss, val_loss, val_accuracy, lr=1e-3, train_accuracy=0.9, step=None):
    return {"kind": "epoch", "epoch": number, "step": step or number * 10, "train_loss": train_loss,
            "train_accuracy": train_accuracy, "val_loss": val_loss, "val_accuracy": val_accuracy, "lr": lr}


@pytest.fixture(scope="module")
def overfit(train):
    return train("overfit", **OVERFIT)


@pytest.fixture(scope="module")
def exploded(train):
    return train("exploded", model="mlp", dataset="digits", epochs=3, optimizer="sgd", lr=10)


@pytest.fixture(scope="module")
def crawling(train):
    return train("crawling", model="mlp", dataset="digits", epochs=1, lr=1e-6)


def test_the_healthy_run_has_no_curve_findings(healthy):
    assert findings(healthy) == {}


def test_overfitting_says_from_when_by_how_much_and_when_to_stop(overfit):
    found = findings(overfit)
    assert set(found) == {"overfitting"}
    finding = found["overfitting"]
    data = finding.data
    assert finding.severity == BETTER
    assert data["rise"] >= OVERFIT_RISE and data["train_loss_fall"] > 0.5
    assert data["best_epoch"] <= 20 and data["accuracy_gap"] > 0.03
    val_losses = {r["epoch"]: r["val_loss"] for r in overfit.history}
    assert val_losses[data["best_epoch"]] == min(val_losses.values())
    # early stopping on the run's own monitor (val_accuracy) with the suggested patience
    assert data["best_epoch"] < data["would_stop_at"] < 40 and data["monitor"] == "val_accuracy"
    assert f"stopped at epoch {data['would_stop_at']} of 40" in finding.evidence
    # 8x8 digits get no augmentation advice (too small to shift); the MLP gets a zoo model with dropout
    assert data["augment"] is None and data["dropout_model"] == "deep-mnist"
    same = "--epochs 40 --batch-size 16 --lr 0.01 --lr-schedule constant --label-smoothing 0 --augment none --val-fraction 0.9"
    assert finding.next == [f"konbu train --model deep-mnist --dataset digits {same}",
                            f"konbu train --model mlp --dataset digits {same} --optimizer adamw",
                            f"konbu train --model mlp --dataset digits {same} --patience {data['patience']}"]
    assert finding.figure == "figures/curves.png" and (overfit.path / finding.figure).is_file()
    assert_real_commands(finding.next)


def test_overfitting_with_keep_last_went_wrong(overfit, tmp_path):
    config = {**overfit.info["config"], "restore_best": False}
    assert findings(edited(overfit, tmp_path, config=config), [overfitting])["overfitting"].severity == WRONG


def test_a_bump_or_both_losses_rising_is_not_overfitting(healthy, tmp_path):
    falling = [1.0, 0.6, 0.45, 0.38, 0.34, 0.31, 0.29, 0.28, 0.27, 0.265]
    bump = [epoch(i + 1, loss, loss + (0.05 if i == 6 else 0.0), 0.9) for i, loss in enumerate(falling)]
    assert findings(edited(healthy, tmp_path / "bump", bump), [overfitting]) == {}
    rising = [epoch(i + 1, 0.3 + 0.05 * i, 0.3 + 0.06 * i, 0.9) for i in range(10)]
    assert findings(edited(healthy, tmp_path / "rising", rising), [overfitting]) == {}
    memorising = [epoch(i + 1, 0.3 * 0.7 ** i, 0.3 + 0.01 * max(0, i - 3), 0.9) for i in range(10)]
    assert set(findings(edited(healthy, tmp_path / "memorising", memorising), [overfitting])) == {"overfitting"}


def test_divergence_names_the_step_the_rate_and_a_tenth_of_it(exploded):
    found = findings(exploded)
    assert set(found) == {"diverged"}   # not also underfitting, slow start or spikes: the divergence explains them
    finding = found["diverged"]
    stopped = exploded.info["stopped"]
    assert finding.severity == WRONG
    assert finding.data["step"] == stopped["step"] and finding.data["lr"] == pytest.approx(stopped["lr"])
    tenth = float(f"{stopped['lr'] / 10:.1g}")        # the default one-cycle was still rising towards 10
    assert finding.data["suggested_lr"] == tenth
    assert finding.next[0] == f"konbu train --model mlp --dataset digits --epochs 3 --optimizer sgd --lr {tenth:g}"
    assert any("--warmup 100" in command for command in finding.next)
    assert finding.next[-1] == "konbu lr-find --model mlp --dataset digits --optimizer sgd"
    assert_real_commands(finding.next)


def test_a_nan_loss_with_the_guard_off_is_a_divergence(healthy, tmp_path):
    records = records_of(healthy)
    batch = next(r for r in records if r["kind"] == "batch" and r["step"] == 30)
    batch["loss"] = math.nan
    found = findings(edited(healthy, tmp_path, records))
    assert set(found) == {"diverged"}
    assert found["diverged"].data["step"] == 30 and "nan" in found["diverged"].evidence


def test_a_rate_far_too_low_underfits_and_starts_slowly(crawling):
    found = findings(crawling)
    assert set(found) == {"underfitting", "slow-start"}
    assert found["underfitting"].severity == WRONG       # ~10% on 10 classes: chance
    assert abs(found["slow-start"].data["drop"]) < 0.05
    for finding in found.values():
        assert finding.next[0] == "konbu train --model mlp --dataset digits --epochs 1 --lr 0.001"
        assert finding.next[-1] == "konbu lr-find --model mlp --dataset digits --optimizer adam"
        assert_real_commands(finding.next)


def test_a_run_cut_short_is_still_learning(healthy, tmp_path):
    first_four = [r for r in records_of(healthy) if r["epoch"] <= 4]
    found = findings(edited(healthy, tmp_path, first_four))
    assert set(found) == {"too-short"}
    finding = found["too-short"]
    assert finding.data["slopes"]["val_loss"] < -0.02 and finding.data["slopes"]["train_loss"] < -0.02
    assert finding.next == ["konbu train --model mlp --dataset digits --epochs 40"]


def test_spikes_are_counted_and_single_hard_batches_are_not(healthy, tmp_path):
    records = records_of(healthy)
    batches = [r for r in records if r["kind"] == "batch"]
    for batch in batches[SPIKE_WINDOW + 100::80][:2]:   # two: a coincidence, not a pattern
        batch["loss"] *= 6
    assert findings(edited(healthy, tmp_path / "two", records)) == {}
    for batch in batches[SPIKE_WINDOW + 140::80][:2]:
        batch["loss"] *= 6
    found = findings(edited(healthy, tmp_path / "four", records))
    assert set(found) == {"loss-spikes"} and found["loss-spikes"].data["spikes"] == 4
    assert_real_commands(found["loss-spikes"].next)


def test_a_plateau_at_a_constant_rate_and_none_under_a_schedule(healthy, tmp_path):
    flat = [epoch(i + 1, 0.5 if i > 4 else 1.5 - 0.2 * i, 0.4, 0.92 if i > 4 else 0.5 + 0.08 * i, lr=0.01,
                  train_accuracy=0.88) for i in range(20)]
    constant = {**healthy.info["config"], "lr_schedule": "constant"}
    found = findings(edited(healthy, tmp_path / "flat", flat, config=constant))
    assert set(found) == {"plateau"}
    assert found["plateau"].severity == BETTER
    assert found["plateau"].data["epochs"] == 5 and found["plateau"].data["best_epoch"] == 6
    assert found["plateau"].next[:2] == [
        "konbu train --model mlp --dataset digits --epochs 20 --lr-schedule cosine",
        "konbu train --model mlp --dataset digits --epochs 20 --lr-schedule plateau"]
    assert_real_commands(found["plateau"].next)
    decaying = [{**record, "lr": 0.01 / (i + 1)} for i, record in enumerate(flat)]
    assert findings(edited(healthy, tmp_path / "decaying", decaying), [plateau]) == {}
