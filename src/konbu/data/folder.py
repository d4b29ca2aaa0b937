"""`folder:PATH`: your own images, as a dataset.

    konbu train --dataset folder:photos/            # photos/<class>/*.jpg ...
    konbu train --dataset folder:labels.csv         # rows of path,label
    load_dataset("folder:photos", "train", image_size=32)

Layouts:
- `PATH/<class>/<image>`: one sub-folder per class (like torchvision's ImageFolder); 20% of each
  class, chosen by a fixed seed, is the test split.
- `PATH/train/<class>/...` and `PATH/test/<class>/...`: your own split, used as it is.
- `PATH.csv`: rows `path,label` (a `path,label` header is optional; paths relative to the CSV's
  folder), split like the first layout.

Any format konbu.images.read_image reads (PNG, JPEG, BMP, GIF, TIFF, WebP; grey, colour, palette,
16-bit, with alpha) may be mixed. The dataset is grey when every image is, else RGB: a colour
file whose channels are equal counts as grey, within the level or two a lossy JPEG or WebP leaves
(GREY_TOLERANCE), so grey digits load as 1 channel from JPEG and WebP as from PNG. Each image is
stretched to `image_size` x `image_size`: by default the images' own size when they all share one
square size, else 28 (MNIST's). Class names are the sub-folder names (or labels), sorted; numbers
sort as numbers.
"""

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetFormatError, MissingDataError
from ..images import read_image
from ._registry import DatasetEntry, register_family
from .cache import cached
from .dataset import DatasetInfo, stratified_split

PREFIX = "folder:"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TEST_FRACTION = 0.2
FOLDER_SPLIT_SEED = 20240229   # fixed forever: changing it changes every reported test figure
DEFAULT_IMAGE_SIZE = 28
# A pixel is grey when its channels are at most this many levels apart. JPEG and lossy WebP store
# luma plus two chroma planes, and a grey picture's chroma should sit at the neutral 128; decoding
# rounds each channel on its own, so libwebp gives G a level below R and B on some greys (spread 1),
# and an encoder that rounds chroma to 127 or 129 gives B = Y + 1.772 (Cb - 128), R = Y + 1.402
# (Cr - 128): channels up to 2 levels off grey, a spread of 3. 4 leaves a level of margin; chroma
# two levels off neutral (a spread of 5-6) is a tint someone encoded, and anything one would call
# colour (coloured ink, sepia) is tens of levels apart somewhere, so it stays RGB.
GREY_TOLERANCE = 4


def _sort_key(name: str):
    return (0, int(name), "") if name.lstrip("-").isdigit() else (1, 0, name)


def _images_in(folder: Path) -> list:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _class_folders(folder: Path) -> list:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: _sort_key(p.name))


def _scan_class_folders(folder: Path) -> list:
    """[(path, class name)] of `folder/<class>/**/<image>`."""
    items = []
    for class_folder in _class_folders(folder):
        images = _images_in(class_folder)
        if not images:
            raise MissingDataError(f"{class_folder}: a class folder with no images (konbu reads "
                                   f"{', '.join(sorted(IMAGE_SUFFIXES))}); add images or remove the folder")
        items += [(path, class_folder.name) for path in images]
    if not items:
        raise MissingDataError(f"{folder}: expected one sub-folder per class holding images (e.g. "
                               f"{folder}/cat/1.jpg, {folder}/dog/2.png), found none")
    return items


def _scan_csv(path: Path) -> list:
    items = []
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if number == 1 and [cell.strip().lower() for cell in row[:2]] == ["path", "label"]:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise DatasetFormatError(f"{path}: line {number} should be 'path,label', found {','.join(row)!r}")
            image = Path(row[0].strip())
            image = image if image.is_absolute() else path.parent / image
            if not image.is_file():
                raise MissingDataError(f"{path}: line {number} names {image}, which does not exist")
            items.append((image, row[1].strip()))
    if not items:
        raise MissingDataError(f"{path}: no 'path,label' rows found")
    return items


