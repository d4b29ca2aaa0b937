"""The settings corpus of issue 13: every numeric training option at 0, negative, NaN and huge, and
every unknown name, is refused with a message naming the flag, before anything is written.

    .venv/bin/python -m pytest -q tests/cli/test_bad_settings.py

Each bad value is tried through the API (TrainConfig.from_overrides: a ConfigError naming the
flag, NaN included, which `x < 0`-style checks would let through) and through `konbu train` in the
CLI runner (exit 2, one `error:` line, no traceback, no run directory, nothing else on disk). An
integer flag given "nan" on the command line is refused by typer's own parser, also with exit 2
and the flag's name. Zero where zero means "off" or "none" is a valid setting, checked as such.
"""

import json
import math

import pytest

from konbu.cli.testing import invoke as konbu
from konbu.errors import ConfigError
from konbu.train import TrainConfig

NAN, HUGE_INT, HUGE_FLOAT = math.nan, 10**30, 1e30

# field -> (its flag, the values that must be refused: 0 where 0 is meaningless, a negative, NaN, huge)
NUMERIC = {
    "epochs": ("--epochs", [0, -1, NAN, HUGE_INT]),
    "steps": ("--steps", [0, -5, NAN, HUGE_INT]),
    "batch_size": ("--batch-size", [0, -64, NAN, HUGE_INT]),
    "lr": ("--lr", [0.0, -0.1, NAN, HUGE_FLOAT, math.inf]),
    "momentum": ("--momentum", [-0.9, NAN, HUGE_FLOAT, 1.0]),
    "weight_decay": ("--weight-decay", [-1e-4, NAN, HUGE_FLOAT]),
    "warmup": ("--warmup", [-1, NAN, HUGE_INT]),
    "label_smoothing": ("--label-smoothing", [-0.1, NAN, HUGE_FLOAT, 1.0]),
    "ema": ("--ema", [0.0, -0.999, NAN, HUGE_FLOAT, 1.0]),
    "clip_grad": ("--clip-grad", [0.0, -1.0, NAN, HUGE_FLOAT]),
    "val_fraction": ("--val-fraction", [-0.1, NAN, HUGE_FLOAT, 1.0]),
    "patience": ("--patience", [0, -3, NAN, HUGE_INT]),
    "min_delta": ("--min-delta", [-0.01, NAN, HUGE_FLOAT]),
    "guard": ("--guard", [-10.0, NAN, HUGE_FLOAT, 0.5]),
    "checkpoint_every": ("--checkpoint-every", [0, -100, NAN, HUGE_INT]),
    "image_size": ("--image-size", [0, -28, NAN, HUGE_INT]),
    "threads": ("--threads", [0, -2, NAN, HUGE_INT]),
    "seed": ("--seed", [-1, NAN, HUGE_INT]),
}
BAD_NUMBERS = [(field, value) for field, (_, values) in NUMERIC.items() for value in values]
INTEGER_FIELDS = {field for field, (_, values) in NUMERIC.items() if HUGE_INT in values}

# where 0 means off or none, it is valid; so are the ranges' other ends
VALID_EDGES = [("momentum", 0.0), ("weight_decay", 0.0), ("warmup", 0), ("label_smoothing", 0.0),
               ("val_fraction", 0.0), ("min_delta", 0.0), ("guard", 0.0), ("seed", 0), ("seed", 2**32 - 1),
               ("lr", 1e6), ("min_delta", 10.0), ("epochs", 1), ("image_size", 1024), ("threads", 1),
               ("clip_grad", 1e6)]


def case_id(field, value):
    return f"{field}={'huge' if value in (HUGE_INT, HUGE_FLOAT) else value}"


def cli_text(value) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else str(value)


def snapshot(root) -> dict:
    return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns) for path in root.rglob("*")}


def assert_refused(result, names, tmp_path, before, konbu_error=True):
    """Exit 2, the flag or name in the message, no traceback, no run directory, nothing written."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert any(name in result.output for name in names), result.output
    if konbu_error:   # konbu's own errors are one line; typer's usage errors come in a box of their own
        lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()
    assert snapshot(tmp_path) == before


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current folder (where a default runs/ would appear) and its contents before the test."""
    monkeypatch.chdir(tmp_path)
    return tmp_path, snapshot(tmp_path)


@pytest.mark.parametrize("field, value", BAD_NUMBERS, ids=[case_id(*case) for case in BAD_NUMBERS])
def test_bad_number_through_the_api(field, value):
    flag = NUMERIC[field][0]
    with pytest.raises(ConfigError, match=flag):
        TrainConfig.from_overrides(**{field: value})


@pytest.mark.parametrize("field, value", BAD_NUMBERS, ids=[case_id(*case) for case in BAD_NUMBERS])
def test_bad_number_through_the_cli(field, value, workdir):
    tmp_path, before = workdir
    flag = NUMERIC[field][0]
    result = konbu("train", flag, cli_text(value), "--out", tmp_path / "run")
    typer_refuses = field in INTEGER_FIELDS and isinstance(value, float)   # "nan" is not an integer to click
    assert_refused(result, [flag], tmp_path, before, konbu_error=not typer_refuses)


@pytest.mark.parametrize("field, value", VALID_EDGES, ids=[case_id(*case) for case in VALID_EDGES])
def test_valid_edges_pass(field, value):
    assert getattr(TrainConfig.from_overrides(**{field: value}), field) == value


