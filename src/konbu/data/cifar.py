"""`cifar10`, `cifar100` and `cifar100-coarse`: 32x32 colour photos, 50,000 train / 10,000 test.

    load_dataset("cifar10", "train")           # 10 classes
    load_dataset("cifar100", "train")          # 100 fine classes
    load_dataset("cifar100-coarse", "train")   # the same images, 20 superclasses

CIFAR-100's two label sets are two names rather than an option: a run records its dataset by
name, so a model trained on the coarse labels can never be evaluated against the fine ones.

Files: the "python version" archives at torchvision's `CIFAR10.url`/`CIFAR100.url` (md5
`tgz_md5`), unpacked to `cifar-10-batches-py/` or `cifar-100-python/`. `--data-dir` may name the
folder holding that sub-folder, or the sub-folder itself; each batch file's md5 is checked against
torchvision's `train_list`/`test_list` (warn, then load, on a mismatch).

The batches are Python pickles. Unpickling can run arbitrary code, so they are read with a
restricted unpickler that only builds what those files hold: dicts, lists, str/bytes/int and
numpy uint8 arrays (numpy's `_reconstruct`, `ndarray`, `dtype`). Anything else is refused with a
DatasetFormatError.
"""

import functools
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetFormatError, MissingDataError
from ._registry import register_dataset
from .cache import cached
from .dataset import DatasetInfo
from .download import (DownloadError, Remote, RemoteFile, check_local, data_folder, download, extract_tar,
                       missing_message, one_line)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_FINE = tuple("""apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup
dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear
pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark
shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone
television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split())
CIFAR100_COARSE = tuple("""aquatic_mammals fish flowers food_containers fruit_and_vegetables
household_electrical_devices household_furniture insects large_carnivores large_man-made_outdoor_things
large_natural_outdoor_scenes large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people
reptiles small_mammals trees vehicles_1 vehicles_2""".split())
CITATION = "A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images, tech. report, U. Toronto, 2009."
LICENSE = "no license stated; free to use, cite Krizhevsky 2009 (https://www.cs.toronto.edu/~kriz/cifar.html)"


# ---------------------------------------------------------------------------------------------------
# the restricted unpickler


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct   # numpy >= 2
    except ImportError:   # pragma: no cover  (numpy 1.x)
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _allowed() -> dict:
    import codecs
    reconstruct = _numpy_reconstruct()
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,   # written by numpy 1.x (the real files)
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,  # written by numpy 2.x
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,   # how Python 3 pickles bytes at protocol 2: str -> bytes
        ("__builtin__", "bytes"): bytes,        # ... and an empty bytes (a zero-size array's data)
        ("builtins", "bytes"): bytes,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """Builds plain containers and numpy arrays; refuses every other global (no code can run)."""

    def __init__(self, file, path):
        super().__init__(file, encoding="latin1")   # the real files are Python 2 pickles
        self.path = path

    def find_class(self, module, name):
        allowed = _allowed()
        if (module, name) not in allowed:
            raise DatasetFormatError(
                f"{self.path}: the pickle asks for {module}.{name}, which a CIFAR batch never holds (expected "
                "only dicts, lists, strings and numpy arrays); refusing to load it. Download the file again.")
        return allowed[(module, name)]


def read_batch(path: Path) -> dict:
    """One CIFAR batch or meta file as a dict with str keys."""
    try:
        with open(path, "rb") as f:
            batch = RestrictedUnpickler(io.BytesIO(f.read()), path).load()
    except DatasetFormatError:
        raise
    except Exception as error:   # truncated or corrupt pickles fail with many exception types
        raise DatasetFormatError(f"{path}: not a readable CIFAR pickle ({type(error).__name__}: {one_line(error)}); "
                                 "the file is truncated or corrupt: delete it and download it again") from None
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{path}: expected a pickled dict, found a {type(batch).__name__}")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}


def batch_arrays(path: Path, label_key: str, num_classes: int):
    """(uint8 [N, 3, 32, 32], int64 [N]) from one batch file."""
    batch = read_batch(path)
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{path}: expected 'data' to be a uint8 array [N, 3072], found {found}")
    if not isinstance(labels, list) or len(labels) != len(data):
        raise DatasetFormatError(f"{path}: expected '{label_key}' to be a list of {len(data)} labels, "
                                 f"found {type(labels).__name__} of length {len(labels) if hasattr(labels, '__len__') else '?'}")
    # each element checked in Python: np.asarray would make ragged or nested lists a ValueError or a 2-D array
    if not all(isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < num_classes
               for label in labels):
        raise DatasetFormatError(f"{path}: '{label_key}' must be integers in 0..{num_classes - 1}")
    if not len(data):
        raise DatasetFormatError(f"{path}: holds no images; expected a batch of at least one")
    labels = np.asarray(labels, dtype=np.int64)
    # rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major: exactly [N, 3, 32, 32]
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


# ---------------------------------------------------------------------------------------------------
# finding or downloading the files


# torchvision.datasets.CIFAR10/CIFAR100's url, filename, tgz_md5, train_list, test_list and meta md5
# (copied: a cached load needs no torchvision import; tests/data pin them to torchvision's)
TORCHVISION_CIFAR = {
    "CIFAR10": {"url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "filename": "cifar-10-python.tar.gz", "tgz_md5": "c58f30108f718f92721af3b95e74349a",
                "md5s": {"data_batch_1": "c99cafc152244af753f735de768cd75f",
                         "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                         "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                         "data_batch_4": "634d18415352ddfa80567beed471001a",
                         "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                         "test_batch": "40351d587109b95175f43aff81a1287e",
                         "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}},
    "CIFAR100": {"url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 "filename": "cifar-100-python.tar.gz", "tgz_md5": "eb9058c3a382ffc7106e4002c42a8d85",
                 "md5s": {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                          "meta": "7973b15100ade9c7d40fb424638fde48"}},
}


_LAYOUT = {   # dataset -> (torchvision class, sub-folder, train files, test files, meta file)
    "cifar10": ("CIFAR10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta"),
    "cifar100": ("CIFAR100", "cifar-100-python", ["train"], ["test"], "meta"),
}


def _batch_folder(family: str, data_dir) -> Path:
    _, sub, train, test, meta = _LAYOUT[family]
    folder = data_folder(Remote(family, (), ()), data_dir)
    if all((folder / name).is_file() for name in train + test):
        return folder   # --data-dir names the batches folder itself
    return folder / sub


def _available(family: str, data_dir=None) -> bool:
    _, _, train, test, _ = _LAYOUT[family]
    return all((_batch_folder(family, data_dir) / name).is_file() for name in train + test)


def cifar_files(family: str, data_dir=None) -> dict:
    """{file name: Path} of the batch files, downloading and unpacking the archive when missing."""
    class_name, sub, train, test, meta = _LAYOUT[family]
    batches = _batch_folder(family, data_dir)
    if not _available(family, data_dir):
        source = TORCHVISION_CIFAR[class_name]
        remote = Remote(family, (source["url"].rsplit("/", 1)[0] + "/",),
                        (RemoteFile(source["filename"], source["tgz_md5"]),))
        folder = batches.parent
        archive = folder / source["filename"]
        if not archive.is_file():
            errors = []
            for url in remote.urls(remote.files[0]):
                try:
                    download(url, archive, remote.files[0])
                    break
                except DownloadError as error:
                    errors.append(f"{url}: {error}")
            else:
                raise MissingDataError(missing_message(family, folder, {remote.files[0]: errors}) +
                                       f" Unpacked, it gives {sub}/ with {', '.join(train + test + [meta])}.")
        extract_tar(archive, folder, sub)
    md5s = TORCHVISION_CIFAR[class_name]["md5s"]
    paths = {}
    for name in train + test + [meta]:
        path = batches / name
        if path.is_file():
            check_local(path, RemoteFile(name, md5s.get(name)))
            paths[name] = path
    return paths


def load_cifar(family: str, label_key: str, classes: tuple, data_dir=None) -> dict:
    _, _, train, test, meta = _LAYOUT[family]
    paths = cifar_files(family, data_dir)
    name = family if label_key != "coarse_labels" else "cifar100-coarse"

    def parse():
        names = classes
        if meta in paths:   # the files' own class names, when the meta file is there
            meta_key = {"labels": "label_names", "fine_labels": "fine_label_names",
                        "coarse_labels": "coarse_label_names"}[label_key]
            found = read_batch(paths[meta]).get(meta_key)
            if isinstance(found, list) and len(found) == len(classes) and all(isinstance(n, str) for n in found):
                names = tuple(found)
        splits = {}
        for split, files in (("train", train), ("test", test)):
            parts = [batch_arrays(paths[file], label_key, len(classes)) for file in files]
            splits[split] = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        return {**splits, "classes": names}
    return cached(name, {}, list(paths.values()), parse)


def _info(name, classes, description):
    return DatasetInfo(name=name, classes=classes, image_shape=(3, 32, 32),
                       split_sizes={"train": 50000, "test": 10000},
                       source="https://www.cs.toronto.edu/~kriz/cifar.html (python version)",
                       citation=CITATION, license=LICENSE, description=description)


register_dataset(_info("cifar10", CIFAR10_CLASSES, "CIFAR-10: 60,000 32x32 colour photos, 10 classes"),
                 available=functools.partial(_available, "cifar10"))(
    lambda data_dir=None: load_cifar("cifar10", "labels", CIFAR10_CLASSES, data_dir))
register_dataset(_info("cifar100", CIFAR100_FINE, "CIFAR-100, fine labels: 100 classes of 600 photos"),
                 available=functools.partial(_available, "cifar100"))(
    lambda data_dir=None: load_cifar("cifar100", "fine_labels", CIFAR100_FINE, data_dir))
register_dataset(_info("cifar100-coarse", CIFAR100_COARSE, "CIFAR-100, coarse labels: its 20 superclasses"),
                 available=functools.partial(_available, "cifar100"))(
    lambda data_dir=None: load_cifar("cifar100", "coarse_labels", CIFAR100_COARSE, data_dir))
