"""`mnist`: the full MNIST (60,000 train / 10,000 test) from a folder of its four IDX files.

`--data-dir DIR` names the folder (gzipped or not: `train-images-idx3-ubyte[.gz]` ...). Without it,
konbu looks in `$KONBU_HOME/mnist` (default `~/.cache/konbu/mnist`).
"""

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetFormatError, MissingDataError
from ._registry import register_dataset
from .dataset import DatasetInfo
from .idx import read_idx

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def konbu_home() -> Path:
    return Path(os.environ.get("KONBU_HOME", Path.home() / ".cache" / "konbu"))


def _folder(name: str, data_dir) -> Path:
    return Path(data_dir) if data_dir else konbu_home() / name


def _find(folder: Path, stem: str):
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing(folder: Path):
    return [stem for pair in MNIST_FILES.values() for stem in pair if _find(folder, stem) is None]


def _available(data_dir=None) -> bool:
    return not _missing(_folder("mnist", data_dir))


@register_dataset(DatasetInfo(
    name="mnist",
    classes=tuple(str(d) for d in range(10)),
    image_shape=(1, 28, 28),
    split_sizes={"train": 60000, "test": 10000},
    source="IDX files in a local folder (--data-dir)",
    citation="Y. LeCun, C. Cortes, C. J. C. Burges, The MNIST database of handwritten digits, 1998.",
    description="The full MNIST: 60,000 train, 10,000 test",
    ink="mnist", ink_box=20,
), available=_available)
@lru_cache(maxsize=2)
def _mnist(data_dir=None):
    folder = _folder("mnist", data_dir)
    missing = _missing(folder)
    if missing:
        raise MissingDataError(
            f"MNIST files not found in {folder}: missing {', '.join(missing)} (gzipped or not). "
            "Put the four IDX files there or pass --data-dir DIR pointing at a folder that has them.")
    splits = {}
    for split, (images_stem, labels_stem) in MNIST_FILES.items():
        images_path, labels_path = _find(folder, images_stem), _find(folder, labels_stem)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetFormatError(
                f"{images_path}, {labels_path}: expected images [N, H, W] and labels [N] of the same N, "
                f"found {images.shape} and {labels.shape}")
        splits[split] = (torch.from_numpy(np.ascontiguousarray(images[:, None])),
                         torch.from_numpy(labels.astype(np.int64)))
    return splits
