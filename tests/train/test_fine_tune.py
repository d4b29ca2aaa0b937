"""`--model pretrained:NAME` and `--fine-tune` (konbu.train.pretrained, konbu.train.fine_tune): the
backbone's weights and input, then the two stages: frozen backbone and new head, then the top blocks
unfrozen at a smaller rate; resumed across the boundary as if it never stopped."""

import json

import pytest
import torch
from safetensors.torch import load_file

import konbu
from konbu.errors import ConfigError
from konbu.runs import read_metrics
from konbu.train.schedule import make_staged_schedule

BACKBONE = "features.backbone."
# mobilenet_v3_small's 13 blocks are features.0 ... features.12: top:2 trains features.11 and .12
TOP_BLOCKS = (f"{BACKBONE}features.11.", f"{BACKBONE}features.12.")
SETTINGS = dict(model="pretrained:test-mobilenet", dataset="tiny-mnist", image_size=32, epochs=3, batch_size=30,
                fine_tune=True, freeze_epochs=1, unfreeze="top:2", backbone_lr_ratio=0.5, lr=3e-3, threads=2,
                deterministic=True, precision="fp32", device="cpu", restore_best=False, quiet=True)


class InterruptAt:
    """Ctrl-C at the batch event of step `step`, or at the event of epoch `epoch`."""

    def __init__(self, step=None, epoch=None):
        self.step, self.epoch = step, epoch

    def __call__(self, event):
        if event.kind == "batch" and event.data["step"] == self.step:
            raise KeyboardInterrupt
        if event.kind == "epoch" and event.data["record"]["epoch"] == self.epoch:
            raise KeyboardInterrupt


def _published(published_classifier) -> dict:
    """The backbone's weights (and BatchNorm statistics) as published, under the Net's names."""
    return {BACKBONE + k: v for k, v in published_classifier.model.state_dict().items() if k.startswith("features.")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, published_classifier):
    out = tmp_path_factory.mktemp("fine-tune") / "whole"
    return konbu.fit(weights=str(published_classifier.path), out=str(out), **SETTINGS)


def test_stage_1_moves_only_the_head_and_no_batchnorm_statistic(tmp_path, published_classifier):
    heads = []
    for name, stop in (("one-step", InterruptAt(step=1)), ("stage-1", InterruptAt(epoch=1))):
        with pytest.raises(KeyboardInterrupt):
            konbu.fit(weights=str(published_classifier.path), out=str(tmp_path / name), listeners=[stop], **SETTINGS)
        weights = load_file(tmp_path / name / "last.ckpt" / "model.safetensors")
        published = _published(published_classifier)
        assert any("running_mean" in k for k in published)
        for key, tensor in published.items():
            assert torch.equal(weights[key], tensor), key        # weights and running statistics alike
        heads.append(weights["head.dense.weight"])
    assert not torch.equal(heads[0], heads[1])                    # the head trained through stage 1
    initial = load_file(tmp_path / "stage-1" / "initial.safetensors")   # the first conv, as published
    assert initial and all(torch.equal(initial[k], _published(published_classifier)[k]) for k in initial)


def test_stage_2_trains_the_top_blocks_and_leaves_the_others(uninterrupted, published_classifier):
    final = load_file(uninterrupted.path / "weights.safetensors")
    published = _published(published_classifier)
    top = [k for k in published if k.startswith(TOP_BLOCKS)]
    below = [k for k in published if not k.startswith(TOP_BLOCKS)]
    assert top and below
    assert all(torch.equal(final[k], published[k]) for k in below)            # frozen all along
    moved = [k for k in top if not torch.equal(final[k], published[k])]
    assert any(k.endswith("weight") for k in moved)                             # trained in stage 2
    assert any("running_mean" in k for k in moved)                              # its BatchNorm in train mode


