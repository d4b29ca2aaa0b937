"""The layer vocabulary of a model spec, and how each entry becomes a torch module.

A spec is a list of dicts, like a Keras `Sequential`:

    [{"type": "conv2d", "filters": 32, "kernel_size": 3, "activation": "relu"},
     {"type": "maxpool2d", "pool_size": 2},
     {"type": "flatten"},
     {"type": "dense", "units": "classes"}]          # "classes": the dataset's number of classes

Each layer type is one `LayerType` in `LAYER_TYPES`, registered by decorating its builder
(adding a layer type means adding one decorated function):

    @register_layer_type("dropout", "dropout", "Dropout", fields={"rate"}, required={"rate"})
    def build_dropout(entry, shape, layer): ...

A builder gets the entry's fields and the incoming shape `(C, H, W)` (or `(features,)` after
flatten) and returns `(module, output_shape)`. Tracing the shape while building is what lets a
dense layer know its input size, and lets a bad spec fail with the layer's name and position.
"""

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ModelSpecError, ShapeError
from .dense import Dense
from .dropout import Dropout
from .whiten import Whiten

# name -> (module factory, Keras type name for the summary's "Layer (type)" column)
ACTIVATIONS = {
    "relu": (lambda: nn.ReLU(inplace=True), "ReLU"),   # in place: saves a tensor per layer, faster on CPU
    "tanh": (nn.Tanh, "Tanh"),
    "sigmoid": (nn.Sigmoid, "Sigmoid"),
    "elu": (nn.ELU, "ELU"),
    "gelu": (nn.GELU, "GELU"),
    "leaky_relu": (lambda: nn.LeakyReLU(0.2), "LeakyReLU"),  # Keras' default slope
    "softmax": (None, None),   # the output layer's softmax is applied by the loss and by predict()
    "linear": (None, None),
}

# Bounds on the sizes a spec may ask for: far above the tutorials' nets, low enough that a typo
# (filters: 320000) is an error message rather than a many-gigabyte allocation
MAX_WIDTH = 1 << 16              # filters of a conv, units of a dense layer: 16x VGG's widest
MAX_LAYER_WEIGHTS = 1 << 28      # 268M weights (1 GiB as float32): 2.6x VGG-16's largest layer


@dataclass(frozen=True)
class LayerType:
    """One word of the spec vocabulary: how it is named, checked and built."""

    name: str              # the spec's `type`: conv2d
    keras_name: str        # module name base, numbered as Keras numbers layers: conv2d, conv2d_1
    keras_class: str       # the summary's "(type)": Conv2D
    fields: frozenset      # fields an entry may have besides `type` and `name`
    required: frozenset    # fields an entry must have (a subset of `fields`)
    build: Callable        # (entry, shape, layer) -> (module, output_shape)


LAYER_TYPES: dict = {}   # type -> LayerType; the one table a new layer type is added to


def register_layer_type(name, keras_name, keras_class, fields=(), required=()):
    """Decorator: make the decorated builder the layer type `name`. A duplicate name is an error."""
    fields, required = frozenset(fields), frozenset(required)
    if name in LAYER_TYPES:
        raise ValueError(f"layer type {name!r} is registered twice")
    if not required <= fields:
        # a required field outside `fields` would be rejected as unknown: no entry could ever pass
        raise ValueError(f"layer type {name!r}: required {sorted(required - fields)} not among its fields")

    def register(build):
        LAYER_TYPES[name] = LayerType(name, keras_name, keras_class, fields, required, build)
        return build
    return register


class SamePadConv2d(nn.Conv2d):
    """Conv2d with Keras' `padding="same"` for any stride: output size ceil(in / stride), the odd
    pixel of padding going right/bottom as TensorFlow does. Stride 1 uses torch's own 'same'."""

    def __init__(self, *args, same_pad=(0, 0, 0, 0), **kwargs):
        super().__init__(*args, **kwargs)
        self.same_pad = same_pad  # (left, right, top, bottom)

    def forward(self, x):
        return super().forward(F.pad(x, self.same_pad))


