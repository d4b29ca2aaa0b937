"""The layer vocabulary is one table: one `LayerType` per spec `type`, registered with its builder.

    .venv/bin/python -m pytest -q tests/models/test_layers.py
"""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from konbu.errors import ModelSpecError
from konbu.models import LAYER_TYPES, LayerType, build_model, register_layer_type, summary
from konbu.models.whiten import Whiten, fit_whitening, train_biases


def test_one_entry_per_type_with_everything_about_it():
    assert list(LAYER_TYPES) == ["conv2d", "maxpool2d", "avgpool2d", "flatten", "global_avgpool2d",
                                 "global_maxpool2d", "dense", "dropout", "batchnorm", "whiten", "rescaling",
                                 "activation", "backbone"]
    for kind, layer_type in LAYER_TYPES.items():
        assert isinstance(layer_type, LayerType) and layer_type.name == kind
        assert layer_type.required <= layer_type.fields
        assert callable(layer_type.build)
    assert LAYER_TYPES["conv2d"].required == {"filters", "kernel_size"}
    assert (LAYER_TYPES["batchnorm"].keras_name, LAYER_TYPES["batchnorm"].keras_class) == (
        "batch_normalization", "BatchNormalization")


def test_a_duplicate_type_is_an_error():
    with pytest.raises(ValueError, match="'conv2d' is registered twice"):
        register_layer_type("conv2d", "conv2d", "Conv2D")
    assert LAYER_TYPES["conv2d"].keras_class == "Conv2D"   # the first registration stays


def test_required_fields_must_be_allowed_fields():
    with pytest.raises(ValueError, match=r"required \['units'\] not among its fields"):
        register_layer_type("broken", "broken", "Broken", fields={"rate"}, required={"units"})
    assert "broken" not in LAYER_TYPES


def test_one_registration_adds_a_usable_layer_type():
    @register_layer_type("scale", "scale", "Rescaling", fields={"factor"}, required={"factor"})
    def build_scale(entry, shape, layer):
        return nn.Identity(), shape

    try:
        spec = [{"type": "scale", "factor": 2}, {"type": "flatten"}, {"type": "dense", "units": "classes"}]
        rows = summary(build_model(spec, (1, 8, 8), 3)).rows
        assert (rows[0].name, rows[0].type) == ("scale", "Rescaling")
        with pytest.raises(ModelSpecError, match="missing field `factor`"):
            build_model([{"type": "scale"}, {"type": "flatten"}, {"type": "dense", "units": 3}], (1, 8, 8), 3)
    finally:
        del LAYER_TYPES["scale"]   # the registry is global: leave it as the other tests expect


def test_global_average_pooling_starts_the_head_like_flatten():
    net = build_model([{"type": "conv2d", "filters": 8, "kernel_size": 3}, {"type": "global_avgpool2d"},
                       {"type": "dense", "units": "classes"}], (1, 28, 28), 10)
    assert [layer.part for layer in net.layers] == ["features", "head", "head"]
    assert summary(net, (1, 28, 28)).rows[1].output_shape == [None, 8]
    with pytest.raises(ModelSpecError, match="before `flatten`"):
        build_model([{"type": "flatten"}, {"type": "global_avgpool2d"}, {"type": "dense", "units": 3}], (1, 8, 8), 3)


def test_global_max_pooling_takes_each_maps_largest_value_and_starts_the_head():
    net = build_model([{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "global_maxpool2d"},
                       {"type": "dense", "units": "classes"}], (1, 8, 8), 3)
    assert [layer.part for layer in net.layers] == ["features", "head", "head"]
    assert summary(net, (1, 8, 8)).rows[1].output_shape == [None, 4]
    maps = net.features(torch.randn(2, 1, 8, 8))
    assert torch.equal(net.head[0](maps), maps.amax(dim=(2, 3)))


def correlated_images(n=300, side=16):
    """uint8 RGB images whose neighbouring pixels and first two channels are strongly correlated."""
    generator = torch.Generator().manual_seed(0)
    smooth = F.avg_pool2d(torch.rand(n, 1, side + 1, side + 1, generator=generator), 2, 1)
    noise = torch.rand(n, 2, side, side, generator=generator)
    return (torch.cat([smooth, 0.8 * smooth + 0.2 * noise[:, :1], noise[:, 1:]], 1) * 255).round().to(torch.uint8)


def test_whitening_decorrelates_the_training_patches_and_is_never_trained():
    spec = [{"type": "whiten", "kernel_size": 2, "epsilon": 1e-9}, {"type": "flatten"}, {"type": "dense", "units": 2}]
    net = build_model(spec, (3, 16, 16), 2)
    whiten = net.features[0]
    assert isinstance(whiten, Whiten) and list(whiten.parameters()) == []      # a buffer: no optimizer moves it
    assert "features.whitening.weight" in net.state_dict()                      # ... but saved with the weights
    table = summary(net, (3, 16, 16))
    assert table.rows[0].output_shape == [None, 15, 15, 24]                    # 2 x 3 x 2 x 2 channels
    assert table.rows[0].params == 24 * 12 and table.non_trainable_params == 24 * 12   # as Keras counts a frozen conv
    images = correlated_images()

    def normalise(u):
        return u.float() / 255

    assert fit_whitening(net, images, normalise)
    out = whiten(normalise(images)).double()
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = torch.cov(half.T)
    before = torch.cov(normalise(images).double().unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5)
                       .reshape(-1, 12).T)
    assert (before - torch.diag(before.diag())).abs().max() > 0.01            # the patches were correlated
    assert torch.allclose(covariance, torch.eye(12, dtype=covariance.dtype), atol=1e-3)
    assert torch.equal(out[:, 12:], -out[:, :12])                              # and the negatives beside them
    assert not fit_whitening(build_model("chollet-mnist"), torch.zeros(2, 1, 28, 28, dtype=torch.uint8), normalise)