def test_a_count_must_be_whole():
    with pytest.raises(ConfigError, match="--epochs must be a whole number"):
        TrainConfig.from_overrides(epochs=2.5)
    with pytest.raises(ConfigError, match="--batch-size must be a whole number"):
        TrainConfig.from_overrides(batch_size=True)
    with pytest.raises(ConfigError, match="--lr must be positive"):
        TrainConfig.from_overrides(lr="0.1")


def write_spec(path, layers):
    path.write_text(json.dumps(layers))   # json writes NaN as NaN, and reads it back
    return str(path)


HEAD = [{"type": "flatten"}, {"type": "dense", "units": "classes"}]
UNKNOWN = {   # id -> (the flags, a part of the message)
    "model": (["--model", "resnet-9000"], "unknown model 'resnet-9000'"),
    "dataset": (["--dataset", "imagenet-22k"], "unknown dataset 'imagenet-22k'"),
    "recipe": (["--recipe", "grandmas-secret"], "grandmas-secret"),
    "variant-without-recipe": (["--variant", "zeros"], "--recipe"),
    "schedule": (["--lr-schedule", "warp-speed"], "unknown learning-rate schedule 'warp-speed'"),
    "schedule-option": (["--lr-schedule", "step:gama=0.5"], "gamma"),
    "schedule-nan-rate": (["--lr-schedule", "0:nan,100:1e-4"], "--lr-schedule"),
    "schedule-zero-pct": (["--lr-schedule", "onecycle:pct=0"], "pct=0 is out of range"),
    "schedule-nan-gamma": (["--lr-schedule", "step:gamma=nan"], "gamma=nan is out of range"),
    "schedule-bad-factor": (["--lr-schedule", "plateau:factor=2"], "factor=2 is out of range"),
    "dropout-schedule-nan": (["--model", "deep-mnist", "--dropout-schedule", "0:nan"], "--dropout-schedule"),
    "augment-policy": (["--augment", "swirl=3"], "unknown op 'swirl=3'"),
    "augment-nan": (["--augment", "rotate=nan"], "rotate=nan is out of range"),
    "augment-negative-crop": (["--augment", "crop=-1"], "crop=-1 is out of range"),
    "augment-inf-mixup": (["--augment", "mixup=inf"], "mixup=inf is out of range"),
    "optimizer": (["--optimizer", "adagrad"], "unknown optimizer 'adagrad'"),
    "init": (["--init", "he"], "unknown init 'he'"),
    "normalize": (["--normalize", "zscore"], "--normalize"),
    "monitor": (["--monitor", "val_f1"], "--monitor"),
    "sampler": (["--sampler", "random"], "--sampler"),
    "class-weights": (["--class-weights", "inverse"], "--class-weights"),
    "device": (["--device", "tpu"], "unknown device 'tpu'"),
    "precision": (["--precision", "fp8"], "unknown precision 'fp8'"),
    "spec-huge-filters": (lambda d: ["--model", write_spec(d / "wide.json", [
        {"type": "conv2d", "filters": 10**9, "kernel_size": 3}] + HEAD)], "`filters` must be a positive int up to"),
    "spec-nan-epsilon": (lambda d: ["--model", write_spec(d / "bn.json", [
        {"type": "batchnorm", "epsilon": math.nan}] + HEAD)], "`epsilon` must be"),
    "spec-quoted-bool": (lambda d: ["--model", write_spec(d / "bias.json", [
        {"type": "flatten"}, {"type": "dense", "units": "classes", "use_bias": "false"}])], "`use_bias`"),
    "spec-dotted-name": (lambda d: ["--model", write_spec(d / "dot.json", [
        {"type": "flatten", "name": "a.b"}, {"type": "dense", "units": "classes"}])], "without dots"),
    "spec-huge-kernel": (lambda d: ["--model", write_spec(d / "kernel.json", [
        {"type": "conv2d", "filters": 4, "kernel_size": 10**20}] + HEAD)], "shrinks to"),
}


@pytest.mark.parametrize("name", UNKNOWN)
def test_unknown_name_or_bad_text_setting(name, workdir):
    tmp_path, _ = workdir
    flags, says = UNKNOWN[name]
    flags = flags(tmp_path) if callable(flags) else flags
    before = snapshot(tmp_path)   # the spec file, if any, is part of what must stay as it is
    result = konbu("train", *flags, "--epochs", 1, "--out", tmp_path / "run")
    assert_refused(result, [says], tmp_path, before)


@pytest.mark.parametrize("command", [["evaluate"], ["predict", "{image}"], ["report"], ["train", "--resume"],
                                     ["train", "--epochs", "1", "--out"]])
def test_run_path_that_is_a_file(command, workdir):
    tmp_path, _ = workdir
    not_a_run = tmp_path / "run.txt"
    not_a_run.write_text("not a run directory\n")
    (tmp_path / "digit.png").write_bytes(b"")
    before = snapshot(tmp_path)
    args = [arg.format(image=tmp_path / "digit.png") for arg in command]
    args = args[:1] + [not_a_run] + args[1:] if command[0] != "train" else args + [not_a_run]
    result = konbu(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "run.txt" in result.output
    assert snapshot(tmp_path) == before and not (tmp_path / "runs").exists()
