"""The training options one by one: EMA, early stopping, restore-best, --steps, dataset options,
class weights and balanced sampling, gradient clipping, label smoothing, the dropout schedule,
augmentation in the loop, and the settings' own checks."""

import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import konbu
from konbu.errors import ConfigError
from konbu.inference import normalise
from konbu.runs import Run, read_metrics
from konbu.train import TrainConfig
from konbu.train.ema import EMA
from konbu.train.epoch import EpochProgress, epoch_order, normalise_unit, train_one_epoch
from konbu.train.parts import build_parts, input_statistics, prepare_data

CPU = torch.device("cpu")


def parts_for(**settings):
    config = TrainConfig.from_overrides(**{"dataset": "tiny-mnist", "device": "cpu", "precision": "fp32", **settings})
    train, _, _ = prepare_data(config)
    parts = build_parts(config, train, CPU, "fp32")
    return config, train, parts, parts.sample_weights


def run_steps(parts, train, steps):
    progress = EpochProgress.begin(1, torch.randperm(len(train)), CPU)
    stop = train_one_epoch(parts.model, parts.optimizer, parts.schedule, parts.loss, train.images, train.labels,
                           progress, replace(parts.settings, last_step=steps), lambda event: None, ema=parts.ema,
                           guard=parts.guard, dropout=parts.dropout)
    return progress, stop


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_ema_steps_and_subset_options(tmp_path):
    run = konbu.fit(model="softmax", dataset="tiny-mnist", ema=0.9, val_fraction=0.0, steps=7, batch_size=64,
                    image_size=20, classes="0,1,7", threads=2, out=str(tmp_path / "r"), quiet=True)
    saved, ema = load_file(run.path / "weights.safetensors"), load_file(run.path / "last.ckpt" / "ema.safetensors")
    raw = load_file(run.path / "last.ckpt" / "model.safetensors")
    assert same(saved, ema) and not same(saved, raw)          # the average is what is saved
    records = read_metrics(run.path / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "batch"] == list(range(1, 8))
    per_epoch = math.ceil(run.info["data"]["train"] / 64)
    ends = [r["step"] for r in records if r["kind"] == "epoch"]
    assert ends == [*range(per_epoch, 7, per_epoch), 7]                  # the last epoch ends part-way
    preprocess = json.loads((run.path / "preprocess.json").read_text())
    assert preprocess["image_shape"] == [1, 20, 20] and preprocess["classes"] == ["0", "1", "7"]


def test_ema_update_formula():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.99)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=1)                     # early on the decay is capped at (1 + 1) / (10 + 1)
    assert ema.module.weight.item() == pytest.approx(1 - 2 / 11)
    ema.update(model, step=10_000)
    assert ema.module.weight.item() == pytest.approx(1 - 0.99 * 2 / 11)


def test_early_stopping_and_keep_last(tmp_path):
    run = konbu.fit(model="softmax", dataset="tiny-mnist", epochs=10, monitor="val_loss", patience=2, min_delta=10.0,
                    restore_best=False, threads=2, out=str(tmp_path / "r"), quiet=True)
    stopped = run.info["stopped"]
    assert stopped["reason"] == "early_stopping" and stopped["epoch"] == 3 and stopped["monitor"] == "val_loss"
    assert run.info["best_epoch"] == 1 and run.info["weights_epoch"] == 3      # --keep-last: epoch 3's weights
    assert same(load_file(run.path / "weights.safetensors"), load_file(run.path / "last.ckpt" / "model.safetensors"))
    assert len(run.history) == 3