def _is_count(value) -> bool:
    """A whole number >= 1; a bool is not one (YAML's `yes` would otherwise be a kernel of 1)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _pair(value, layer, field):
    if _is_count(value):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_count(v) for v in value):
        return tuple(value)
    raise ModelSpecError(f"{layer}: `{field}` must be a positive int or a pair of them, got {value!r}")


def _width(entry, field, layer, extra=""):
    """`filters` or `units`: a whole number in 1..MAX_WIDTH."""
    value = entry[field]
    if not _is_count(value) or value > MAX_WIDTH:
        raise ModelSpecError(f"{layer}: `{field}` must be a positive int up to {MAX_WIDTH:,}{extra}, got {value!r}")
    return value


def _check_weights(count, layer):
    if count > MAX_LAYER_WEIGHTS:
        raise ModelSpecError(f"{layer}: {count:,} weights in one layer, more than konbu builds "
                             f"({MAX_LAYER_WEIGHTS:,}); use fewer filters or units, or pool before `flatten`")


def _use_bias(entry, layer, default: bool = True) -> bool:
    value = entry.get("use_bias", default)
    if not isinstance(value, bool):   # bool("false") is True: a quoted JSON "false" must not mean yes
        raise ModelSpecError(f"{layer}: `use_bias` must be true or false, got {value!r}")
    return value


def _padding(entry, layer):
    padding = entry.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise ModelSpecError(f"{layer}: `padding` must be 'valid' or 'same', got {padding!r}")
    return padding


def _same_pad(size, kernel, stride):
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _spatial(shape, layer):
    if len(shape) != 3:
        raise ModelSpecError(f"{layer}: needs an image input (C, H, W), but gets flat features {shape}; "
                             "put it before `flatten`")
    return shape


def _check_size(out_h, out_w, layer, in_shape):
    if out_h < 1 or out_w < 1:
        raise ShapeError(f"{layer}: input {tuple(in_shape)} shrinks to {out_h}x{out_w}; the image is too small "
                         "for this many conv/pool layers. Use padding 'same', fewer layers, or a larger image size.")


@register_layer_type("conv2d", "conv2d", "Conv2D", required={"filters", "kernel_size"},
                     fields={"filters", "kernel_size", "strides", "padding", "activation", "use_bias"})
def build_conv2d(entry, shape, layer):
    channels, height, width = _spatial(shape, layer)
    filters = _width(entry, "filters", layer)
    kernel = _pair(entry["kernel_size"], layer, "kernel_size")
    stride = _pair(entry.get("strides", 1), layer, "strides")
    bias = _use_bias(entry, layer)
    same = _padding(entry, layer) == "same"
    if same:
        out_h, out_w = math.ceil(height / stride[0]), math.ceil(width / stride[1])
    else:
        out_h, out_w = (height - kernel[0]) // stride[0] + 1, (width - kernel[1]) // stride[1] + 1
    # checked before the module exists: a kernel of 10**20 must not reach torch's allocator
    _check_size(out_h, out_w, layer, shape)
    _check_weights(filters * channels * kernel[0] * kernel[1], layer)
    if same:
        if stride == (1, 1):
            module = nn.Conv2d(channels, filters, kernel, stride, padding="same", bias=bias)
        else:
            top, bottom = _same_pad(height, kernel[0], stride[0])
            left, right = _same_pad(width, kernel[1], stride[1])
            module = SamePadConv2d(channels, filters, kernel, stride, bias=bias, same_pad=(left, right, top, bottom))
    else:
        module = nn.Conv2d(channels, filters, kernel, stride, bias=bias)
    return module, (filters, out_h, out_w)


def _pool(pool_class, entry, shape, layer):
    channels, height, width = _spatial(shape, layer)
    pool = _pair(entry.get("pool_size", 2), layer, "pool_size")
    stride = _pair(entry.get("strides") or pool, layer, "strides")
    if _padding(entry, layer) == "same":
        if stride != pool:
            raise ModelSpecError(f"{layer}: padding 'same' is supported for pools whose strides equal "
                                 f"pool_size, got pool_size {pool} and strides {stride}")
        # Keras 'same' pads the far edge; ceil_mode gives the same windows without a pad op
        module = pool_class(pool, stride, ceil_mode=True)
        out_h, out_w = math.ceil(height / stride[0]), math.ceil(width / stride[1])
    else:
        module = pool_class(pool, stride)
        out_h, out_w = (height - pool[0]) // stride[0] + 1, (width - pool[1]) // stride[1] + 1
    _check_size(out_h, out_w, layer, shape)
    return module, (channels, out_h, out_w)


POOL_FIELDS = {"pool_size", "strides", "padding"}


@register_layer_type("maxpool2d", "max_pooling2d", "MaxPooling2D", fields=POOL_FIELDS)
def build_maxpool2d(entry, shape, layer):
    return _pool(nn.MaxPool2d, entry, shape, layer)


@register_layer_type("avgpool2d", "average_pooling2d", "AveragePooling2D", fields=POOL_FIELDS)
def build_avgpool2d(entry, shape, layer):
    return _pool(nn.AvgPool2d, entry, shape, layer)


@register_layer_type("flatten", "flatten", "Flatten")
def build_flatten(entry, shape, layer):
    return nn.Flatten(), (math.prod(shape),)


@register_layer_type("global_avgpool2d", "global_average_pooling2d", "GlobalAveragePooling2D")
def build_global_avgpool2d(entry, shape, layer):
    """The mean of each feature map: (C, H, W) -> (C,). Like `flatten`, the head starts here."""
    _spatial(shape, layer)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), (shape[0],)


@register_layer_type("global_maxpool2d", "global_max_pooling2d", "GlobalMaxPooling2D")
def build_global_maxpool2d(entry, shape, layer):
    """The largest value of each feature map: (C, H, W) -> (C,) (airbench's head)."""
    _spatial(shape, layer)
    return nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten()), (shape[0],)