def scan(source: Path) -> dict:
    """{"train": [(path, class)], "test": [...] or None} for a folder or CSV; None: split it ourselves."""
    if not source.exists():
        raise MissingDataError(f"folder:{source}: no such file or folder; expected a folder with one sub-folder "
                               "per class, or a CSV of path,label rows")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise DatasetFormatError(f"folder:{source}: expected a folder or a .csv file of path,label rows")
        return {"train": _scan_csv(source), "test": None}
    names = {p.name for p in _class_folders(source)}
    if {"train", "test"} <= names and _class_folders(source / "train") and _class_folders(source / "test"):
        return {"train": _scan_class_folders(source / "train"), "test": _scan_class_folders(source / "test")}
    return {"train": _scan_class_folders(source), "test": None}


def _is_grey(image) -> bool:
    """Grey mode, or colour whose channels are equal within GREY_TOLERANCE in every pixel (a grey GIF
    comes back as RGB from its palette, a grey JPEG or WebP as RGB a level or two apart)."""
    if image.mode == "L":
        return True
    spread = np.ptp(np.asarray(image)[..., :3], axis=-1)   # (H, W): brightest minus darkest channel
    return bool(spread.max() <= GREY_TOLERANCE)


def _read_all(items, image_size: int | None):
    images = [read_image(path) for path, _ in items]
    sizes = {image.size for image in images}
    if image_size is None:   # one shared square size is kept; anything else becomes MNIST's 28
        width, height = next(iter(sizes))
        image_size = width if len(sizes) == 1 and width == height else DEFAULT_IMAGE_SIZE
    mode = "L" if all(_is_grey(image) for image in images) else "RGB"
    arrays = []
    for image in images:
        image = image.convert(mode)
        if image.size != (image_size, image_size):
            # PIL's bilinear widens its filter when shrinking: antialiased, like torchvision's Resize
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
        array = np.asarray(image)
        arrays.append(array[None] if mode == "L" else array.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays))


def parse(source: Path, image_size: int | None) -> dict:
    scanned = scan(source)
    items = scanned["train"] + (scanned["test"] or [])
    classes = sorted({label for _, label in items}, key=_sort_key)
    if len(classes) < 2:
        raise MissingDataError(f"folder:{source}: found images of {len(classes)} class ({', '.join(classes)}); "
                               "a classifier needs at least two")
    index = {name: i for i, name in enumerate(classes)}
    images = _read_all(items, image_size)
    labels = torch.tensor([index[label] for _, label in items], dtype=torch.int64)
    if scanned["test"] is not None:
        n_train = len(scanned["train"])
        train_idx, test_idx = torch.arange(n_train), torch.arange(n_train, len(items))
    else:
        train_idx, test_idx = stratified_split(labels.numpy(), TEST_FRACTION, FOLDER_SPLIT_SEED)
    return {"train": (images[train_idx], labels[train_idx]), "test": (images[test_idx], labels[test_idx]),
            "classes": tuple(classes)}


@register_family(PREFIX)
def folder_entry(name: str) -> DatasetEntry:
    source = Path(name[len(PREFIX):]).expanduser()
    info = DatasetInfo(
        name=name, classes=(), image_shape=(0, 0, 0), split_sizes={"train": 0, "test": 0},
        source=f"your images in {source}", description="your own images, one sub-folder per class or a CSV")

    def load(data_dir=None, image_size=None):
        items = scan(source)
        files = [path for part in items.values() if part for path, _ in part]
        if source.is_file():
            files.append(source)   # the CSV itself: relabelling rows must not reuse the cache
        options = {"image_size": image_size, "layout": sorted(str(p) for p in files)}
        return cached("folder", options, files, lambda: parse(source, image_size))

    return DatasetEntry(info, load, available=lambda data_dir=None: source.exists(), options=("image_size",))
