"""The model zoo: seed architectures as layer specs, a builder, and a Keras-style summary.

    from konbu.models import build_model, summary
    net = build_model("chollet-mnist", input_shape=(1, 28, 28), num_classes=10)
    print(summary(net))

`build_model` takes a zoo name or the path of a user's spec file (.yaml / .json): either a list of
layers or a mapping `{name: ..., layers: [...]}` in the same vocabulary (see layers.py).
`default_input` says which (input_shape, num_classes) to build for, as `konbu summary` does:

    shape, classes = default_input("cifar10-net")                    # (3, 32, 32), 10: its own
    shape, classes = default_input("lenet", train.image_shape, 26)   # fitted to a dataset
"""

import json
from pathlib import Path

from ..errors import ModelSpecError
from . import zoo  # noqa: F401  (importing registers the seed architectures)
from .backbones import BACKBONES, PREFIX as PRETRAINED, is_pretrained, pretrained_spec, register_backbone
from ._registry import DEFAULT_INPUT_SHAPE, DEFAULT_NUM_CLASSES, get_model_entry, list_models, register_model
from .layers import INITS, LAYER_TYPES, LayerType, register_layer_type
from .net import Layer, Net, build_net
from .summary import Summary, summary

SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def is_spec_path(model: str) -> bool:
    return str(model).lower().endswith(SPEC_SUFFIXES)


def load_spec_file(path) -> dict:
    """Read a user's spec file into {"name", "layers", "source"}; errors name the file and field."""
    path = Path(path)
    if not path.is_file():
        raise ModelSpecError(f"model spec file {path} not found; pass a zoo name (`konbu models`) "
                             "or the path of a .yaml/.json layer list")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text)
    except Exception as e:  # both parsers raise their own error types; report the first line
        raise ModelSpecError(f"{path}: cannot parse {path.suffix} ({str(e).splitlines()[0]})") from None
    if isinstance(data, list):
        data = {"layers": data}
    if not isinstance(data, dict) or "layers" not in data:
        raise ModelSpecError(f"{path}: expected a list of layers or a mapping with a `layers` list")
    return {"name": data.get("name") or path.stem, "layers": data["layers"],
            "source": data.get("source", f"user spec {path.name}")}


def model_spec(model: str) -> dict:
    """{"name", "layers", "source"} for a zoo name, `pretrained:NAME` or a spec file path."""
    if is_spec_path(model):
        return load_spec_file(model)
    if is_pretrained(model):
        return pretrained_spec(model)
    entry = get_model_entry(model)
    return {"name": entry.name, "layers": [dict(layer) for layer in entry.layers], "source": entry.source}


def default_input(model, image_shape=None, num_classes=None) -> tuple:
    """(input_shape, num_classes) to build `model` for: a dataset's image shape and class count
    where given, else a zoo entry's own (a pretrained backbone's: its published input size and
    classes), else MNIST's (1, 28, 28) and 10 for a spec file, a spec dict or a layer list (a spec
    does not say what data it was written for)."""
    if image_shape is None or num_classes is None:
        if isinstance(model, (list, tuple, dict)) or is_spec_path(model):
            own_shape, own_classes = DEFAULT_INPUT_SHAPE, DEFAULT_NUM_CLASSES
        elif is_pretrained(model):
            from .weights import published
            info = published(model.removeprefix(PRETRAINED))
            own_shape, own_classes = (3, info.crop_size, info.crop_size), len(info.categories)
        else:
            entry = get_model_entry(str(model))
            own_shape, own_classes = entry.input_shape, entry.num_classes
        image_shape = own_shape if image_shape is None else image_shape
        num_classes = own_classes if num_classes is None else num_classes
    return tuple(image_shape), int(num_classes)


def build_model(model, input_shape=DEFAULT_INPUT_SHAPE, num_classes: int = DEFAULT_NUM_CLASSES,
                init: str = "default") -> Net:
    """A zoo name, a spec path, a spec dict or a layer list -> a ready `Net` (logits out)."""
    if isinstance(model, (list, tuple)):
        spec = {"name": "custom", "layers": list(model), "source": "layer list"}
    elif isinstance(model, dict):
        spec = model
    else:
        spec = model_spec(str(model))
    net = build_net(spec["layers"], input_shape, num_classes, init)
    net.name = spec.get("name", "custom")
    return net


__all__ = ["build_model", "pretrained_spec", "is_pretrained", "register_backbone", "BACKBONES", "PRETRAINED", "default_input", "model_spec", "list_models", "get_model_entry", "register_model",
           "summary", "Summary", "Net", "Layer", "INITS", "LAYER_TYPES", "LayerType", "register_layer_type",
           "DEFAULT_INPUT_SHAPE", "DEFAULT_NUM_CLASSES", "is_spec_path", "load_spec_file"]
