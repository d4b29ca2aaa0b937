"""`emnist-<split>`: EMNIST's six splits (balanced, byclass, bymerge, digits, letters, mnist), 28x28.

    load_dataset("emnist-balanced", "train")   # 47 classes, 112,800 / 18,800
    load_dataset("emnist-letters", "test", data_dir="data/emnist")

Files: `emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]` in the folder (or its
`gzip/` sub-folder, as NIST's archive unpacks). When missing, NIST's `gzip.zip` (torchvision's
`EMNIST.url` and `EMNIST.md5`, 562 MB) is downloaded once and the split's four files taken out.

Two fixes to the raw files: NIST stored every image transposed (rows as columns), so images are
transposed back to read upright like MNIST; and `letters` labels run 1..26 (0 is unused), so
they are shifted to 0..25 and the 26 classes are the letters, upper and lower case merged.
"""

import os
import shutil
import string
import zipfile
import zlib
from pathlib import Path

import torch

from .. import atomic
from ..errors import DatasetFormatError, MissingDataError
from ._registry import register_dataset
from .cache import cached
from .dataset import DatasetInfo
from .download import Remote, RemoteFile, data_folder, fetch, local_file, one_line
from .mnist import idx_pair

ARCHIVE = "gzip.zip"
_MERGED = set("cijklmopsuvwxyz")   # lowercase letters written like their capitals: merged in bymerge/balanced
_BYCLASS = tuple(string.digits + string.ascii_uppercase + string.ascii_lowercase)
SPLITS = {   # split -> (classes, train size, test size), as in the EMNIST paper and torchvision
    "balanced": (tuple(c for c in _BYCLASS if c not in _MERGED), 112800, 18800),
    "byclass": (_BYCLASS, 697932, 116323),
    "bymerge": (tuple(c for c in _BYCLASS if c not in _MERGED), 697932, 116323),
    "digits": (tuple(string.digits), 240000, 40000),
    "letters": (tuple(string.ascii_lowercase), 124800, 20800),
    "mnist": (tuple(string.digits), 60000, 10000),
}


def file_names(split: str) -> dict:
    return {part: (f"emnist-{split}-{part}-images-idx3-ubyte.gz", f"emnist-{split}-{part}-labels-idx1-ubyte.gz")
            for part in ("train", "test")}


def _find(folder: Path, name: str):
    return local_file(folder, name) or local_file(folder / "gzip", name)


# torchvision.datasets.EMNIST.url and .md5 (copied: a cached load needs no torchvision import;
# tests/data pin them to torchvision's)
ARCHIVE_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
ARCHIVE_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"


def archive_remote() -> Remote:
    return Remote("emnist", (ARCHIVE_URL.rsplit("/", 1)[0] + "/",), (RemoteFile(ARCHIVE, ARCHIVE_MD5),))


def _extract(archive: Path, folder: Path, names) -> None:
    """Take `names` out of NIST's zip (members `gzip/<name>`) into `folder`, each atomically: a
    failure half-way leaves the files taken out before it, and no partial one."""
    tmp = None
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in names:
                member = f"gzip/{name}"
                tmp = folder / f".{name}.extracting"
                with zf.open(member) as source, open(tmp, "wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
                os.chmod(tmp, atomic.FILE_MODE)
                os.replace(tmp, folder / name)
    except KeyError as error:
        raise DatasetFormatError(f"{archive}: expected a member {error} in NIST's EMNIST archive; "
                                 "delete the archive and download it again") from None
    # zlib.error: a damaged deflate stream; NotImplementedError and RuntimeError: zipfile's answer to
    # an unknown compression method or an encrypted member, which NIST's archive has neither of
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError, RuntimeError) as error:
        raise DatasetFormatError(f"{archive}: the zip archive is truncated or corrupt ({one_line(error)}); "
                                 "delete it and download it again") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)   # gone already after a successful rename


def load_emnist(split: str, data_dir=None) -> dict:
    names = file_names(split)
    folder = data_folder(Remote("emnist", (), ()), data_dir)
    wanted = [name for pair in names.values() for name in pair]
    if not all(_find(folder, name) for name in wanted):
        remote = archive_remote()
        try:
            archive = fetch(remote, data_dir, dataset=f"emnist-{split}")[ARCHIVE]
        except MissingDataError as error:
            raise MissingDataError(f"emnist-{split}: missing {', '.join(wanted)} in {folder}. {error}") from None
        _extract(archive, folder, [name for name in wanted if not _find(folder, name)])
    paths = {name: _find(folder, name) for name in wanted}

    def parse():
        classes = SPLITS[split][0]
        splits = {}
        for part, (images_name, labels_name) in names.items():
            images, labels = idx_pair(paths[images_name], paths[labels_name])
            images = images.transpose(2, 3).contiguous()   # NIST stored columns as rows
            if split == "letters":
                labels = labels - 1                         # 1..26 -> 0..25
            if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(classes):
                raise DatasetFormatError(f"{paths[labels_name]}: labels must be in "
                                         f"{'1..26' if split == 'letters' else f'0..{len(classes) - 1}'} for "
                                         f"emnist-{split}, found {int(labels.min())}..{int(labels.max())}")
            splits[part] = (images, labels.to(torch.int64))
        return splits
    return cached(f"emnist-{split}", {}, list(paths.values()), parse)


def _register(split: str):
    classes, train_size, test_size = SPLITS[split]
    names = [name for pair in file_names(split).values() for name in pair]

    def available(data_dir=None):
        folder = data_folder(Remote("emnist", (), ()), data_dir)
        return all(_find(folder, name) for name in names)

    register_dataset(DatasetInfo(
        name=f"emnist-{split}",
        classes=classes,
        image_shape=(1, 28, 28),
        split_sizes={"train": train_size, "test": test_size},
        source="https://www.nist.gov/itl/products-and-services/emnist-dataset (NIST gzip.zip via torchvision's URL)",
        citation="G. Cohen, S. Afshar, J. Tapson, A. van Schaik, EMNIST: an extension of MNIST to handwritten "
                 "letters, arXiv:1702.05373, 2017.",
        license="NIST Special Database 19 terms: free to use with attribution",
        description=f"EMNIST {split}: handwritten {'letters' if split == 'letters' else 'characters'} "
                    "from NIST SD 19, upright (transposed back)",
        # EMNIST centred each character in a square with a 2-pixel border before shrinking to 28:
        # the ink fills ~24 of 28 pixels, not MNIST's 20
        ink="mnist" if split in ("digits", "mnist") else "", ink_box=24 if split in ("digits", "mnist") else 0,
    ), available=available)(lambda data_dir=None: load_emnist(split, data_dir))


for _split in SPLITS:
    _register(_split)
