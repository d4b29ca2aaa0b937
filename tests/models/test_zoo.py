"""Every zoo model builds, runs forward and backward on its dataset's shape, without NaN."""

import pytest
import torch
import torch.nn.functional as F

from konbu.models import build_model, get_model_entry, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("init", ["default", "tf", "glorot"])
def test_forward_backward(name, init):
    entry = get_model_entry(name)
    torch.manual_seed(0)
    net = build_model(name, entry.input_shape, entry.num_classes, init=init)
    x = torch.randn(4, *entry.input_shape)
    out = net(x)
    assert out.shape == (4, entry.num_classes)
    loss = F.cross_entropy(out, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert entry.source


@pytest.mark.parametrize("name", list_models())
def test_adapts_to_other_datasets(name):
    # the 8x8 digits are too small for the deeper nets: those must say so, not crash
    from konbu.errors import ShapeError
    try:
        net = build_model(name, (1, 8, 8), 10)
    except ShapeError as error:
        assert "too small" in str(error)
        return
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_features_and_head():
    net = build_model("chollet-mnist", (1, 28, 28), 10)
    assert list(net.features._modules)[:3] == ["conv2d", "conv2d_relu", "max_pooling2d"]
    assert list(net.head._modules)[0] == "flatten"
    assert net.features(torch.zeros(1, 1, 28, 28)).shape == (1, 64, 3, 3)
    assert sum(p.numel() for p in net.features.parameters()) == 55744


def test_tf_init_is_truncated_normal_with_bias_point_one():
    torch.manual_seed(0)
    net = build_model("deep-mnist", (1, 28, 28), 10, init="tf")
    weight = net.head.dense.weight
    assert abs(weight.std().item() - 0.088) < 0.01           # std of N(0, 0.1) truncated at 2 sigma
    assert weight.abs().max().item() <= 0.2
    assert torch.all(net.features.conv2d.bias == 0.1)


def test_glorot_init_is_keras_s_default():
    torch.manual_seed(0)
    net = build_model("cifar10-net", (3, 32, 32), 10, init="glorot")
    conv, dense = net.features.conv2d, net.head.dense
    limit = (6 / (3 * 9 + 32 * 9)) ** 0.5                    # Glorot uniform: sqrt(6 / (fan_in + fan_out))
    assert conv.weight.abs().max().item() <= limit and conv.weight.abs().max().item() > 0.9 * limit
    assert dense.weight.abs().max().item() <= (6 / (4096 + 512)) ** 0.5
    assert all(torch.count_nonzero(m.bias) == 0 for m in (conv, dense))


def test_zeros_init_keeps_units_identical():
    net = build_model("mlp", (1, 28, 28), 10, init="zeros")
    assert all(torch.count_nonzero(p) == 0 for p in net.parameters())


def test_unknown_model_lists_the_zoo():
    from konbu.errors import UnknownNameError
    with pytest.raises(UnknownNameError, match="chollet-mnist"):
        build_model("resnet-9000")


def test_default_input_is_the_entrys_own_unless_a_dataset_says_otherwise(tmp_path):
    from konbu.models import default_input
    assert default_input("cifar10-net") == ((3, 32, 32), 10)
    assert default_input("lenet") == ((1, 28, 28), 10)
    assert default_input("cifar10-net", (1, 8, 8), 26) == ((1, 8, 8), 26)   # fitted to a dataset
    assert default_input("cifar10-net", num_classes=100) == ((3, 32, 32), 100)
    spec_file = tmp_path / "net.json"
    spec_file.write_text('[{"type": "flatten"}, {"type": "dense", "units": "classes"}]')
    for spec in (str(spec_file), [{"type": "flatten"}], {"layers": [{"type": "flatten"}]}):
        assert default_input(spec) == ((1, 28, 28), 10)   # a spec does not say what data it was for
    assert default_input(str(spec_file), [3, 16, 16], 4) == ((3, 16, 16), 4)


def test_default_input_of_an_unknown_name_lists_the_zoo():
    from konbu.errors import UnknownNameError
    from konbu.models import default_input
    with pytest.raises(UnknownNameError, match="chollet-mnist"):
        default_input("resnet-9000")