def test_both_stages_are_in_the_metrics_run_json_and_report(uninterrupted):
    epochs = [r for r in read_metrics(uninterrupted.path) if r["kind"] == "epoch"]
    assert [r["stage"] for r in epochs] == [1, 2, 2]
    info = json.loads((uninterrupted.path / "run.json").read_text())
    assert info["pretrained"]["arch"] == "test-mobilenet"
    stages = info["fine_tune"]["stages"]
    assert [s["epochs"] for s in stages] == [[1, 1], [2, 3]]
    head = 576 * 10 + 10
    assert stages[0]["trainable"] == head                                       # stage 1: the head only
    assert stages[1]["trainable"] > head and stages[1]["frozen"] > 0             # top:2 of 13 blocks
    assert stages[0]["trainable"] + stages[0]["frozen"] == stages[1]["trainable"] + stages[1]["frozen"]
    assert "2 of 13 blocks" in stages[1]["backbone"]
    preprocess = json.loads((uninterrupted.path / "preprocess.json").read_text())
    assert preprocess["image_shape"] == [3, 32, 32]                             # grey digits, repeated to RGB
    assert preprocess["mean"] == [0.485, 0.456, 0.406]                          # the weights' statistics
    assert preprocess["backbone"]["arch"] == "test-mobilenet"
    report = (uninterrupted.path / "report.html").read_text()
    assert "Fine-tuned in two stages" in report and "Frozen params" in report
    assert (uninterrupted.path / "figures" / "curves.png").is_file()


def test_a_resume_across_the_stage_boundary_ends_bit_identical(uninterrupted, tmp_path, published_classifier):
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        konbu.fit(weights=str(published_classifier.path), out=str(out), listeners=[InterruptAt(epoch=1)],
                  **SETTINGS)
    resumed = konbu.fit(resume=str(out), quiet=True)
    a, b = load_file(uninterrupted.path / "weights.safetensors"), load_file(resumed.path / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.info["final"] == uninterrupted.info["final"]


def test_each_stage_runs_the_schedule_from_its_start_and_the_backbone_at_its_ratio():
    head, backbone = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [head], "lr_scale": 1.0}, {"params": [backbone], "lr_scale": 0.1}],
                                lr=1.0)
    schedule = make_staged_schedule("cosine", optimizer, first_steps=10, total_steps=30)
    rates = []
    for _ in range(30):
        rates.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"]))
        schedule.step()
    assert rates[0][0] == pytest.approx(1.0) and rates[10][0] == pytest.approx(1.0)   # restarted at stage 2
    assert rates[9][0] < 0.1 and rates[29][0] < 0.1
    assert all(b == pytest.approx(a * 0.1) for a, b in rates)


@pytest.mark.parametrize("settings, message", [
    (dict(model="tfjs-mnist", fine_tune=True), "--fine-tune .* pretrained:NAME"),
    (dict(model="tfjs-mnist", weights="w.safetensors"), "--weights .* pretrained:NAME"),
    (dict(model="pretrained:resnet18", fine_tune=True, freeze_epochs=3, epochs=3), "leaves no epoch"),
    (dict(model="pretrained:resnet18", fine_tune=True, unfreeze="top:0"), "top:K"),
    (dict(model="pretrained:resnet18", fine_tune=True, unfreeze="bottom:2"), "top:K"),
    (dict(model="pretrained:resnet18", backbone_lr_ratio=2.0), "--backbone-lr-ratio"),
])
def test_bad_fine_tuning_settings_are_refused_before_anything_runs(settings, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        konbu.fit(dataset="tiny-mnist", out=str(tmp_path / "never"), quiet=True, **settings)
    assert not (tmp_path / "never").exists()


def test_an_image_size_below_the_backbone_s_minimum_is_refused(published_classifier, tmp_path):
    with pytest.raises(ConfigError, match="at least 32x32"):
        konbu.fit(**{**SETTINGS, "image_size": 16}, weights=str(published_classifier.path), out=str(tmp_path / "x"))
