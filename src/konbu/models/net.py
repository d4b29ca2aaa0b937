"""Build a layer spec into a `Net`: an `nn.Sequential` of two parts, `features` and `head`.

`features` holds everything before the first `flatten` or `global_avgpool2d` (the conv part: feature maps index it),
`head` the rest (fine-tuning swaps it). Modules get Keras-like names (conv2d, conv2d_1,
max_pooling2d, dense ...) so `konbu summary` reads like the tutorials' `model.summary()`; an
activation written inside a layer entry becomes its own module named after its owner
(`conv2d_relu`), so the picture "after conv" and "after ReLU" can both be taken.
"""

from collections import OrderedDict
from dataclasses import dataclass

import torch.nn as nn

from ..errors import ModelSpecError
from .layers import HEAD_STARTS, INITS, LAYER_TYPES, activation_module


@dataclass(frozen=True)
class Layer:
    """One row of the summary: a spec entry and the module names that implement it."""

    name: str        # Keras-like: conv2d_1
    type: str        # Keras class name: Conv2D
    modules: tuple   # ("conv2d_1", "conv2d_1_relu"): the layer, then its activation if any
    part: str        # "features" or "head"


# Activations that commute with a max: for a non-decreasing f, max(f(a), f(b)) = f(max(a, b)), so
# pool(f(x)) = f(pool(x)) in value and in gradient (both pass it to the same argmax)
COMMUTE_WITH_MAX = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Hardtanh)


class Stack(nn.Sequential):
    """nn.Sequential that runs `activation, max-pool` as `max-pool, activation`: the same numbers, with
    the activation and its backward on a quarter of the elements (a 2x2 pool). In chollet-mnist the
    first ReLU's forward and backward on the full 26x26 map took a fifth of a CPU step; pooling first
    trains it 1.4x faster in fp32. A pair whose modules carry hooks (feature maps, Grad-CAM, the
    summary) runs in the written order, so an inspection sees the activation's full map."""

    def forward(self, x):
        modules = list(self._modules.values())
        index = 0
        while index < len(modules):
            module = modules[index]
            following = modules[index + 1] if index + 1 < len(modules) else None
            if (isinstance(module, COMMUTE_WITH_MAX) and isinstance(following, nn.MaxPool2d)
                    and not _hooked(module) and not _hooked(following)):
                x = module(following(x))
                index += 2
            else:
                x = module(x)
                index += 1
        return x


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


class Net(nn.Sequential):
    """`features` then `head`; `layers` lists the spec's layers in order with their module names."""

    def __init__(self, features: nn.Sequential, head: nn.Sequential, layers, spec, input_shape, num_classes):
        super().__init__(OrderedDict(features=features, head=head))
        self.layers = list(layers)
        self.spec = spec                     # the resolved layer list this net was built from
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    def module_named(self, name: str) -> nn.Module:
        for part in (self.features, self.head):
            if name in part._modules:
                return part._modules[name]
        raise KeyError(name)


def _describe(index, entry):
    kind = entry.get("type", "?") if isinstance(entry, dict) else "?"
    return f"layer {index} ({kind})"


def _check_entry(index, entry):
    where = _describe(index, entry)
    if not isinstance(entry, dict):
        raise ModelSpecError(f"{where}: each layer must be a mapping like {{type: conv2d, filters: 32}}, got {entry!r}")
    kind = entry.get("type")
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        raise ModelSpecError(f"{where}: unknown layer type {kind!r}; expected one of {', '.join(LAYER_TYPES)}")
    layer_type = LAYER_TYPES[kind]
    unknown = sorted(set(entry) - layer_type.fields - {"type", "name"})
    if unknown:
        raise ModelSpecError(f"{where}: unknown field `{unknown[0]}`; a {kind} layer takes "
                             f"{', '.join(sorted(layer_type.fields)) or 'no fields'}")
    missing = sorted(layer_type.required - set(entry))
    if missing:
        raise ModelSpecError(f"{where}: missing field `{missing[0]}` (a {kind} layer needs "
                             f"{', '.join(sorted(layer_type.required))})")
    name = entry.get("name")
    # torch's module names: non-empty strings without a dot (a dot separates a path of modules)
    if name is not None and (not isinstance(name, str) or not name or "." in name):
        raise ModelSpecError(f"{where}: `name` must be a non-empty string without dots, got {name!r}")


def resolve(spec, num_classes: int):
    """Copy of the layer list with `units: classes` replaced by the class count."""
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ModelSpecError(f"a model spec is a non-empty list of layers, got {type(spec).__name__}")
    resolved = []
    for index, entry in enumerate(spec):
        _check_entry(index, entry)
        entry = dict(entry)
        if entry.get("units") == "classes":
            entry["units"] = num_classes
        resolved.append(entry)
    return resolved


def build_net(spec, input_shape, num_classes: int, init: str = "default") -> Net:
    """Build a spec for images of `input_shape` (C, H, W) and `num_classes` outputs (logits)."""
    if init not in INITS:
        raise ModelSpecError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    spec = resolve(spec, num_classes)
    parts = {"features": OrderedDict(), "head": OrderedDict()}
    layers, counters = [], {}
    part, shape = "features", tuple(input_shape)
    for index, entry in enumerate(spec):
        layer_type = LAYER_TYPES[entry["type"]]
        base = layer_type.keras_name
        count = counters.get(base, 0)
        counters[base] = count + 1
        name = entry.get("name") or (base if count == 0 else f"{base}_{count}")
        if name in parts["features"] or name in parts["head"]:
            raise ModelSpecError(f"{_describe(index, entry)}: the name {name!r} is used twice")
        if entry["type"] in HEAD_STARTS:
            part = "head"
        module, shape = layer_type.build(entry, shape, f"{_describe(index, entry)} {name!r}")
        parts[part][name] = module
        names = [name]
        activation = activation_module(entry.get("activation"), _describe(index, entry)) if entry["type"] != "activation" else None
        if activation is not None:
            activation_name = f"{name}_{entry['activation']}"
            if activation_name in parts["features"] or activation_name in parts["head"]:
                raise ModelSpecError(f"{_describe(index, entry)}: its activation would be named {activation_name!r}, "
                                     "a name an earlier layer already has")
            parts[part][activation_name] = activation
            names.append(activation_name)
        layers.append(Layer(name, layer_type.keras_class, tuple(names), part))
    if shape != (num_classes,):
        raise ModelSpecError(f"the last layer outputs shape {shape}, but the dataset has {num_classes} classes; "
                             "end the spec with {type: dense, units: classes}")
    net = Net(Stack(parts["features"]), Stack(parts["head"]), layers, spec, input_shape, num_classes)
    INITS[init](net)
    return net
