"""`kmnist` and `k49`: cursive hiragana from classical Japanese books (CODH, ROIS-DS), 28x28.

    load_dataset("kmnist", "train")   # 10 classes お き す つ な は ま や れ を, 60,000 / 10,000
    load_dataset("k49", "test")       # 49 classes, 232,365 / 38,547, imbalanced

Files: the authors' `.npz` arrays (`np.savez`, key `arr_0`) and class maps from
http://codh.rois.ac.jp/kmnist/dataset/ (md5s and sizes as published in the md5sums of the
datalad mirror datasets-mila/datasets--kmnist). A folder holding KMNIST's IDX files instead
(`train-images-idx3-ubyte.gz` ..., what torchvision's KMNIST downloads) loads as well.

K49 is imbalanced (from 392 to 6,000 train images per class): its authors report *balanced*
accuracy, recorded here as `headline_metric`.
"""

import numpy as np
import torch

from ..errors import DatasetFormatError
from ._registry import register_dataset
from .cache import cached
from .dataset import DatasetInfo, check_pair
from .download import Remote, RemoteFile, data_folder, fetch, is_present, local_file, one_line
from .kana import romaji
from .mnist import idx_remote_stub, load_idx_dataset, torchvision_remote

CODH = "http://codh.rois.ac.jp/kmnist/dataset/"
CITATION = ("T. Clanuwat, M. Bober-Irizar, A. Kitamoto, A. Lamb, K. Yamamoto, D. Ha, Deep Learning for "
            "Classical Japanese Literature, NeurIPS ML4CD workshop, arXiv:1812.01718, 2018.")
LICENSE = "CC BY-SA 4.0 (Kuzushiji-MNIST by ROIS-DS CODH, based on the PMJT character data of NIJL)"

KMNIST = Remote("kmnist", (CODH + "kmnist/",), (
    RemoteFile("kmnist-train-imgs.npz", "a183fbc01ed9a345513b145673d3d0bb", 18384171),
    RemoteFile("kmnist-train-labels.npz", "b0e1d240e8afec72b50437fc3bc5908a", 29700),
    RemoteFile("kmnist-test-imgs.npz", "dace6de62ca8b90843cc45366337d02e", 3079479),
    RemoteFile("kmnist-test-labels.npz", "3ae489a79983d0fe386152684e3b5412", 5304),
))
K49 = Remote("k49", (CODH + "k49/",), (
    RemoteFile("k49-train-imgs.npz", "7ac088b20481cf51dcd01ceaab89d821", 66117696),
    RemoteFile("k49-train-labels.npz", "44a8e1b893f81e63ff38d73cad420f7a", 164485),
    RemoteFile("k49-test-imgs.npz", "d352e201d846ce6b94f42c990966f374", 10971201),
    RemoteFile("k49-test-labels.npz", "4da6f7a62e67a832d5eb1bd85c5ee448", 27450),
    RemoteFile("k49_classmap.csv", "f7d0d0391f68bdf0fe4cf160ceb85753", 697),
))

KMNIST_CLASSES = tuple("おきすつなはまやれを")
K49_CLASSES = tuple("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわゐゑをんゝ")


def read_npz(path, ndim: int) -> np.ndarray:
    """The `arr_0` array of an `np.savez` file, checked to be an integer array with `ndim` dimensions."""
    try:
        with np.load(path, allow_pickle=False) as archive:   # no pickle: an .npz of object arrays is refused
            names = archive.files
            array = archive["arr_0"] if "arr_0" in names else None
    except Exception as error:   # a damaged archive fails in zipfile, zlib or numpy's header parser, each its own way
        raise DatasetFormatError(f"{path}: not a readable .npz archive ({type(error).__name__}: {one_line(error)}); "
                                 "the file is truncated or corrupt: delete it and download it again") from None
    if array is None:
        raise DatasetFormatError(f"{path}: expected an array named arr_0 (np.savez), found {names}")
    if array.ndim != ndim or not np.issubdtype(array.dtype, np.integer):
        raise DatasetFormatError(f"{path}: expected an integer array with {ndim} dimensions, "
                                 f"found {array.dtype} {array.shape}")
    return array


