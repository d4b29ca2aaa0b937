"""Pretrained backbones: torchvision's ImageNet classifiers without their top, as one layer of a spec.

    spec = pretrained_spec("resnet18")     # {"name": "pretrained:resnet18", "layers": [...], ...}
    net = build_model(spec, (3, 224, 224), num_classes=5)

A pretrained model is the spec

    [{"type": "backbone", "arch": "resnet18"},      # the network up to its last feature map
     {"type": "global_avgpool2d"},                  # Keras's GlobalAveragePooling2D: the head starts
     {"type": "dropout", "rate": 0.2},
     {"type": "dense", "units": "classes"}]

so a run of one is an ordinary run: model.json names the architecture, weights.safetensors holds
all its weights, and Run.load builds it again without any download (the backbone is built with
random weights, then the run's are loaded). Where the ImageNet weights come from is weights.py.

A `Backbone` keeps torchvision's own module names (`layer1.0.conv1`, `features.3`), so
torchvision's state dicts load into it key for key. It is split into blocks, bottom to top (a
ResNet's stem and its four stages; VGG's five conv blocks; a MobileNet's or EfficientNet's feature
stages), which is what `--unfreeze top:K` counts. A frozen block's weights take no gradient and its
BatchNorm layers stay in eval mode however the model is switched, so their statistics do not move.
"""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from ..errors import ModelSpecError, UnknownNameError
from .layers import register_layer_type
from .timm_backbones import is_timm, timm_entry

PREFIX = "pretrained:"


@dataclass(frozen=True)
class BackboneEntry:
    """One architecture: how its trunk is cut out of the torchvision model and split into blocks."""

    name: str
    build: Callable            # () -> the full torchvision model with random weights
    trunk: tuple               # the model's children, in forward order, that make the backbone
    blocks: Callable           # (trunk: nn.Sequential) -> [[module, ...], ...], bottom to top
    weights: str | None = None   # torchvision's weights enum, e.g. "ResNet18_Weights.IMAGENET1K_V1"
    # inception_v3's ImageNet weights expect inputs scaled to [-1, 1] (torchvision converts them
    # with transform_input): its preprocess.json says mean 0.5, std 0.5 instead of ImageNet's
    mean_std: tuple | None = None
    source: str = "torchvision"
    description: str = ""
    # (trunk, blocks) -> a name per block; default: the first and last module's names (backbones.py)
    block_names: Callable | None = None


BACKBONES: dict = {}


def register_backbone(entry: BackboneEntry):
    if entry.name in BACKBONES:
        raise ValueError(f"backbone {entry.name!r} is registered twice")
    BACKBONES[entry.name] = entry
    return entry


def get_backbone(name: str) -> BackboneEntry:
    if is_timm(name):
        return timm_entry(name)
    if name not in BACKBONES:
        raise UnknownNameError(f"unknown pretrained backbone {name!r}; expected one of {', '.join(BACKBONES)} "
                               f"(as --model {PREFIX}NAME), or timm:NAME for a timm model")
    return BACKBONES[name]


def is_pretrained(model) -> bool:
    """`pretrained:NAME` (torchvision) or `timm:NAME`."""
    return isinstance(model, str) and (model.startswith(PREFIX) or is_timm(model))


def model_name(arch: str) -> str:
    """The `--model` name of backbone `arch`: `pretrained:resnet18`; a timm arch is its own (`timm:...`)."""
    return arch if is_timm(arch) else PREFIX + arch


def pretrained_spec(name: str, dropout: float = 0.2) -> dict:
    """The spec of `pretrained:NAME` (or NAME) or `timm:NAME`: backbone, global average pooling, dropout,
    dense head. A backbone's arch is torchvision's name, or timm's with its prefix."""
    arch = name.removeprefix(PREFIX)
    entry = get_backbone(arch)
    layers = [{"type": "backbone", "arch": arch}, {"type": "global_avgpool2d"}]
    if dropout:
        layers.append({"type": "dropout", "rate": dropout})
    layers.append({"type": "dense", "units": "classes"})
    # torchvision's weights enum by name; published weights (timm's, a test's) by their URL
    weights = getattr(entry.weights, "url", entry.weights) or "random"
    return {"name": model_name(arch), "layers": layers,
            "source": f"{entry.source} {arch} ({weights} weights), a new dense head"}


