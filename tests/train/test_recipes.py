"""Every recipe loads, keeps its tutorial's settings, and trains a few steps on fixture data (the
real MNIST/CIFAR/ETL/K49 files are not here); flags override recipes; bad recipes say why."""

import pytest
import torch

import konbu
from konbu.errors import ConfigError, UnknownNameError
from konbu.train import TrainConfig
from konbu.train.epoch import EpochProgress, train_one_epoch
from konbu.train.parts import build_parts, prepare_data
from konbu.train.optim import default_lr
from konbu.train.recipes import load_recipe, recipe_names
from konbu.train.schedule import piecewise_base_lr

EXPECTED = {"tf-beginners", "tf-experts", "chollet", "tfjs", "lenet", "cifar10-net", "cifar10-deep",
            "cifar10-deep-aug", "hiragana-softmax", "hiragana-cnn", "hiragana-tuned", "k49-softmax", "k49-cnn",
            "k49-tuned", "symmetry", "fast-mnist", "fast-cifar10"}


def test_the_tutorials_are_all_there_with_their_figures():
    assert EXPECTED <= set(recipe_names())
    reported = {name: load_recipe(name).reported.get("accuracy") for name in EXPECTED}
    assert reported["tf-experts"] == 0.992 and reported["chollet"] == 0.9915 and reported["hiragana-softmax"] == 0.2879
    assert reported["hiragana-cnn"] == 0.8715 and reported["hiragana-tuned"] == 0.9504
    assert [reported[f"cifar10-{n}"] for n in ("net", "deep", "deep-aug")] == [0.73, 0.76, 0.78]
    tuned = load_recipe("hiragana-tuned").settings
    assert tuned["lr_schedule"] == "0:1e-3,1000:1e-4,5000:1e-5,10000:1e-6" and tuned["steps"] == 20000
    assert load_recipe("tf-beginners").settings["steps"] == 1000
    assert load_recipe("k49-tuned").settings["dataset"] == "k49"


@pytest.mark.filterwarnings("ignore:augment")   # cifar10-deep-aug's hflip on digits warns, rightly
@pytest.mark.filterwarnings("ignore:--tta")     # and fast-cifar10's test-time flips
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_trains_a_few_steps_on_fixture_data(name):
    recipe = load_recipe(name)
    for variant in list(recipe.variants) or [None]:
        config = TrainConfig.from_overrides(recipe=name, variant=variant, dataset="tiny-mnist", steps=3,
                                            batch_size=16, device="cpu", precision="fp32")
        for key, value in recipe.settings_for(variant).items():
            if key not in ("dataset", "steps", "batch_size"):
                assert getattr(config, key) == value, key
        train, _, _ = prepare_data(config)
        parts = build_parts(config, train, torch.device("cpu"), "fp32")
        progress = EpochProgress.begin(1, torch.randperm(len(train)), torch.device("cpu"))
        assert train_one_epoch(parts.model, parts.optimizer, parts.schedule, parts.loss, train.images, train.labels,
                               progress, parts.settings, lambda event: None, ema=parts.ema, guard=parts.guard,
                               dropout=parts.dropout, lookahead=parts.lookahead, flip_halves=parts.flip_halves) is None
        records = progress.batch_records()
        assert [r["step"] for r in records] == [1, 2, 3] and all(r["loss"] == r["loss"] for r in records)
        first_lr = piecewise_base_lr(config.lr_schedule) or config.lr or default_lr(config.optimizer)
        # a 3-step one-cycle rises for 0.3 x 3 - 1 < 0 steps: step 1 is just past its peak, the recipe's lr;
        # a triangle starts at a fifth of it
        expected = first_lr * (0.2 if config.lr_schedule == "triangle" else 1.0)
        assert records[0]["lr"] == pytest.approx(expected, rel=0.01 if config.lr_schedule == "onecycle" else 1e-6)


def test_flags_override_a_recipe_and_variants_are_chosen():
    config = TrainConfig.from_overrides(recipe="tf-experts", lr=3e-4, steps=None, batch_size=None)
    assert config.lr == 3e-4 and config.steps == 20000 and config.batch_size == 50 and config.model == "deep-mnist"
    assert TrainConfig.from_overrides(recipe="symmetry", variant="zeros").init == "zeros"
    with pytest.raises(ConfigError, match="zeros, tf"):
        TrainConfig.from_overrides(recipe="symmetry")
    with pytest.raises(ConfigError, match="no variants"):
        TrainConfig.from_overrides(recipe="chollet", variant="zeros")
    with pytest.raises(ConfigError, match="--recipe"):
        TrainConfig.from_overrides(variant="zeros")
    with pytest.raises(UnknownNameError, match="tf-experts"):
        TrainConfig.from_overrides(recipe="tf-expert")


def test_recipe_files_by_path_are_checked(tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text("description: mine\nsettings: {model: softmax, dataset: tiny-mnist, epochs: 1}\n")
    assert TrainConfig.from_overrides(recipe=str(good)).model == "softmax"
    bad = tmp_path / "bad.yaml"
    bad.write_text("settings: {model: softmax, learning_rate: 0.1}\n")
    with pytest.raises(ConfigError, match="unknown setting 'learning_rate'"):
        TrainConfig.from_overrides(recipe=str(bad))
    (tmp_path / "out.yaml").write_text("settings: {out: somewhere}\n")
    with pytest.raises(ConfigError, match="unknown setting 'out'"):
        TrainConfig.from_overrides(recipe=str(tmp_path / "out.yaml"))
    (tmp_path / "broken.yaml").write_text("settings: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        TrainConfig.from_overrides(recipe=str(tmp_path / "broken.yaml"))


def test_a_recipe_run_records_the_reported_figure(tmp_path):
    run = konbu.fit(recipe="symmetry", variant="zeros", dataset="tiny-mnist", model="chollet-mnist", epochs=1,
                    threads=2, out=str(tmp_path / "zeros"), quiet=True)
    assert run.info["recipe"] == "symmetry (zeros)" and "chance" in run.info["reported"]["note"]
    assert run.info["config"]["init"] == "zeros"
    # zero init: every unit of a layer stays the same; the net predicts one class
    assert run.info["final"]["test_accuracy"] < 0.3


def test_fit_recipe_trains_every_variant_from_python(tmp_path):
    runs = konbu.fit_recipe("symmetry", dataset="digits", model="mlp", epochs=1, threads=1, quiet=True,
                            out=str(tmp_path / "sym"))
    assert list(runs) == ["zeros", "tf"]
    assert [run.path for run in runs.values()] == [tmp_path / "sym" / "zeros", tmp_path / "sym" / "tf"]
    assert [run.info["config"]["init"] for run in runs.values()] == ["zeros", "tf"]
    single = konbu.fit_recipe("symmetry", variant="tf", dataset="digits", model="mlp", steps=3, threads=1, quiet=True,
                              out=str(tmp_path / "one"))
    assert list(single) == ["tf"] and single["tf"].info["config"]["variant"] == "tf"
