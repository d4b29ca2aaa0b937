"""Summary figures against Keras's own `model.summary()` for the same architectures."""

import pytest
import torch

from konbu.models import build_model, list_models, summary

MNIST = (1, 28, 28)


def test_chollet_mnist_matches_keras():
    result = summary(build_model("chollet-mnist", MNIST, 10))
    conv_params = [row.params for row in result.rows if row.type == "Conv2D"]
    assert conv_params == [320, 18496, 36928]
    assert sum(conv_params) == 55744          # "55,744 params in the conv part" (DLwP 5.1)
    assert result.total_params == 93322
    assert [row.output_shape for row in result.rows] == [
        [None, 26, 26, 32], [None, 13, 13, 32], [None, 11, 11, 64], [None, 5, 5, 64], [None, 3, 3, 64],
        [None, 576], [None, 64], [None, 10]]
    assert [row.name for row in result.rows] == [
        "conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "conv2d_2", "flatten", "dense", "dense_1"]


@pytest.mark.parametrize("name, total", [("tfjs-mnist", 33194), ("deep-mnist", 3274634), ("softmax", 7850),
                                         ("mlp", 407050), ("lenet", 1256080)])
def test_totals_match_keras(name, total):
    assert summary(build_model(name, MNIST, 10)).total_params == total


def test_cifar_nets_match_keras():
    # Keras: cifar10-net 2,122,186 and cifar10-deep 1,250,858 params on 32x32x3, 10 classes
    assert summary(build_model("cifar10-net", (3, 32, 32), 10)).total_params == 2122186
    assert summary(build_model("cifar10-deep", (3, 32, 32), 10)).total_params == 1250858


def test_mult_adds_and_memory():
    result = summary(build_model("chollet-mnist", MNIST, 10))
    first = result.rows[0]
    assert first.mult_adds == 26 * 26 * 32 * 9          # each output pixel: 3x3x1 multiply-adds
    assert result.rows[-1].mult_adds == 64 * 10
    assert result.total_mult_adds == sum(row.mult_adds for row in result.rows)
    assert result.param_bytes == 93322 * 4
    text = str(result)
    assert "conv2d (Conv2D)" in text and "(None, 26, 26, 32)" in text and "93,322" in text


def test_batchnorm_running_stats_are_non_trainable_like_keras():
    spec = [{"type": "conv2d", "filters": 8, "kernel_size": 3}, {"type": "batchnorm"},
            {"type": "flatten"}, {"type": "dense", "units": "classes"}]
    result = summary(build_model(spec, MNIST, 10))
    bn = result.rows[1]
    assert bn.type == "BatchNormalization" and bn.params == 4 * 8   # gamma, beta, moving mean, variance
    assert result.non_trainable_params == 2 * 8
    assert result.trainable_params == result.total_params - 16


def test_summary_of_a_plain_torch_module():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 10))
    result = summary(net, MNIST)
    assert result.total_params == sum(p.numel() for p in net.parameters())
    assert result.rows[0].output_shape == [None, 26, 26, 4]


@pytest.mark.parametrize("name", list_models())
def test_every_row_output_equals_a_real_forward(name):
    from konbu.models import get_model_entry
    entry = get_model_entry(name)
    net = build_model(name, entry.input_shape, entry.num_classes)
    result = summary(net)
    assert result.rows[-1].output_shape == [None, entry.num_classes]
    # Keras counts BatchNorm's moving mean and variance, and a frozen layer's weights, as non-trainable params
    moving = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var", "whitening.weight")))
    assert result.total_params == sum(p.numel() for p in net.parameters()) + moving