def test_a_whitening_layer_deeper_in_is_fitted_on_what_reaches_it():
    spec = [{"type": "conv2d", "filters": 3, "kernel_size": 1}, {"type": "whiten"}, {"type": "flatten"},
            {"type": "dense", "units": 2}]
    net = build_model(spec, (3, 16, 16), 2)
    images = correlated_images(50)
    fit_whitening(net, images, lambda u: u.float() / 255)
    reference = Whiten(3, 2, 5e-4)
    reference.fit(net.features[0](images.float() / 255).detach())
    assert torch.allclose(net.features[1].weight, reference.weight, atol=1e-6)
    assert net.training   # fitting ran in eval mode and left the model as it was


@pytest.mark.parametrize("entry, message", [
    ({"type": "whiten", "kernel_size": 0}, "kernel_size"), ({"type": "whiten", "kernel_size": 9}, "kernel_size"),
    ({"type": "whiten", "epsilon": 0}, "epsilon"), ({"type": "whiten", "epsilon": True}, "epsilon"),
    ({"type": "whiten", "kernel_size": 40}, "kernel_size"), ({"type": "whiten", "use_bias": "true"}, "use_bias"),
])
def test_bad_whitening_entries_say_which_field(entry, message):
    with pytest.raises(ModelSpecError, match=message):
        build_model([entry, {"type": "flatten"}, {"type": "dense", "units": 2}], (3, 8, 8), 2)
    with pytest.raises(ModelSpecError, match="before `flatten`"):
        build_model([{"type": "flatten"}, {"type": "whiten"}, {"type": "dense", "units": 2}], (3, 8, 8), 2)


def test_a_whitening_bias_is_the_layers_one_parameter_and_can_be_frozen():
    spec = [{"type": "whiten", "use_bias": True}, {"type": "flatten"}, {"type": "dense", "units": 2}]
    net = build_model(spec, (3, 8, 8), 2)
    whiten = net.features[0]
    assert [name for name, _ in whiten.named_parameters()] == ["bias"] and not whiten.bias.any()
    assert summary(net, (3, 8, 8)).rows[0].params == 24 * 12 + 24           # filters (frozen) and bias
    with torch.no_grad():
        whiten.weight.normal_()
        whiten.bias.normal_()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(whiten(x), F.conv2d(x, whiten.weight) + whiten.bias[:, None, None])
    assert train_biases(net, False) and not whiten.bias.requires_grad          # frozen: a change
    assert not train_biases(net, False) and train_biases(net, True) and whiten.bias.requires_grad
    assert not train_biases(build_model([{"type": "whiten"}, *spec[1:]], (3, 8, 8), 2), False)   # no bias


def test_rescaling_multiplies_and_shifts_as_keras_does():
    net = build_model([{"type": "flatten"}, {"type": "dense", "units": 3}, {"type": "rescaling", "scale": 1 / 9}],
                      (1, 4, 4), 3)
    x = torch.randn(5, 1, 4, 4)
    torch.testing.assert_close(net(x), net.head[1](net.head[0](x)) / 9)
    assert summary(net, (1, 4, 4)).rows[2].type == "Rescaling"
    shifted = build_model([{"type": "rescaling", "scale": 2, "offset": -1}, {"type": "flatten"},
                           {"type": "dense", "units": 2}], (1, 2, 2), 2)
    torch.testing.assert_close(shifted.features[0](torch.ones(1, 1, 2, 2)), torch.ones(1, 1, 2, 2))
    for entry, message in (({}, "missing field `scale`"), ({"scale": "1/9"}, "`scale` must be a number"),
                           ({"scale": float("nan")}, "`scale`"), ({"scale": 1, "offset": True}, "`offset`")):
        with pytest.raises(ModelSpecError, match=message):
            build_model([{"type": "flatten"}, {"type": "dense", "units": 2}, {"type": "rescaling", **entry}], (1, 2, 2), 2)


def test_batchnorm_without_scale_or_center_keeps_gamma_1_and_beta_0_through_training():
    spec = [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "batchnorm", "scale": False},
            {"type": "batchnorm", "center": False}, {"type": "flatten"}, {"type": "dense", "units": 2}]
    net = build_model(spec, (1, 6, 6), 2)
    no_scale, no_center = net.features[1], net.features[2]
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
    net(torch.randn(8, 1, 6, 6)).square().sum().backward()
    optimizer.step()
    assert torch.equal(no_scale.weight, torch.ones(4)) and not torch.equal(no_scale.bias, torch.zeros(4))
    assert torch.equal(no_center.bias, torch.zeros(4)) and not torch.equal(no_center.weight, torch.ones(4))
    assert summary(net, (1, 6, 6)).non_trainable_params == 4 + 4 + 2 * 8   # + both running mean/var
    with pytest.raises(ModelSpecError, match="`scale` must be true or false"):
        build_model([{"type": "batchnorm", "scale": "no"}, {"type": "flatten"}, {"type": "dense", "units": 2}],
                    (1, 6, 6), 2)
