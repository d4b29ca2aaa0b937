"""lr-find: an exponential sweep, a suggestion where the smoothed loss falls fastest, a PNG, and the
model exactly as it was."""

import math

import numpy as np
import pytest
import torch

import konbu
from konbu.data import load_dataset
from konbu.errors import ConfigError
from konbu.train.lr_find import find_lr, lr_find, plot_lr_find, suggest


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = np.logspace(-6, 0, 61)
    # a loss that falls fastest at lr = 1e-3 (a tanh step in log-lr), bottoms out at 1e-2, then blows up
    x = np.log10(lrs)
    losses = 2.0 - np.tanh((x + 3) * 2) + np.where(x > -2, (x + 2) ** 2 * 5, 0)
    steepest, min_over_10 = suggest(lrs, losses)
    assert steepest == pytest.approx(1e-3, rel=0.05)
    assert min_over_10 == pytest.approx(lrs[np.argmin(losses)] / 10)


def test_find_lr_leaves_the_model_untouched():
    train = load_dataset("tiny-mnist", "train")
    model = konbu.build_model("softmax", train.image_shape, train.num_classes)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    result = find_lr(model, train.images, train.labels, train.mean, train.std, steps=60, batch_size=32)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training and torch.equal(rng, torch.get_rng_state())
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert ratios == pytest.approx([ratios[0]] * len(ratios))            # exponential
    assert result.lrs[0] == pytest.approx(1e-7) and len(result.lrs) <= 60
    assert 1e-7 < result.suggestion < result.lrs[-1] and math.isfinite(result.min_over_10)
    assert min(result.smoothed) < result.smoothed[0]                    # the loss did fall somewhere


def test_lr_find_writes_a_plot(tmp_path):
    result = lr_find(model="softmax", dataset="tiny-mnist", steps=30, threads=2, out=tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_lr_find(result, tmp_path / "again.png").stat().st_size > 10_000


def test_bad_sweeps():
    train = load_dataset("tiny-mnist", "train")
    model = konbu.build_model("softmax", train.image_shape, train.num_classes)
    with pytest.raises(ConfigError, match="start < end"):
        find_lr(model, train.images, train.labels, train.mean, train.std, start=1.0, end=0.1)
    with pytest.raises(ConfigError, match="at least 5"):
        find_lr(model, train.images, train.labels, train.mean, train.std, steps=2)