def test_class_weights_and_balanced_sampling():
    _, train, parts, sample_weights = parts_for(model="softmax", class_weights="balanced", sampler="balanced")
    counts = torch.bincount(train.labels, minlength=10).double()
    assert torch.allclose(parts.loss.class_weights.double(), len(train) / (10 * counts), rtol=1e-6)
    skewed = torch.cat([torch.zeros(90, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    weights = (1.0 / torch.bincount(skewed).double())[skewed]
    drawn = skewed.repeat(200)[epoch_order(20_000, weights.repeat(200))]
    assert abs(drawn.float().mean().item() - 0.5) < 0.02            # each class as often
    assert sorted(epoch_order(50, None).tolist()) == list(range(50))


def test_gradient_clipping_bounds_the_step():
    _, train, parts, _ = parts_for(model="softmax", optimizer="sgd", lr=1.0, lr_schedule="constant", clip_grad=0.01)
    before = [p.detach().clone() for p in parts.model.parameters()]
    run_steps(parts, train, 1)
    change = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(parts.model.parameters(), before)))
    assert 0 < change.item() <= 0.01 + 1e-6


def test_label_smoothing_and_normalisation():
    _, train, parts, _ = parts_for(model="softmax", label_smoothing=0.1)
    x, y = train.images[:8], train.labels[:8]
    loss, output = parts.loss(parts.model, x, y)
    assert loss.item() == pytest.approx(F.cross_entropy(output, y, label_smoothing=0.1).item())
    mean, std = train.mean, train.std
    unit = normalise_unit(x.float() / 255, parts.loss.mean, parts.loss.std)
    assert torch.allclose(unit, normalise(x, mean, std), atol=1e-5)


def test_dropout_schedule_sets_the_models_rate():
    _, train, parts, _ = parts_for(model="deep-mnist", dropout_schedule="0:0.0,2:0.7", batch_size=32)
    run_steps(parts, train, 2)
    assert parts.model.head.dropout.p == 0.0             # set before steps 0 and 1
    run_steps(parts, train, 3)
    assert parts.model.head.dropout.p == 0.7
    with pytest.raises(ConfigError, match="no dropout layer"):
        parts_for(model="softmax", dropout_schedule="0:0.5")


def test_augmentation_with_soft_targets_trains():
    _, train, parts, _ = parts_for(model="softmax", augment="digits,mixup=0.2", batch_size=32)
    progress, stop = run_steps(parts, train, 3)
    assert stop is None and progress.step == 3
    assert all(math.isfinite(r["loss"]) for r in progress.batch_records())


def test_settings_checks():
    for bad, message in [({"steps": 0}, "--steps"), ({"warmup": -1}, "--warmup"), ({"ema": 1.5}, "--ema"),
                         ({"class_weights": "inverse"}, "balanced"), ({"sampler": "random"}, "--sampler"),
                         ({"monitor": "val_f1"}, "--monitor"), ({"guard": 0.5}, "--guard"),
                         ({"label_smoothing": 1.0}, "--label-smoothing"), ({"clip_grad": 0}, "--clip-grad"),
                         ({"norm_bias_lr_scale": 0}, "--norm-bias-lr-scale"),
                         ({"norm_bias_lr_scale": float("nan")}, "--norm-bias-lr-scale"),
                         ({"compile": "fast"}, "--compile must be one of none, default")]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig.from_overrides(**bad)
    with pytest.raises(ConfigError, match="drop --lr"):
        parts_for(model="softmax", lr=0.1, lr_schedule="0:1e-3,10:1e-4")
    with pytest.raises(ConfigError, match="--val-fraction is 0"):
        konbu.fit(model="softmax", dataset="tiny-mnist", val_fraction=0.0, patience=2, quiet=True, out="/nonexistent/x")
    with pytest.raises(ConfigError, match="not a list; write your layers to a spec file"):   # Keras's Sequential habit
        konbu.fit(model=[{"type": "flatten"}, {"type": "dense", "units": "classes"}], dataset="tiny-mnist", quiet=True,
                  out="/nonexistent/x")


def test_batchnorm_biases_train_at_their_own_multiple_of_the_rate_and_decay_as_much_per_step():
    _, train, parts, _ = parts_for(model="fast-mnist", optimizer="sgd", lr=0.1, weight_decay=0.001,
                                   norm_bias_lr_scale=64, lr_schedule="constant")
    model, optimizer = parts.model, parts.optimizer
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    main, biases = optimizer.param_groups
    assert [id(p) for p in biases["params"]] == [id(m.bias) for m in norms]
    assert {id(p) for p in main["params"]} == {id(p) for p in model.parameters()} - {id(m.bias) for m in norms}
    assert (main["lr"], main["weight_decay"]) == (pytest.approx(0.1), 0.001)
    assert (biases["lr"], biases["weight_decay"]) == (pytest.approx(6.4), pytest.approx(0.001 / 64))
    before = {id(p): p.detach().clone() for p in model.parameters()}
    loss, _ = parts.loss(model, train.images[:16], train.labels[:16])
    loss.backward()
    gradients = {id(p): p.grad.clone() for p in model.parameters()}
    optimizer.step()
    for p in model.parameters():   # plain SGD: p -= lr * (grad + weight_decay * p)
        lr, decay = (6.4, 0.001 / 64) if any(p is m.bias for m in norms) else (0.1, 0.001)
        torch.testing.assert_close(p.detach(), before[id(p)] - lr * (gradients[id(p)] + decay * before[id(p)]))
    assert len(parts_for(model="fast-mnist")[2].optimizer.param_groups) == 1   # 1 (the default): one group


def test_auto_augmentation_follows_the_data():
    from konbu.data import load_dataset
    from konbu.train.parts import augment_policy

    assert augment_policy("auto", load_dataset("tiny-mnist", "train")) == "digits"   # 28x28 handwriting
    assert augment_policy("auto", load_dataset("digits", "train")) is None         # 8x8: too small to resample
    assert augment_policy("cifar", load_dataset("digits", "train")) == "cifar"     # an explicit policy stands
    assert TrainConfig().augment == "auto" and TrainConfig().label_smoothing == 0.1


def test_unit_normalization_feeds_pixels_over_255_and_the_run_serves_the_same(tmp_path):
    run = konbu.fit(model="softmax", dataset="tiny-mnist", epochs=1, normalize="unit", quiet=True, threads=1,
                    device="cpu", out=str(tmp_path / "unit"))
    assert run.preprocess["mean"] == [0.0] and run.preprocess["std"] == [1.0]
    test = konbu.load_dataset("tiny-mnist", "test")
    by_hand = run.model(test.images.float() / 255.0)            # the tutorials' input: pixels / 255
    assert torch.allclose(run.logits(test.images), by_hand, atol=1e-5)
    standard, _, _ = prepare_data(TrainConfig.from_overrides(dataset="tiny-mnist"))
    assert standard.mean[0] > 0.05 and standard.std[0] > 0.2      # the default keeps the dataset's statistics
    unit_config = TrainConfig.from_overrides(dataset="tiny-mnist", normalize="unit")
    unit_train, _, _ = prepare_data(unit_config)
    assert unit_train.mean == standard.mean                         # the Dataset is never altered ...
    assert input_statistics(unit_config, unit_train) == ((0.0,), (1.0,))   # ... the model's input is
    with pytest.raises(ConfigError, match="--normalize"):
        TrainConfig.from_overrides(normalize="zscore")


def test_compile_trains_the_same_model_through_torch_compile(tmp_path):
    """--compile default: the step's model is torch.compile'd (dynamo captured frames), its weights are
    the model's own (saved without torch.compile's prefix, loaded by Run.load) and train as eager ones do."""
    import torch._dynamo

    settings = dict(model="softmax", dataset="tiny-mnist", epochs=1, precision="fp32", augment="none",
                    val_fraction=0.0, device="cpu", quiet=True)
    eager = konbu.fit(**settings, out=str(tmp_path / "eager"))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    run = konbu.fit(**settings, compile="default", out=str(tmp_path / "compiled"))
    assert torch._dynamo.utils.counters["frames"]["ok"] > 0 and run.info["config"]["compile"] == "default"
    ours, reference = (load_file(r.path / "weights.safetensors") for r in (run, eager))
    assert ours.keys() == reference.keys()
    assert all(torch.allclose(ours[k], reference[k], atol=1e-5) for k in ours)
    assert Run.load(run.path).evaluate()["accuracy"] == pytest.approx(eager.info["final"]["test_accuracy"], abs=0.02)


def test_compile_on_a_cpu_without_a_cxx_compiler_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import konbu.device
    monkeypatch.setattr(konbu.device.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="needs a C\\+\\+ compiler"):
        konbu.fit(model="softmax", dataset="tiny-mnist", device="cpu", compile="default", quiet=True,
                  out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()