class Backbone(nn.Sequential):
    """A trunk with torchvision's module names, split into blocks that can be frozen from the bottom."""

    def __init__(self, arch: str, modules: OrderedDict, blocks: Callable, block_names: Callable | None = None):
        super().__init__(modules)
        self.arch = arch
        # plain lists, not registered again: the modules are already children of this Sequential (not
        # `self.blocks`: timm's EfficientNet has a child of that name)
        self.freeze_blocks = blocks(self)
        self.trainable_blocks = len(self.freeze_blocks)
        if block_names is not None:
            self.block_names = block_names(self, self.freeze_blocks)
        else:
            names = {id(module): name for name, module in self.named_modules()}
            self.block_names = [_block_name(names[id(block[0])], names[id(block[-1])])
                                for block in self.freeze_blocks]

    def set_trainable(self, top: int):
        """Train the top `top` blocks (0: all frozen; len(blocks): none); the others take no gradient
        and keep their BatchNorm statistics (eval mode, whatever train() is called with)."""
        top = max(0, min(int(top), len(self.freeze_blocks)))
        self.trainable_blocks = top
        for index, block in enumerate(self.freeze_blocks):
            trainable = index >= len(self.freeze_blocks) - top
            for module in block:
                for parameter in module.parameters():
                    parameter.requires_grad_(trainable)
        self.train(self.training)

    def frozen_names(self) -> list:
        return self.block_names[:len(self.freeze_blocks) - self.trainable_blocks]

    def trained_names(self) -> list:
        return self.block_names[len(self.freeze_blocks) - self.trainable_blocks:]

    def frozen_modules(self):
        frozen = self.freeze_blocks[:len(self.freeze_blocks) - self.trainable_blocks]
        return [module for block in frozen for module in block]

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()      # BatchNorm of a frozen block: running statistics used, never updated
        return self


def _block_name(first: str, last: str) -> str:
    """A block by its modules' names: "layer3"; "conv1-maxpool"; "features.0-4" within one parent."""
    if first == last:
        return first
    parent, _, _ = first.rpartition(".")
    if parent and last.startswith(parent + "."):
        return f"{first}-{last.removeprefix(parent + '.')}"
    return f"{first}-{last}"


def build_backbone(arch: str) -> Backbone:
    """The backbone `arch`, with PyTorch's default init: it is built for weights to be loaded into it.

    The full torchvision model is built on the meta device (no memory, no init time: VGG16's
    classifier alone is 120M weights and 2 s to initialise) and only the trunk is materialised."""
    import torch

    entry = get_backbone(arch)
    on_meta = torch.get_default_device().type == "meta"
    with torch.device("meta"):
        full = entry.build()
    children = dict(full.named_children())
    missing = [name for name in entry.trunk if name not in children]
    if missing:
        raise ModelSpecError(f"backbone {arch}: the {entry.source} model has no {missing[0]!r}")
    backbone = Backbone(arch, OrderedDict((name, children[name]) for name in entry.trunk), entry.blocks,
                        entry.block_names)
    if not on_meta:
        backbone.to_empty(device="cpu")
        with torch.no_grad():
            for tensor in [*backbone.parameters(), *backbone.buffers()]:
                tensor.zero_()   # what no reset_parameters covers (ConvNeXt's layer scale) is never garbage
            for module in backbone.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    return backbone


