"""The `Dataset`: one split of an image-classification dataset, held as tensors in memory.

Images are uint8 `[N, C, H, W]` and labels int64 `[N]`: it is faster to keep and slice uint8 data
and convert per batch on the device than to hold a float copy (4x the memory, 4x the copy).
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError, DatasetFormatError


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset declares about itself: shown by `konbu datasets`, saved into each run."""

    name: str
    classes: tuple            # class names, index = label
    image_shape: tuple        # (C, H, W)
    split_sizes: dict         # {"train": n, "test": n}
    source: str               # where the data comes from (tutorial / paper / URL)
    citation: str = ""
    description: str = ""
    ink: str = ""             # "mnist": white ink on black, digit fitted in a box and centred by
                              # mass; predict() normalises a user's photo the same way
    ink_box: int = 0          # with ink="mnist": side of the box the ink is fitted into (20 of 28)
    license: str = ""         # the data's terms of use, as its authors state them
    headline_metric: str = "accuracy"   # what papers report; "balanced_accuracy" for imbalanced sets (k49)
    aliases: tuple = ()       # per class, a Latin-script name (romaji of kana) accepted wherever a name is


@dataclass
class Dataset:
    """One split: `images` uint8 [N, C, H, W], `labels` int64 [N], plus the dataset's info."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    split: str
    mean: tuple = field(default=())   # per channel, of the *train* split, in [0, 1]
    std: tuple = field(default=())

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise TypeError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise TypeError(f"labels must be int64 [N], got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self):
        return self.images.shape[0]

    @property
    def name(self):
        return self.info.name

    @property
    def classes(self):
        return self.info.classes

    @property
    def num_classes(self):
        return len(self.info.classes)

    @property
    def image_shape(self):
        return tuple(self.images.shape[1:])

    def subset(self, index, split=None) -> "Dataset":
        index = torch.as_tensor(index, dtype=torch.long)
        return Dataset(self.images[index], self.labels[index], self.info, split or self.split, self.mean, self.std)


def check_pair(images: np.ndarray, labels: np.ndarray, source: str, num_classes: int | None = None):
    """Refuse (DatasetFormatError naming `source`) what a parser read unless it is uint8 images
    [N, H, W] and N integer labels, N, H and W at least 1, labels in 0..num_classes-1 when given.

    A file can be well-formed and still hold no images, or labels no class has: caught here, they
    would surface much later as a NaN mean or an index error deep inside training."""
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or images.dtype != np.uint8 \
            or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(f"{source}: expected uint8 images [N, H, W] and integer labels [N] of the same N, "
                                 f"found {images.dtype} {images.shape} and {labels.dtype} {labels.shape}")
    if min(images.shape) < 1:
        raise DatasetFormatError(f"{source}: holds no images (shape {images.shape}); expected at least one image "
                                 "of at least 1x1 pixels")
    if num_classes is not None and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise DatasetFormatError(f"{source}: labels must be in 0..{num_classes - 1}, found "
                                 f"{int(labels.min())}..{int(labels.max())}")


def channel_stats(images: torch.Tensor):
    """Per-channel mean and std of uint8 images, in [0, 1] units (what Normalize expects).

    From a 256-bin histogram per channel: exact, and no float copy of the dataset (a float64
    copy of MNIST's train split would be 376 MB)."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).to(torch.float64)
        n = counts.sum()
        mean = (counts * values).sum() / n
        variance = (counts * (values - mean) ** 2).sum() / (n - 1)   # unbiased, like torch.std
        means.append(round(mean.item(), 6))
        stds.append(round(variance.sqrt().item(), 6))
    return tuple(means), tuple(stds)


def stratified_split(labels, fraction: float, seed: int):
    """Indices (keep, held_out): `fraction` of each class held out, chosen by a seeded shuffle.

    numpy's legacy `RandomState` is used on purpose: its stream is frozen (NEP 19), so a split made
    today is the same split on any later numpy, which torch.randperm does not promise.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"a split fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_held = int(round(len(idx) * fraction))
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    keep, held = np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))
    return torch.from_numpy(keep), torch.from_numpy(held)


def validation_split(train: Dataset, fraction: float, seed: int):
    """(train, validation) from a train split; the test split is never touched."""
    keep, held = stratified_split(train.labels.numpy(), fraction, seed)
    return train.subset(keep, "train"), train.subset(held, "validation")


def select_classes(spec: str, classes, aliases=()) -> list:
    """Indices of the classes `spec` names: "0,1", "お,き", their romaji "o,ki", or a list of names.

    Order follows `spec`: the first name becomes label 0 of the selected dataset."""
    lookup = {str(name): index for index, name in enumerate(classes)}
    lookup.update({str(alias): index for index, alias in enumerate(aliases) if alias not in lookup})
    chosen = []
    parts = spec.split(",") if isinstance(spec, str) else [str(part) for part in spec]
    for name in (part.strip() for part in parts):
        if name not in lookup:
            raise ConfigError(f"--classes names {name!r}, which is not a class of this dataset; expected names "
                              f"from: {', '.join(map(str, classes))}" + (f" (or {', '.join(aliases)})" if aliases else ""))
        if lookup[name] in chosen:
            raise ConfigError(f"--classes names {name!r} twice")
        chosen.append(lookup[name])
    if len(chosen) < 2:
        raise ConfigError(f"--classes must name at least two classes to classify, got {spec!r}")
    return chosen


def subset_classes(images: torch.Tensor, labels: torch.Tensor, chosen: list):
    """Keep only the samples of the `chosen` class indices, relabelled 0..len(chosen)-1."""
    remap = torch.full((int(labels.max()) + 1 if len(labels) else 1,), -1, dtype=torch.int64)
    for new, old in enumerate(chosen):
        if old < len(remap):
            remap[old] = new
    new_labels = remap[labels] if len(labels) else labels
    keep = new_labels >= 0
    return images[keep], new_labels[keep]
