"""A user's own model: a .yaml/.json layer list; bad specs name the layer and the field."""

import json

import pytest
import torch

from konbu.errors import ModelSpecError, ShapeError
from konbu.models import build_model, summary

YAML = """
name: my-net
layers:
  - {type: conv2d, filters: 8, kernel_size: 3, padding: same, activation: relu}
  - {type: batchnorm}
  - {type: maxpool2d, pool_size: 2}
  - {type: conv2d, filters: 16, kernel_size: 3, strides: 2, padding: same, activation: elu}
  - {type: avgpool2d, pool_size: 2, padding: same}
  - {type: flatten}
  - {type: dense, units: 32, activation: tanh}
  - {type: dropout, rate: 0.3}
  - {type: activation, activation: relu}
  - {type: dense, units: classes, activation: softmax}
"""


def test_yaml_spec_builds_with_keras_shapes(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(YAML)
    net = build_model(str(path), (1, 28, 28), 10)
    assert net.name == "my-net"
    shapes = {row.name: row.output_shape for row in summary(net).rows}
    assert shapes["conv2d"] == [None, 28, 28, 8]                  # same padding keeps 28
    assert shapes["conv2d_1"] == [None, 7, 7, 16]                 # same with stride 2: ceil(14 / 2)
    assert shapes["average_pooling2d"] == [None, 4, 4, 16]        # same pooling: ceil(7 / 2)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_json_list_spec(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps([{"type": "flatten"}, {"type": "dense", "units": "classes"}]))
    assert summary(build_model(str(path), (1, 8, 8), 3)).total_params == 64 * 3 + 3


@pytest.mark.parametrize("layers, message", [
    ([{"type": "conv3d"}], r"layer 0 \(conv3d\): unknown layer type 'conv3d'"),
    ([{"type": "conv2d", "kernel_size": 3}], r"layer 0 \(conv2d\): missing field `filters`"),
    ([{"type": "conv2d", "filters": 8, "kernel": 3}], r"unknown field `kernel`"),
    ([{"type": "flatten"}, {"type": "dense", "units": -1}], r"layer 1 \(dense\).*`units`"),
    ([{"type": "dense", "units": 10}], r"put a `flatten` before it"),
    ([{"type": "flatten"}, {"type": "dense", "units": 7}], r"outputs shape \(7,\), but the dataset has 10"),
    ([{"type": "flatten"}, {"type": "dropout", "rate": 1.5}, {"type": "dense", "units": 10}], r"`rate`"),
    ([{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "swishy"}], r"unknown activation"),
    ([], r"non-empty list"),
])
def test_bad_spec_names_layer_and_field(layers, message):
    with pytest.raises(ModelSpecError, match=message):
        build_model(layers, (1, 28, 28), 10)


def test_impossible_shape():
    layers = [{"type": "conv2d", "filters": 4, "kernel_size": 5}] * 8 + [{"type": "flatten"},
                                                                         {"type": "dense", "units": 10}]
    with pytest.raises(ShapeError, match="too small"):
        build_model(layers, (1, 28, 28), 10)


def test_unparsable_or_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [ {type: conv2d")
    with pytest.raises(ModelSpecError, match="bad.yaml: cannot parse"):
        build_model(str(bad))
    with pytest.raises(ModelSpecError, match="not found"):
        build_model(str(tmp_path / "missing.json"))
