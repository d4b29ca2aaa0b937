"""konbu.inspect.filters: conv kernels and per-pixel class weights, checked against the model's
own parameters and its own forward pass (the answer key), plus the figures and their errors."""

import warnings

import pytest
import torch
from PIL import Image

from konbu.errors import ModelSpecError
from konbu.inspect.filters import class_weight_images, conv_layers, filter_weights, plot_class_weights, plot_filters
from konbu.models import build_model

KANA = ["あ", "い", "う", "え", "お"]


def model(name, shape=(1, 28, 28), classes=10):
    torch.manual_seed(0)
    return build_model(name, shape, classes).eval()


def no_missing_glyphs(caught):
    return not [w for w in caught if "missing from" in str(w.message)]


def test_filter_weights_are_the_conv_kernels():
    net = model("tfjs-mnist")
    assert [name for name, _ in conv_layers(net)] == ["conv2d", "conv2d_1", "conv2d_2"]
    first = filter_weights(net)
    assert torch.equal(first, net.module_named("conv2d").weight.detach())
    assert first.shape == (16, 1, 3, 3)
    deeper = filter_weights(net, "conv2d_1")
    assert torch.equal(deeper, net.module_named("conv2d_1").weight.detach())
    deeper.zero_()                                       # a copy: drawing can never change the model
    assert net.module_named("conv2d_1").weight.abs().sum() > 0


def test_unknown_layer_lists_the_conv_layers_and_dense_models_have_none():
    with pytest.raises(ModelSpecError, match="conv2d, conv2d_1, conv2d_2"):
        filter_weights(model("tfjs-mnist"), "max_pooling2d")
    with pytest.raises(ModelSpecError, match="no conv layer"):
        filter_weights(model("softmax"))
    with pytest.raises(ModelSpecError, match="no conv layer"):
        plot_filters(model("mlp"), "never-written.png")


def test_plot_filters_first_deeper_and_rgb_layers(tmp_path):
    net = model("tfjs-mnist")
    sizes = {}
    for layer in (None, "conv2d_1", "conv2d_2"):
        path = plot_filters(net, tmp_path / f"{layer}.png", layer=layer)
        with Image.open(path) as image:
            assert image.format == "PNG"
            sizes[layer] = image.size
    # a deeper layer is a grid of 16 filters x 16 input channels: larger than the first layer's 16 kernels
    assert sizes["conv2d_1"][1] > sizes[None][1]
    rgb = plot_filters(model("cifar10-net", (3, 32, 32)), tmp_path / "rgb.png")
    with Image.open(rgb) as image:
        assert image.format == "PNG" and image.mode in ("RGB", "RGBA")


def test_class_weight_images_give_the_logits_of_softmax_regression():
    net = model("softmax")
    images = class_weight_images(net, (1, 28, 28))
    assert images.shape == (10, 28, 28)
    x = torch.randn(1, 1, 28, 28)
    by_evidence = (images * x[0, 0]).sum(dim=(1, 2)) + net.module_named("dense").bias.detach()
    with torch.no_grad():
        torch.testing.assert_close(by_evidence, net(x)[0], rtol=1e-4, atol=1e-4)


def test_rgb_class_weights_are_the_evidence_of_a_grey_pixel():
    net = model("softmax", (3, 8, 8), classes=4)
    images = class_weight_images(net, (3, 8, 8))
    assert images.shape == (4, 8, 8)
    grey = torch.randn(8, 8)
    x = grey.expand(1, 3, 8, 8)                          # the same value in R, G and B
    with torch.no_grad():
        expected = net(x)[0] - net.module_named("dense").bias
    torch.testing.assert_close((images * grey).sum(dim=(1, 2)), expected, rtol=1e-4, atol=1e-4)


def test_class_weights_of_an_mlp_are_its_hidden_units_and_conv_models_have_none():
    assert class_weight_images(model("mlp"), (1, 28, 28)).shape == (512, 28, 28)
    with pytest.raises(ModelSpecError, match="show filters"):
        class_weight_images(model("chollet-mnist"), (1, 28, 28))


def test_plot_class_weights_with_kana_and_hidden_units(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = plot_class_weights(model("softmax", classes=5), KANA, (1, 28, 28), tmp_path / "kana.png")
    assert no_missing_glyphs(caught), [str(w.message) for w in caught]
    with Image.open(path) as image:
        assert image.format == "PNG"
    path = plot_class_weights(model("mlp"), [str(i) for i in range(10)], (1, 28, 28), tmp_path / "mlp.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