def read_classmap(path) -> tuple:
    """Class names from a CODH class map: `index,codepoint,char` lines, index 0, 1, 2 ... in order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{path}: not a readable UTF-8 class map ({type(error).__name__}: {one_line(error)}); "
                                 "delete it and download it again") from None
    if not lines or lines[0].strip() != "index,codepoint,char":
        raise DatasetFormatError(f"{path}: expected the header 'index,codepoint,char' on line 1, "
                                 f"found {lines[0][:40] if lines else 'an empty file'!r}")
    names = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        if len(fields) != 3 or fields[0] != str(len(names)) or len(fields[2]) != 1:
            raise DatasetFormatError(f"{path}: line {number} should be '{len(names)},U+XXXX,<one character>', "
                                     f"found {line!r}")
        names.append(fields[2])
    if len(names) < 2:
        raise DatasetFormatError(f"{path}: names {len(names)} class(es); a class map lists at least two "
                                 "(k49's lists 49)")
    return tuple(names)


def npz_splits(paths: dict, prefix: str, num_classes: int) -> dict:
    splits = {}
    for split in ("train", "test"):
        images_path, labels_path = paths[f"{prefix}-{split}-imgs.npz"], paths[f"{prefix}-{split}-labels.npz"]
        images, labels = read_npz(images_path, 3), read_npz(labels_path, 1)
        check_pair(images, labels, f"{images_path}, {labels_path}", num_classes)
        splits[split] = (torch.from_numpy(np.ascontiguousarray(images[:, None])),
                         torch.from_numpy(labels.astype(np.int64)))
    return splits


def _kmnist_available(data_dir=None) -> bool:
    return is_present(KMNIST, data_dir) or is_present(idx_remote_stub("kmnist"), data_dir)


@register_dataset(DatasetInfo(
    name="kmnist",
    classes=KMNIST_CLASSES,
    aliases=tuple(romaji(name) for name in KMNIST_CLASSES),
    image_shape=(1, 28, 28),
    split_sizes={"train": 60000, "test": 10000},
    source=CODH + "kmnist/ (Kuzushiji-MNIST .npz), or its IDX files in --data-dir",
    citation=CITATION,
    license=LICENSE,
    description="Kuzushiji-MNIST: 10 cursive hiragana, a harder drop-in for MNIST",
), available=_kmnist_available)
def _kmnist(data_dir=None):
    folder = data_folder(KMNIST, data_dir)
    if not is_present(KMNIST, data_dir) and all(local_file(folder, f.name) for f in idx_remote_stub("kmnist").files):
        return load_idx_dataset("kmnist", torchvision_remote("kmnist", "KMNIST"), data_dir)
    paths = fetch(KMNIST, data_dir, dataset="kmnist")
    return cached("kmnist", {}, list(paths.values()), lambda: npz_splits(paths, "kmnist", len(KMNIST_CLASSES)))


@register_dataset(DatasetInfo(
    name="k49",
    classes=K49_CLASSES,
    aliases=tuple(romaji(name) for name in K49_CLASSES),
    image_shape=(1, 28, 28),
    split_sizes={"train": 232365, "test": 38547},
    source=CODH + "k49/ (Kuzushiji-49 .npz and k49_classmap.csv)",
    citation=CITATION,
    license=LICENSE,
    description="Kuzushiji-49: 48 hiragana and one iteration mark, imbalanced; report balanced accuracy",
    headline_metric="balanced_accuracy",
), available=lambda data_dir=None: is_present(K49, data_dir))
def _k49(data_dir=None):
    paths = fetch(K49, data_dir, dataset="k49")

    def parse():
        classes = read_classmap(paths["k49_classmap.csv"])
        return {**npz_splits(paths, "k49", len(classes)), "classes": classes}
    return cached("k49", {}, list(paths.values()), parse)
