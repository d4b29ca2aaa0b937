"""A short `fit` on mnist-sample lowers the loss and writes every file of the run directory."""

import json

import pytest
import torch
from safetensors.torch import load_file

import konbu
from konbu.errors import ConfigError, UnknownNameError
from konbu.runs import Run, read_metrics
from konbu.train import TrainConfig
from konbu.train.config import DEFAULT_LR
from konbu.train.checkpoint import load_checkpoint

RUN_FILES = ["run.json", "model.json", "preprocess.json", "weights.safetensors", "last.ckpt/state.json",
             "last.ckpt/model.safetensors", "last.ckpt/optimizer.pt", "metrics.jsonl", "figures/curves.png",
             "figures/confusion.png", "report.html"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "short"
    events = []
    run = konbu.fit(model="tfjs-mnist", dataset="mnist-sample", epochs=3, threads=2, out=str(out), quiet=True,
                    listeners=[events.append])
    return run, events


def test_writes_every_run_file(short_run):
    run, _ = short_run
    for name in RUN_FILES:
        assert (run.path / name).is_file(), name
    info = json.loads((run.path / "run.json").read_text())
    assert info["status"] == "finished" and info["model"] == "tfjs-mnist" and info["dataset"] == "mnist-sample"
    assert info["versions"]["torch"] == torch.__version__
    assert info["summary"]["total_params"] == 33194
    assert info["data"] == {"train": 3600, "validation": 400, "test": 1000, "dataset_source": info["data"]["dataset_source"]}
    preprocess = json.loads((run.path / "preprocess.json").read_text())
    assert preprocess["image_shape"] == [1, 28, 28] and preprocess["classes"] == [str(d) for d in range(10)]
    assert preprocess["ink"] == "mnist"
    assert not list(run.path.glob(".*tmp")) and not (run.path / "last.ckpt.old").exists()


def test_loss_goes_down_and_metrics_are_logged(short_run):
    run, _ = short_run
    records = read_metrics(run.path / "metrics.jsonl")
    epochs = [r for r in records if r["kind"] == "epoch"]
    steps = [r for r in records if r["kind"] == "batch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert len(steps) == 3 * 57 and [r["step"] for r in steps] == list(range(1, 172))  # ceil(3600 / 64) = 57
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert sum(r["loss"] for r in steps[:10]) > sum(r["loss"] for r in steps[-10:])
    assert all({"val_loss", "val_accuracy", "seconds", "images_per_second"} <= set(r) for r in epochs)
    lrs = [r["lr"] for r in steps]                     # one-cycle by default: logged per step, up then down
    peak = lrs.index(max(lrs))
    assert lrs[0] == pytest.approx(DEFAULT_LR / 25) and max(lrs) == pytest.approx(DEFAULT_LR, rel=0.01)
    assert lrs[:peak + 1] == sorted(lrs[:peak + 1]) and lrs[peak:] == sorted(lrs[peak:], reverse=True)
    assert lrs[-1] < 1e-6
    assert run.info["final"]["test_accuracy"] > 0.8


def test_event_stream(short_run):
    _, events = short_run
    kinds = [event.kind for event in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.count("epoch") == 3 and kinds.count("batch") == 3 * 57


def test_best_weights_are_saved_and_reloaded(short_run):
    run, _ = short_run
    best_epoch = run.info["best_epoch"]
    history = run.history
    assert history[best_epoch - 1]["val_accuracy"] == max(r["val_accuracy"] for r in history)
    reloaded = Run.load(run.path)
    metrics = reloaded.evaluate()
    assert metrics["n"] == 1000
    assert metrics["accuracy"] == pytest.approx(run.info["final"]["test_accuracy"], abs=1e-6)


def test_checkpoint_restores_last_state(short_run):
    run, _ = short_run
    model = konbu.build_model("tfjs-mnist")
    state, progress = load_checkpoint(run.path / "last.ckpt", model)
    assert state["epoch"] == 3 and state["step"] == 171 and state["epoch_done"] and progress == {}


def test_refuses_to_overwrite_a_run(short_run):
    run, _ = short_run
    with pytest.raises(ConfigError, match="already holds a run"):
        konbu.fit(model="softmax", epochs=1, out=str(run.path), quiet=True)


def test_bad_settings():
    with pytest.raises(ConfigError, match="--epochs"):
        TrainConfig.from_overrides(epochs=0)
    with pytest.raises(ConfigError, match="unknown training setting"):
        TrainConfig.from_overrides(epoch=3)
    with pytest.raises(UnknownNameError, match="optimizer"):
        konbu.fit(model="softmax", optimizer="adagrad-ish", epochs=1, quiet=True, out="/nonexistent/never")


def test_fp32_no_validation_and_tf_init(tmp_path):
    run = konbu.fit(model="softmax", dataset="digits", epochs=2, val_fraction=0.0, precision="fp32", init="tf",
                    optimizer="sgd", lr=0.1, batch_size=100, out=str(tmp_path / "r"), quiet=True)
    assert run.info["precision"] == "fp32" and run.info["data"]["validation"] == 0
    assert "val_accuracy" not in run.info["final"] and run.info["best_epoch"] == 2
    assert run.info["final"]["test_accuracy"] > 0.8


def test_a_whitened_run_evaluated_with_test_time_augmentation(tmp_path):
    from konbu.inference import normalise
    from konbu.models.whiten import Whiten

    spec = tmp_path / "whitened.json"
    spec.write_text(json.dumps([{"type": "whiten"}, {"type": "conv2d", "filters": 8, "kernel_size": 3,
                                 "activation": "relu"}, {"type": "global_maxpool2d"}, {"type": "dense", "units": "classes"}]))
    with pytest.warns(UserWarning, match="--tta flip on digits .digits. also scores each test image mirrored"):
        run = konbu.fit(model=str(spec), dataset="digits", epochs=2, val_fraction=0.0, precision="fp32",
                        augment="none", tta="flip", out=str(tmp_path / "r"), quiet=True)
    final = run.info["final"]
    assert final["tta"] == "flip" and 0 <= final["test_accuracy_without_tta"] <= 1
    assert run.tta == "flip" and final["test_accuracy"] == pytest.approx(run.evaluate()["accuracy"])
    assert final["test_accuracy_without_tta"] == pytest.approx(run.evaluate(tta="none")["accuracy"])
    # fitted on the training images as the model saw them, before the first step, and never trained since
    train = run.dataset("train")
    reference = Whiten(1, 2, 5e-4)
    reference.fit(normalise(train.images, run.preprocess["mean"], run.preprocess["std"]))
    torch.testing.assert_close(run.model.features[0].weight.contiguous(), reference.weight)


def test_the_default_rate_belongs_to_the_default_adam_one_cycle():
    assert TrainConfig.from_overrides().lr == DEFAULT_LR
    # another optimizer or schedule without --lr: that optimizer's Keras default (None), as Keras users expect
    assert TrainConfig.from_overrides(optimizer="rmsprop").lr is None
    assert TrainConfig.from_overrides(lr_schedule="cosine").lr is None
    assert TrainConfig.from_overrides(optimizer="sgd", lr=0.05).lr == 0.05
    assert TrainConfig.from_overrides(recipe="chollet").lr is None


def test_a_whitening_bias_trains_for_the_epochs_given_then_stays(tmp_path):
    spec = tmp_path / "whitened.json"
    spec.write_text(json.dumps([{"type": "whiten", "use_bias": True}, {"type": "activation", "activation": "gelu"},
                                {"type": "global_maxpool2d"}, {"type": "dense", "units": "classes"}]))
    settings = dict(model=str(spec), dataset="tiny-mnist", val_fraction=0.0, precision="fp32", device="cpu",
                    augment="none", optimizer="sgd", momentum=0.9, lr=0.1, lr_schedule="constant", deterministic=True,
                    whiten_bias_epochs=1, quiet=True)
    one = konbu.fit(**settings, epochs=1, out=str(tmp_path / "one")).model.features[0].bias
    both = konbu.fit(**settings, epochs=3, out=str(tmp_path / "three"))
    assert one.abs().max() > 0 and torch.equal(both.model.features[0].bias, one)   # epochs 2 and 3 left it alone
    dense = [load_file(path / "weights.safetensors")["head.dense.weight"] for path in (both.path, tmp_path / "one")]
    assert not torch.equal(*dense)                                               # the rest trained on
    with pytest.raises(ConfigError, match="--whiten-bias-epochs: chollet-mnist has no whitening layer with a bias"):
        konbu.fit(model="chollet-mnist", dataset="tiny-mnist", whiten_bias_epochs=3, out=str(tmp_path / "x"), quiet=True)
