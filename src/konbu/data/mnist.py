"""`mnist` and `fashion-mnist`: 60,000 train / 10,000 test 28x28 images in four IDX files.

    load_dataset("mnist", "train")                          # downloads once to ~/.cache/konbu/mnist
    load_dataset("mnist", "train", data_dir="data/mnist")   # a folder of the four files

The files are those torchvision downloads, at torchvision's mirrors and md5s
(`torchvision.datasets.MNIST.mirrors/resources`, `FashionMNIST`): `train-images-idx3-ubyte.gz`,
`train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`, gzipped
or not. A local copy whose md5 differs (a re-pack) loads with a warning; see konbu.data.download.
"""

import numpy as np
import torch

from ._registry import register_dataset
from .cache import cached
from .dataset import DatasetInfo, check_pair
from .download import Remote, RemoteFile, fetch, is_present
from .idx import read_idx

IDX_FILES = {   # split -> (images, labels), the names every MNIST-format dataset uses
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_CITATION = "Y. LeCun, C. Cortes, C. J. C. Burges, The MNIST database of handwritten digits, 1998."


# Copied from torchvision.datasets.{MNIST, FashionMNIST, KMNIST}.mirrors/.resources, so that a load
# from the cache needs no torchvision import (over a second); tests/data pin them to torchvision's.
TORCHVISION_IDX = {
    "MNIST": (("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"), (
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"))),
    "FashionMNIST": (("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",), (
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"))),
    "KMNIST": (("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",), (
        ("train-images-idx3-ubyte.gz", "bdb82020997e1d708af4cf47b453dcf7"),
        ("train-labels-idx1-ubyte.gz", "e144d726b3acfaa3e44228e80efcd344"),
        ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
        ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"))),
}


def torchvision_remote(folder: str, dataset_class: str) -> Remote:
    """A Remote from a torchvision MNIST-style class's `mirrors` and `resources` (name, md5)."""
    mirrors, resources = TORCHVISION_IDX[dataset_class]
    return Remote(folder, mirrors, tuple(RemoteFile(name, md5) for name, md5 in resources))


def idx_pair(images_path, labels_path, num_classes: int | None = None):
    """(uint8 [N, 1, H, W], int64 [N]) from an IDX images file and its labels file; labels checked
    to be in 0..num_classes-1 when it is given."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    check_pair(images, labels, f"{images_path}, {labels_path}", num_classes)
    return torch.from_numpy(np.ascontiguousarray(images[:, None])), torch.from_numpy(labels.astype(np.int64))


def load_idx_dataset(name: str, remote: Remote, data_dir, num_classes: int = 10, files=IDX_FILES) -> dict:
    """Both splits of an MNIST-format dataset: find or download its files, parse once, then cache."""
    paths = fetch(remote, data_dir, dataset=name)
    sources = [paths[file] for pair in files.values() for file in pair]
    return cached(name, {}, sources, lambda: {split: idx_pair(paths[images], paths[labels], num_classes)
                                              for split, (images, labels) in files.items()})


def idx_remote_stub(folder: str) -> Remote:
    """The file names alone (no URLs): enough to say whether a folder holds the data."""
    return Remote(folder, (), tuple(RemoteFile(name) for pair in IDX_FILES.values() for name in pair))


@register_dataset(DatasetInfo(
    name="mnist",
    classes=tuple(str(d) for d in range(10)),
    image_shape=(1, 28, 28),
    split_sizes={"train": 60000, "test": 10000},
    source="http://yann.lecun.com/exdb/mnist/ (torchvision's mirrors), or the four IDX files in --data-dir",
    citation=MNIST_CITATION,
    license="none stated on the authors' page; derived from NIST Special Databases 1 and 3",
    description="The full MNIST: 60,000 train, 10,000 test",
    ink="mnist", ink_box=20,
), available=lambda data_dir=None: is_present(idx_remote_stub("mnist"), data_dir))
def _mnist(data_dir=None):
    return load_idx_dataset("mnist", torchvision_remote("mnist", "MNIST"), data_dir)


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


@register_dataset(DatasetInfo(
    name="fashion-mnist",
    classes=FASHION_CLASSES,
    image_shape=(1, 28, 28),
    split_sizes={"train": 60000, "test": 10000},
    source="https://github.com/zalandoresearch/fashion-mnist (torchvision's mirror)",
    citation="H. Xiao, K. Rasul, R. Vollgraf, Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine "
             "Learning Algorithms, arXiv:1708.07747, 2017.",
    license="MIT",
    description="Zalando's 28x28 grey clothing photos, a drop-in for MNIST",
), available=lambda data_dir=None: is_present(idx_remote_stub("fashion-mnist"), data_dir))
def _fashion_mnist(data_dir=None):
    return load_idx_dataset("fashion-mnist", torchvision_remote("fashion-mnist", "FashionMNIST"), data_dir)
