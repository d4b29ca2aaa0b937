"""`timm:NAME`: a timm CNN as a pretrained backbone, with the optional extra `pip install 'konbu[timm]'`.

    konbu train --model timm:resnet50d --dataset cifar10 --image-size 96 --fine-tune
    konbu predict --model timm:convnext_atto photo.jpg

A timm model becomes a `Backbone` like a torchvision one (backbones.py): the model is built on the
meta device, and its trunk is the top-level children that `forward_features` runs, in the order it
runs them (a ResNet's conv1 … layer4, an EfficientNet's conv_stem … bn2; the pooling and classifier
are left out). The module names stay timm's, so timm's state dicts load key for key. The blocks
that `--unfreeze top:K` counts are timm's own coarse parameter groups (`model.group_matcher`: the
stem, then each stage), the same groups timm's layer-wise learning-rate decay uses.

Only models whose features are a chain of their children can be cut this way: a model that keeps
weights on itself (a ViT's position embedding and class token) or whose features are not an
N×C×H×W map is refused with the reason.

Weights: timm's published file for the model's default tag, `model.safetensors` on the Hugging Face
Hub (or the older release URL where a model has no Hub copy), downloaded once into
`$KONBU_HOME/weights/timm/<repository>/` and checked against the sha256 the Hub sends with it.
Preprocessing comes from the model's `pretrained_cfg`: input size, mean/std, interpolation, and the
resize before the centre crop (crop / crop_pct, as timm's eval transform does).
"""

import math
import os
from collections import OrderedDict

from ..errors import ConfigError, ModelSpecError, UnknownNameError

PREFIX = "timm:"
DEFAULT_CROP_PCT = 0.875   # timm's own default where a pretrained_cfg names none
_ENTRIES: dict = {}        # arch -> BackboneEntry, made on first use: timm's 1,800 models up front would cost seconds


def is_timm(arch) -> bool:
    return isinstance(arch, str) and arch.startswith(PREFIX)


def import_timm():
    try:
        import timm
    except ImportError:
        raise ConfigError("timm:NAME models need timm; install it with: pip install 'konbu[timm]'") from None
    return timm


def timm_entry(arch: str):
    """The BackboneEntry of `timm:NAME`, made from the timm model on first use."""
    if arch not in _ENTRIES:
        _ENTRIES[arch] = _make_entry(arch)
    return _ENTRIES[arch]


def _make_entry(arch: str):
    import functools

    import torch

    from .backbones import BackboneEntry

    timm = import_timm()
    name = arch.removeprefix(PREFIX)
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0]}*")[:8]
        hint = f"; did you mean {', '.join(PREFIX + c for c in close)}?" if close else \
            "; `python -c \"import timm; print(timm.list_models('*resnet*'))\"` lists timm's names"
        raise UnknownNameError(f"unknown timm model {name!r}{hint}")
    build = functools.partial(timm.create_model, name, pretrained=False)
    with torch.device("meta"):
        full = build()
    trunk = _trunk(arch, full)
    matcher = full.group_matcher(coarse=True)
    return BackboneEntry(arch, build, trunk, functools.partial(_blocks, matcher), _published(full),
                         source="timm", description=f"timm {name}", block_names=_block_names)


def _trunk(arch: str, full) -> tuple:
    """The top-level children `forward_features` runs, in order; refuse a model they do not make up."""
    import torch

    if any(tensor is not None for tensor in [*full._parameters.values(), *full._buffers.values()]):
        raise ModelSpecError(f"{arch}: the model keeps weights outside its layers "
                             f"({', '.join(full._parameters) or ', '.join(full._buffers)}), so it cannot be cut "
                             "into a chain of blocks; konbu takes timm CNNs (resnet, efficientnet, convnext, ...)")
    calls = []
    hooks = [child.register_forward_hook(lambda module, args, out, name=name: calls.append(name))
             for name, child in full.named_children()]
    try:
        out = full.forward_features(torch.zeros(1, *full.pretrained_cfg["input_size"], device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    if out.ndim != 4 or out.shape[1] != full.num_features:
        raise ModelSpecError(f"{arch}: its features are {tuple(out.shape)}, not a (N, {full.num_features}, H, W) "
                             "map that global average pooling and a new head can take")
    if len(calls) != len(set(calls)):
        raise ModelSpecError(f"{arch}: forward_features runs a layer twice ({', '.join(calls)}), so its layers "
                             "are not a chain konbu can freeze block by block")
    return tuple(calls)


def _blocks(matcher, trunk) -> list:
    """timm's coarse groups (stem, stage 1, ...) as lists of the trunk's modules that hold weights."""
    from timm.models import group_modules

    groups = group_modules(trunk, matcher)
    return [[trunk.get_submodule(name) for name in groups[key]] for key in sorted(groups)]


def _block_names(trunk, blocks) -> list:
    """A block by the longest dotted prefix its modules share under each top-level child: "layer1",
    "stages.0", "conv1+bn1" (a stem of separate children), "blocks.6.0+conv_head+bn2"."""
    names = {id(module): name for name, module in trunk.named_modules()}
    out = []
    for block in blocks:
        by_top = OrderedDict()
        for module in block:
            parts = names[id(module)].split(".")
            by_top[parts[0]] = os.path.commonprefix([by_top.get(parts[0], parts), parts])   # lists, element-wise
        out.append("+".join(".".join(parts) for parts in by_top.values()))
    return out


def _published(full):
    """Published weights from the model's pretrained_cfg: the Hub's safetensors file, or the release URL."""
    from .weights import Published, WEIGHTS_FOLDER

    cfg = full.pretrained_cfg
    hub = cfg.get("hf_hub_id")
    if hub:
        url = f"https://huggingface.co/{hub}/resolve/main/{cfg.get('hf_hub_filename') or 'model.safetensors'}"
        folder = f"{WEIGHTS_FOLDER}/timm/{hub.replace('/', '--')}"   # every Hub file is model.safetensors
    elif cfg.get("url"):
        url, folder = cfg["url"], WEIGHTS_FOLDER
    else:
        return None   # no published weights: --weights FILE
    crop = int(cfg["input_size"][-1])
    minimum = cfg.get("min_input_size")
    return Published(url, _categories(full), crop, int(math.floor(crop / (cfg.get("crop_pct") or DEFAULT_CROP_PCT))),
                     tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225))),
                     cfg.get("interpolation") or "bilinear", int(minimum[-1]) if minimum else 32, folder)


def _categories(full) -> tuple:
    """The classifier's class names, short like torchvision's ("tench", not "tench, Tinca tinca")."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(full)
    if subset is None:
        return tuple(f"class {index}" for index in range(full.num_classes))
    info = ImageNetInfo(subset)
    return tuple(info.index_to_description(index).split(",")[0] for index in range(info.num_classes()))
