"""The layer vocabulary is one table: one `LayerType` per spec `type`, registered with its builder.

    .venv/bin/python -m pytest -q tests/models/test_layers.py
"""

import pytest
import torch.nn as nn

from konbu.errors import ModelSpecError
from konbu.models import LAYER_TYPES, LayerType, build_model, register_layer_type, summary


def test_one_entry_per_type_with_everything_about_it():
    assert list(LAYER_TYPES) == ["conv2d", "maxpool2d", "avgpool2d", "flatten", "global_avgpool2d", "dense",
                                 "dropout", "batchnorm", "activation", "backbone"]
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
