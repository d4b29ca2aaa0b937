"""Name -> model registry. Seed architectures are data: a layer list plus where it comes from.

    register_model("chollet-mnist", source="Deep Learning with Python 5.1", layers=[...])
"""

from dataclasses import dataclass

from ..errors import UnknownNameError

_MODELS: dict = {}

# What a model is built for when nothing says otherwise: MNIST, the data most seeds were written for
DEFAULT_INPUT_SHAPE = (1, 28, 28)   # (C, H, W)
DEFAULT_NUM_CLASSES = 10


@dataclass(frozen=True)
class ModelEntry:
    name: str
    layers: tuple     # the layer spec (see layers.py for the vocabulary)
    source: str       # the tutorial or book it comes from
    description: str = ""
    input_shape: tuple = DEFAULT_INPUT_SHAPE   # (C, H, W) of the data it was designed for
    num_classes: int = DEFAULT_NUM_CLASSES


def register_model(name: str, layers, source: str, description: str = "", input_shape=DEFAULT_INPUT_SHAPE,
                   num_classes: int = DEFAULT_NUM_CLASSES):
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = ModelEntry(name, tuple(layers), source, description, tuple(input_shape), num_classes)


def list_models():
    return list(_MODELS)


def get_model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise UnknownNameError(
            f"unknown model {name!r}; expected one of: {', '.join(_MODELS)}, or a path to a "
            ".yaml/.json spec. Run `konbu models` to see the zoo.")
    return _MODELS[name]