@register_layer_type("backbone", "backbone", "Functional", fields={"arch"}, required={"arch"})
def build_backbone_layer(entry, shape, layer):
    import torch

    arch = entry["arch"]
    if not isinstance(arch, str) or not (arch in BACKBONES or is_timm(arch)):
        raise ModelSpecError(f"{layer}: unknown backbone {arch!r}; expected one of {', '.join(BACKBONES)}, "
                             "or timm:NAME")
    if len(shape) != 3 or shape[0] != 3:
        raise ModelSpecError(f"{layer}: a pretrained backbone takes RGB images (3, H, W), got {tuple(shape)}; "
                             "grey data is repeated to three channels when trained with --model pretrained:NAME")
    module = build_backbone(arch)
    try:
        with torch.no_grad():   # one dry run tells the feature map's shape (each family shrinks differently)
            was = module.training
            out = module.eval()(torch.zeros(1, *shape))
            module.train(was)
    except RuntimeError as error:
        raise ModelSpecError(f"{layer}: {arch} cannot run on {shape[1]}x{shape[2]} images "
                             f"({str(error).splitlines()[0]}); use a larger --image-size") from None
    return module, tuple(out.shape[1:])


# --------------------------------------------------------------------------------------- the families

def _tv(name: str, **kwargs):
    def build():
        import warnings

        from torchvision import models
        with warnings.catch_warnings():   # inception_v3's note about its init's future default
            warnings.simplefilter("ignore", FutureWarning)
            return models.get_model(name, weights=None, **kwargs)
    return build


def _children_blocks(part: str, group=None):
    """Blocks from the children of trunk `part` (features): each its own block, or grouped so that a
    block ends at each child that `group` picks (VGG: a max-pool ends a conv block)."""
    def blocks(trunk):
        children = list(getattr(trunk, part).children())
        if group is None:
            return [[child] for child in children]
        out, current = [], []
        for child in children:
            current.append(child)
            if group(child):
                out.append(current)
                current = []
        if current:
            out.append(current)
        return out
    return blocks


def _named_blocks(*groups):
    """Blocks from named trunk children: each group a tuple of names."""
    def blocks(trunk):
        return [[trunk._modules[name] for name in group] for group in groups]
    return blocks


def _convnext_blocks(trunk):
    """ConvNeXt: the stem with the first stage, then each downsampling layer with the stage it feeds."""
    children = list(trunk.features.children())
    return [children[0:2]] + [children[i:i + 2] for i in range(2, len(children), 2)]


RESNET_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
RESNET_BLOCKS = _named_blocks(("conv1", "bn1", "relu", "maxpool"), ("layer1",), ("layer2",), ("layer3",), ("layer4",))
INCEPTION_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                  "maxpool2")
INCEPTION_MIXED = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                   "Mixed_7a", "Mixed_7b", "Mixed_7c")

for _name, _weights in (("resnet18", "ResNet18_Weights.IMAGENET1K_V1"), ("resnet50", "ResNet50_Weights.IMAGENET1K_V2")):
    register_backbone(BackboneEntry(_name, _tv(_name), RESNET_TRUNK, RESNET_BLOCKS, _weights,
                                    description="residual network: a stem and four stages"))
register_backbone(BackboneEntry(
    "vgg16", _tv("vgg16"), ("features",), _children_blocks("features", lambda m: isinstance(m, nn.MaxPool2d)),
    "VGG16_Weights.IMAGENET1K_V1", description="VGG16 (the Keras book's pretrained network): five conv blocks"))
register_backbone(BackboneEntry(
    "inception_v3", _tv("inception_v3", aux_logits=True, init_weights=False), INCEPTION_STEM + INCEPTION_MIXED,
    _named_blocks(INCEPTION_STEM, *((name,) for name in INCEPTION_MIXED)), "Inception_V3_Weights.IMAGENET1K_V1",
    mean_std=((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    description="Inception-v3 (the Keras book's fine-tuning example): a stem and eleven mixed blocks"))
for _name, _weights in (("mobilenet_v3_small", "MobileNet_V3_Small_Weights.IMAGENET1K_V1"),
                        ("efficientnet_b0", "EfficientNet_B0_Weights.IMAGENET1K_V1")):
    register_backbone(BackboneEntry(_name, _tv(_name), ("features",), _children_blocks("features"), _weights,
                                    description="mobile network: one block per feature stage"))
register_backbone(BackboneEntry(
    "convnext_tiny", _tv("convnext_tiny"), ("features",), _convnext_blocks, "ConvNeXt_Tiny_Weights.IMAGENET1K_V1",
    description="ConvNeXt: four stages (the classifier's LayerNorm is left out with the rest of the top)"))
