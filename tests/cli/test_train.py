"""`konbu train` flags, recipes, resume errors and `konbu lr-find`, through typer's runner."""

import json


from konbu.cli.testing import invoke as konbu


def test_flags_reach_the_config(tmp_path):
    out = tmp_path / "r"
    result = konbu("train", "--model", "softmax", "--dataset", "digits", "--steps", "30", "--optimizer", "sgd",
                   "--lr", "0.1", "--momentum", "0.9", "--nesterov", "--lr-schedule", "step:every=10,gamma=0.5",
                   "--warmup", "5", "--label-smoothing", "0.1", "--ema", "0.9", "--class-weights", "balanced",
                   "--clip-grad", "5", "--seed", "3", "--deterministic", "--monitor", "val_loss", "--threads", "2",
                   "--out", out)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "run.json").read_text())["config"]
    assert {k: config[k] for k in ("steps", "optimizer", "lr", "momentum", "nesterov", "lr_schedule", "warmup",
                                   "label_smoothing", "ema", "class_weights", "clip_grad", "seed", "deterministic",
                                   "monitor")} == {
        "steps": 30, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
        "lr_schedule": "step:every=10,gamma=0.5", "warmup": 5, "label_smoothing": 0.1, "ema": 0.9,
        "class_weights": "balanced", "clip_grad": 5.0, "seed": 3, "deterministic": True, "monitor": "val_loss"}
    assert "test accuracy" in result.output and (out / "metrics.csv").is_file()
    # a finished run cannot be resumed; a bad schedule is a two-line error, not a traceback
    result = konbu("train", "--resume", out)
    assert result.exit_code == 2 and "finished" in result.output
    result = konbu("train", "--model", "softmax", "--dataset", "digits", "--lr-schedule", "zigzag",
                   "--out", tmp_path / "bad")
    assert result.exit_code == 2 and "unknown learning-rate schedule" in result.output


def test_recipe_with_overrides_prints_the_reported_figure(tmp_path):
    out = tmp_path / "beginners"
    result = konbu("train", "--recipe", "tf-beginners", "--dataset", "digits", "--steps", "20", "--threads", "2",
                   "--out", out)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    assert info["recipe"] == "tf-beginners" and info["reported"]["accuracy"] == 0.92
    assert info["config"]["optimizer"] == "sgd" and info["config"]["lr"] == 0.5 and info["config"]["steps"] == 20
    assert "the tutorial reported 92.00%" in result.output and "this run" in result.output


def test_symmetry_recipe_trains_both_inits_side_by_side(tmp_path):
    out = tmp_path / "symmetry"
    result = konbu("train", "--recipe", "symmetry", "--dataset", "digits", "--model", "mlp", "--epochs", "2",
                   "--lr", "1e-3", "--threads", "2", "--out", out)
    assert result.exit_code == 0, result.output
    zeros = json.loads((out / "zeros" / "run.json").read_text())
    tf = json.loads((out / "tf" / "run.json").read_text())
    assert zeros["config"]["init"] == "zeros" and tf["config"]["init"] == "tf"
    assert zeros["final"]["test_accuracy"] < 0.3 < tf["final"]["test_accuracy"]   # zero init never breaks symmetry
    assert "side by side" in result.output and "zeros" in result.output


def test_recipes_listing():
    result = konbu("recipes")
    assert result.exit_code == 0
    for text in ("tf-experts", "99.2%", "hiragana-tuned", "95.04%", "k49-cnn", "symmetry", "cifar10-deep-aug", "78%"):
        assert text in result.output, text


def test_lr_find(tmp_path):
    out = tmp_path / "lr.png"
    result = konbu("lr-find", "--model", "softmax", "--dataset", "digits", "--steps", "40", "--threads", "2",
                   "--out", out)
    assert result.exit_code == 0, result.output
    assert "suggested learning rate" in result.output and out.read_bytes()[:4] == b"\x89PNG"
    result = konbu("lr-find", "--model", "softmax", "--dataset", "digits", "--start", "1", "--end", "0.1")
    assert result.exit_code == 2 and "start < end" in result.output


def test_every_training_setting_is_a_flag_and_help_shows_the_configs_defaults():
    import inspect
    from dataclasses import fields

    from konbu.cli.train import train
    from konbu.train import TrainConfig

    # every setting but --resume and --nproc (how a run is started, not what it trains) is a TrainConfig field
    assert set(inspect.signature(train).parameters) - {"resume", "nproc"} == {f.name for f in fields(TrainConfig)}
    result = konbu("train", "--help")
    compact = "".join(result.output.replace("│", "").split())   # the help box wraps at 80 columns
    assert result.exit_code == 0 and f"passesoverthetrainingset(default:{TrainConfig().epochs})" in compact
