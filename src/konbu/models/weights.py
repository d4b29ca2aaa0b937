"""A pretrained backbone's weights: torchvision's published file, or the user's own.

    info = published("resnet18")             # URL, file name, hash, classes, input size, mean/std
    state = backbone_state("resnet18")       # downloaded on first use into $KONBU_HOME/weights
    state = backbone_state("resnet18", "my-resnet18.safetensors")

Published weights are downloaded from torchvision's URL (download.pytorch.org) into
`$KONBU_HOME/weights/<file>` through a `.part` file and kept only when their sha256 begins with the
hash in the file name, as `torch.hub` checks them. `KONBU_MIRROR=URL` fetches
`$KONBU_MIRROR/weights/<file>` instead. timm's weights (timm_backbones.py) come from the Hugging
Face Hub into `weights/timm/<repository>/`, checked against the sha256 the Hub sends. Offline
without the file, the error names the URL, the file name and the folder to put it in.

A user's file (`--weights FILE`) is read without running any code: safetensors, or a PyTorch `.pth`
state dict read with `torch.load(weights_only=True)` and refused unless it is a mapping of names to
tensors. Either holds torchvision's key names (`layer1.0.conv1.weight`); the classifier's keys are
left out, and a file that fits no part of the backbone is refused, naming the keys it expected.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, MissingDataError
from .backbones import get_backbone, model_name

HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")   # torch.hub's rule: resnet18-f37072fd.pth
WEIGHTS_FOLDER = "weights"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Published:
    """Published weights and the preprocessing they were trained with (torchvision's metadata)."""

    url: str
    categories: tuple          # the classes of the full model's output (ImageNet's 1,000 names)
    crop_size: int = 224       # the network's input side
    resize_size: int = 256     # a photo's shorter side is resized to this, then centre-cropped
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bilinear"
    min_size: int = 32         # the smallest input side the architecture runs on
    folder: str = WEIGHTS_FOLDER   # under $KONBU_HOME: timm's Hub files all share one name, each gets its own

    @property
    def file(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256(self) -> str | None:
        found = HASH_IN_NAME.search(self.file)
        return found.group(1) if found else None


def published(arch: str) -> Published:
    """The published weights of backbone `arch`: a Published given at registration, or torchvision's."""
    entry = get_backbone(arch)
    if isinstance(entry.weights, Published):
        return entry.weights
    if entry.weights is None:
        raise ConfigError(f"backbone {arch} has no published weights; pass --weights FILE")
    from torchvision.models import get_weight

    weights = get_weight(entry.weights)
    transforms = weights.transforms()
    mean, std = entry.mean_std or (tuple(transforms.mean), tuple(transforms.std))
    return Published(weights.url, tuple(weights.meta["categories"]), int(transforms.crop_size[0]),
                     int(transforms.resize_size[0]), tuple(mean), tuple(std), transforms.interpolation.value,
                     max(int(min(weights.meta.get("min_size", (32, 32)))), 32))


def published_file(arch: str) -> Path:
    """The published weights file on disk: from the cache, else downloaded and checked."""
    from ..data.download import Remote, RemoteFile, fetch

    info = published(arch)
    base = info.url[:-len(info.file)]
    remote = Remote(info.folder, (base,), (RemoteFile(info.file, sha256=info.sha256),))
    advice = f"or pass --weights FILE for a copy of {info.file} kept elsewhere"
    return fetch(remote, dataset=f"{model_name(arch)} weights", advice=advice)[info.file]


def read_weights_file(path) -> dict:
    """{name: tensor} from a .safetensors file, or a .pth/.pt state dict loaded with weights_only=True."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"--weights {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(path)
        except Exception as error:   # safetensors raises its own SafetensorError and OSError
            raise ConfigError(f"--weights {path}: not a readable safetensors file ({error})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:   # pickle's, zipfile's and torch's own errors: the file is not a plain state dict
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"--weights {path}: not a PyTorch state dict konbu can load without running code "
                          f"({reason[:200]}); save one with torch.save(model.state_dict(), path) or as "
                          ".safetensors") from None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        found = type(state).__name__ if not isinstance(state, dict) else "a mapping holding " + ", ".join(
            sorted({type(v).__name__ for v in state.values()}) or ["nothing"])
        raise ConfigError(f"--weights {path}: expected a state dict (names -> tensors), found {found}; "
                          "save one with torch.save(model.state_dict(), path)")
    return state


def backbone_state(arch: str, weights_file=None) -> dict:
    """The backbone's weights under torchvision's key names, without the classifier's keys."""
    entry = get_backbone(arch)
    path = Path(weights_file) if weights_file else published_file(arch)
    state = read_weights_file(path)
    trunk = {key: value for key, value in state.items() if key.split(".", 1)[0] in entry.trunk}
    if not trunk:
        shown = ", ".join(list(state)[:3])
        raise ConfigError(f"{path}: no weights of a {arch} backbone in it (its keys begin {shown}; expected "
                          f"{entry.source}'s names, such as {entry.trunk[0]}.…)")
    return trunk


def check_fits(arch: str, state: dict, hint: str):
    """Refuse `state` (torchvision key names) unless it holds every weight of an `arch` backbone, each
    of its shape. Checked against the backbone built on the meta device: no memory, no init time."""
    import torch

    from .backbones import build_backbone

    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in build_backbone(arch).state_dict().items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong = [key for key in expected if key in state and tuple(state[key].shape) != expected[key]]
    if missing or unexpected or wrong:
        what = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected else
                f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, not {expected[wrong[0]]}")
        raise ConfigError(f"{hint}: its weights do not fit a {arch} backbone ({what}; {len(missing)} missing, "
                          f"{len(unexpected)} unexpected, {len(wrong)} of another shape)")
