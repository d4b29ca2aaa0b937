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

A file that is not a readable image (corrupt, truncated, 0 bytes, text named .png) is skipped, and
one UnreadableFilesWarning names the first few with their reasons and counts them all ("skipped 3
of 10,000 files: ..."); the rest of the folder loads. With `strict=True` (`--strict-data`) the
folder is refused instead: a DatasetFormatError naming them. A class left with no readable image is
refused either way. Only a folder whose every file was read is kept in the tensor cache, so a cache
entry is the same folder under strict and not, and skipped files are warned about on every load.
"""

import csv
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetFormatError, ImageError, MissingDataError
from ..images import file_error_reason, read_image
from ._registry import DatasetEntry, register_family
from .cache import cache_path, read, write
from .dataset import DatasetInfo, stratified_split
from .download import DataWarning

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
# Unreadable files named in the warning or error; the rest are counted. A folder of 10,000 files
# with thousands broken would otherwise print a wall of names.
NAMED_FILES = 3


class UnreadableFilesWarning(DataWarning):
    """A folder dataset skipped files that are not readable images (pass strict=True to refuse it)."""


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


def _read_each(items) -> tuple:
    """([(PIL image, label, position in items)] of the readable files, [(path, reason)] of the others)."""
    readable, unreadable = [], []
    for position, (path, label) in enumerate(items):
        try:
            readable.append((read_image(path), label, position))
        except ImageError as error:   # read_image turns any decoder failure into an ImageError
            unreadable.append((path, file_error_reason(error, path)))
    return readable, unreadable


def _named(source: Path, unreadable: list, total: int) -> str:
    """ "3 of 10,000 files: cat/9.png (reason), ..." naming the first NAMED_FILES (relative to the folder)
    and counting the rest ("and 12 more")."""
    root = source.parent if source.is_file() else source
    names = [f"{path.relative_to(root) if path.is_relative_to(root) else path} ({reason})"
             for path, reason in unreadable[:NAMED_FILES]]
    more = len(unreadable) - NAMED_FILES
    return f"{len(unreadable):,} of {total:,} files: " + ", ".join(names) + (f" and {more:,} more" if more > 0 else "")


def _check_unreadable(source: Path, unreadable: list, total: int, strict: bool) -> None:
    """Refuse the folder (strict) or warn once about every file that will be left out."""
    if not unreadable:
        return
    if strict:
        raise DatasetFormatError(f"folder:{source}: {_named(source, unreadable, total)} are not readable images; "
                                 "fix or remove them, or leave out --strict-data to skip them with a warning")
    warnings.warn(f"folder:{source}: skipped {_named(source, unreadable, total)}; fix or remove them "
                  "(--strict-data refuses such a folder)", UnreadableFilesWarning, stacklevel=2)


def _to_tensor(images: list, image_size: int | None) -> torch.Tensor:
    """PIL images -> uint8 [N, C, H, W]: grey when every image is, each stretched to image_size."""
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


def parse(source: Path, image_size: int | None, strict: bool = False) -> tuple[dict, int]:
    """(splits, how many files were skipped as unreadable) of a folder or CSV."""
    scanned = scan(source)
    items = scanned["train"] + (scanned["test"] or [])
    classes = sorted({label for _, label in items}, key=_sort_key)
    if len(classes) < 2:
        raise MissingDataError(f"folder:{source}: found images of {len(classes)} class ({', '.join(classes)}); "
                               "a classifier needs at least two")
    readable, unreadable = _read_each(items)
    _check_unreadable(source, unreadable, len(items), strict)
    # skipping may empty a class or a given split: training would then fail later, far from the cause
    emptied = [f"class {name!r}" for name in classes if name not in {label for _, label, _ in readable}]
    n_train = sum(position < len(scanned["train"]) for _, _, position in readable)   # kept train files
    if scanned["test"] is not None:
        kept = {"the train split": n_train, "the test split": len(readable) - n_train}
        emptied += [split for split, count in kept.items() if count == 0]
    if emptied:
        raise DatasetFormatError(f"folder:{source}: {', '.join(emptied)} has no readable image left after "
                                 f"skipping {_named(source, unreadable, len(items))}; fix or remove those files")
    index = {name: i for i, name in enumerate(classes)}
    images = _to_tensor([image for image, _, _ in readable], image_size)
    labels = torch.tensor([index[label] for _, label, _ in readable], dtype=torch.int64)
    if scanned["test"] is not None:   # readable keeps the files' order: the train files come first
        train_idx, test_idx = torch.arange(n_train), torch.arange(n_train, len(readable))
    else:
        train_idx, test_idx = stratified_split(labels.numpy(), TEST_FRACTION, FOLDER_SPLIT_SEED)
    splits = {"train": (images[train_idx], labels[train_idx]), "test": (images[test_idx], labels[test_idx]),
              "classes": tuple(classes)}
    return splits, len(unreadable)


@register_family(PREFIX)
def folder_entry(name: str) -> DatasetEntry:
    source = Path(name[len(PREFIX):]).expanduser()
    info = DatasetInfo(
        name=name, classes=(), image_shape=(0, 0, 0), split_sizes={"train": 0, "test": 0},
        source=f"your images in {source}", description="your own images, one sub-folder per class or a CSV")

    def load(data_dir=None, image_size=None, strict=False):
        items = scan(source)
        files = [path for part in items.values() if part for path, _ in part]
        if source.is_file():
            files.append(source)   # the CSV itself: relabelling rows must not reuse the cache
        options = {"image_size": image_size, "layout": sorted(str(p) for p in files)}
        # data.cache.cached, except that a folder with unreadable files is not cached: its entry
        # would not say which files were skipped, so a cached load could not warn, and a strict
        # load would take it for a clean folder (see the module docstring)
        entry = cache_path("folder", options, files)
        splits = read(entry) if entry.is_file() else None
        if splits is None:
            splits, skipped = parse(source, image_size, strict)
            if not skipped:
                write(entry, splits)
        return splits

    return DatasetEntry(info, load, available=lambda data_dir=None: source.exists(), options=("image_size", "strict"))