# the layer types after which features are flat: the first of them starts a Net's head
HEAD_STARTS = ("flatten", "global_avgpool2d", "global_maxpool2d")


@register_layer_type("dense", "dense", "Dense", fields={"units", "activation", "use_bias"}, required={"units"})
def build_dense(entry, shape, layer):
    if len(shape) != 1:
        raise ModelSpecError(f"{layer}: dense needs flat features but gets {shape}; put a `flatten` before it")
    units = _width(entry, "units", layer, extra=' or "classes"')
    _check_weights(shape[0] * units, layer)
    return Dense(shape[0], units, bias=_use_bias(entry, layer)), (units,)


@register_layer_type("dropout", "dropout", "Dropout", fields={"rate"}, required={"rate"})
def build_dropout(entry, shape, layer):
    rate = entry["rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ModelSpecError(f"{layer}: `rate` must be a number in [0, 1), got {rate!r}")
    return Dropout(float(rate)), shape


@register_layer_type("batchnorm", "batch_normalization", "BatchNormalization",
                     fields={"momentum", "epsilon", "center", "scale"})
def build_batchnorm(entry, shape, layer):
    keras_momentum, eps = entry.get("momentum", 0.99), entry.get("epsilon", 1e-3)
    # `not (in range)`, so NaN is refused too
    if isinstance(keras_momentum, bool) or not isinstance(keras_momentum, (int, float)) or not 0 <= keras_momentum < 1:
        raise ModelSpecError(f"{layer}: `momentum` must be a number in [0, 1) (Keras's 0.99), got {keras_momentum!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 1:
        raise ModelSpecError(f"{layer}: `epsilon` must be a number in (0, 1] (Keras's 0.001), got {eps!r}")
    # Keras momentum 0.99 means running = 0.99 * running + 0.01 * batch; torch counts the other way
    momentum = 1.0 - float(keras_momentum)
    norm = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(shape[0], eps=eps, momentum=momentum)
    # Keras's center=False / scale=False: no beta / gamma; here they stay at 0 / 1, untrained (the
    # optimizer skips a parameter without a gradient), so the state dict keeps its usual keys
    for field, parameter in (("center", norm.bias), ("scale", norm.weight)):
        value = entry.get(field, True)
        if not isinstance(value, bool):
            raise ModelSpecError(f"{layer}: `{field}` must be true or false, got {value!r}")
        parameter.requires_grad_(value)
    return norm, shape


@register_layer_type("whiten", "whitening", "Whitening", fields={"kernel_size", "epsilon", "use_bias"})
def build_whiten(entry, shape, layer):
    """A frozen patch-whitening convolution (Whiten): 2 x C x k x k channels out, no padding; with
    `use_bias`, a trained bias (--whiten-bias-epochs says for how long)."""
    channels, height, width = _spatial(shape, layer)
    kernel = entry.get("kernel_size", 2)
    if not _is_count(kernel) or kernel > 8:
        raise ModelSpecError(f"{layer}: `kernel_size` must be a whole number from 1 to 8, got {kernel!r}")
    eps = entry.get("epsilon", 5e-4)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 1:
        raise ModelSpecError(f"{layer}: `epsilon` must be a number in (0, 1] (airbench's 0.0005), got {eps!r}")
    _check_size(height - kernel + 1, width - kernel + 1, layer, shape)
    return (Whiten(channels, kernel, float(eps), _use_bias(entry, layer, default=False)),
            (2 * channels * kernel * kernel, height - kernel + 1, width - kernel + 1))


class Rescaling(nn.Module):
    """x * scale + offset, as Keras's Rescaling layer."""

    def __init__(self, scale: float, offset: float):
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x):
        return x * self.scale + self.offset if self.offset else x * self.scale

    def extra_repr(self):
        return f"scale={self.scale:g}, offset={self.offset:g}"


@register_layer_type("rescaling", "rescaling", "Rescaling", fields={"scale", "offset"}, required={"scale"})
def build_rescaling(entry, shape, layer):
    """Keras's Rescaling; after the last dense layer it calms the logits (airbench's 1/9, Page's 1/8)."""
    values = []
    for field, default in (("scale", None), ("offset", 0.0)):
        value = entry.get(field, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) < 1e6:
            raise ModelSpecError(f"{layer}: `{field}` must be a number (e.g. 0.1111), got {value!r}")
        values.append(float(value))
    return Rescaling(*values), shape


@register_layer_type("activation", "activation", "Activation", fields={"activation"}, required={"activation"})
def build_activation(entry, shape, layer):
    return activation_module(entry["activation"], layer) or nn.Identity(), shape


def activation_module(name, layer):
    if name is None:
        return None
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ModelSpecError(f"{layer}: unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    factory = ACTIVATIONS[name][0]
    return factory() if factory else None


@torch.no_grad()
def init_tf(model: nn.Module):
    """TensorFlow 'Deep MNIST for experts' init: weights ~ truncated normal(std 0.1), biases 0.1."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.1, a=-0.2, b=0.2)
            if module.bias is not None:
                nn.init.constant_(module.bias, 0.1)


@torch.no_grad()
def init_zeros(model: nn.Module):
    """Every weight and bias zero: all units of a layer stay identical (no symmetry breaking)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


@torch.no_grad()
def init_glorot(model: nn.Module):
    """Keras's default: kernels ~ Glorot (Xavier) uniform, biases zero. Its range, sqrt(6 / (fan_in +
    fan_out)), is wider than PyTorch's default for a conv (sqrt(1 / fan_in)): a Keras tutorial's
    learning rate was chosen for it."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


# name -> function applied after building; "default" keeps PyTorch's own (Kaiming-uniform) init
INITS = {"default": lambda model: None, "tf": init_tf, "zeros": init_zeros, "glorot": init_glorot}
