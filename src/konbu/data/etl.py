"""`etl-hiragana`: handwritten hiragana parsed from the user's own ETL Character Database files.

    konbu train --dataset etl-hiragana --data-dir ~/ETL             # 71 classes, 28x28
    konbu datasets show etl-hiragana --data-dir ~/ETL --classes all --image-size 32 --out kana.png
    load_dataset("etl-hiragana", "train", data_dir="~/ETL", image_size=28, classes=None)

The ETL files can't be downloaded without registering at AIST (http://etlcdb.db.aist.go.jp), so
konbu reads the files you have: ETL8B2*, ETL9B_*, ETL8G_* and ETL9G_* in `--data-dir` or up to two
folders below it. Record layouts (big-endian, from AIST's format pages):

    ETL8B2   512 bytes  >H2s4s504s     sheet, JIS X 0208 code, reading, 64x63 1-bit image
    ETL9B    576 bytes  >H2s4s504s64x  the same plus padding
    ETL8G   8199 bytes  >H2s8sI4B4H2B30x8128s11x   sheet, JIS code, ..., 128x127 4-bit image
    ETL9G   8199 bytes  >H2s8sI4B4H2B34x8128s7x    (not ETL8G's layout: the image starts 4 bytes later)

The first record of each B file is a dummy. A label is the JIS code decoded with iso2022_jp
(`b'\\x1b$B' + code + b'\\x1b(B'`); only hiragana are kept. `classes=None` (or "71") keeps the 71
classes of ETL9 (from ETL8, the small kana are dropped), "all" every hiragana found, and a list
like "あ,い,u" a subset. Images are resized to `image_size` (default 28, as the tutorial did),
ink white on black like MNIST.

Train/test: writers, not images, are split (the sheet number identifies the writer): 20% of the
writers, chosen by a fixed seed, form the test split, so no writer's hand is in both.
"""

import re
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetFormatError, MissingDataError
from ._registry import register_dataset
from .cache import cached
from .dataset import DatasetInfo, select_classes
from .download import one_line
from .kana import ETL9_HIRAGANA, SMALL_KANA, is_hiragana, romaji
from .resize import resize_images

TEST_FRACTION = 0.2
ETL_SPLIT_SEED = 19731001   # fixed forever: changing it moves writers between train and test
DEFAULT_IMAGE_SIZE = 28


class Layout:
    """One ETL file format: where a record's sheet, JIS code and image are, and how to decode it."""

    def __init__(self, name, pattern, record, image_offset, width, height, bits, dummy_first):
        self.name, self.pattern, self.record = name, pattern, record
        self.width, self.height, self.bits, self.dummy_first = width, height, bits, dummy_first
        image_bytes = width * height * bits // 8
        self.dtype = np.dtype({"names": ["sheet", "jis", "image"],
                               "formats": [">u2", "S2", ("u1", image_bytes)],
                               "offsets": [0, 2, image_offset], "itemsize": record})

    def decode(self, images: np.ndarray) -> np.ndarray:
        """Packed image bytes [N, B] -> uint8 [N, H, W], ink white (255) on black (0)."""
        if not len(images):   # a file of no hiragana (or none at all): reshape(0, -1) can't infer a size
            return np.zeros((0, self.height, self.width), np.uint8)
        if self.bits == 1:   # a set bit is ink
            pixels = np.unpackbits(images, axis=1) * np.uint8(255)
        else:                # 4 bits a pixel, high nibble first; 0 paper .. 15 darkest ink
            pixels = np.stack([images >> 4, images & 0x0F], axis=2).reshape(len(images), -1) * np.uint8(17)
        return pixels.reshape(len(images), self.height, self.width)


LAYOUTS = (
    Layout("ETL8B2", "ETL8B2*", 512, 8, 64, 63, 1, dummy_first=True),
    Layout("ETL9B", "ETL9B_*", 576, 8, 64, 63, 1, dummy_first=True),
    Layout("ETL8G", "ETL8G_*", 8199, 60, 128, 127, 4, dummy_first=False),
    Layout("ETL9G", "ETL9G_*", 8199, 64, 128, 127, 4, dummy_first=False),
)
_SKIP = re.compile(r"\.(zip|gz|tar|txt|csv|md|html?|pdf)$|INFO", re.IGNORECASE)


def find_files(folder) -> list:
    """[(Layout, Path)] of every ETL file in `folder` or up to two folders below it."""
    folder = Path(folder).expanduser()
    found = []
    for layout in LAYOUTS:
        for depth in ("", "*/", "*/*/"):
            for path in sorted(folder.glob(depth + layout.pattern)):
                if path.is_file() and not _SKIP.search(path.name):
                    found.append((layout, path))
    return found


def jis_to_char(code: bytes) -> str | None:
    try:
        return (b"\x1b$B" + code + b"\x1b(B").decode("iso2022_jp")
    except UnicodeDecodeError:
        return None


def read_file(layout: Layout, path: Path):
    """(chars [N] of str, sheets [N] int, images uint8 [N, H, W]) of the hiragana records of one file."""
    try:
        size = path.stat().st_size
        if size % layout.record:
            whole = size // layout.record
            raise DatasetFormatError(
                f"{path}: {size:,} bytes is not a whole number of {layout.record}-byte {layout.name} records: record "
                f"{whole} (offset {whole * layout.record:,}) is cut short after {size % layout.record} bytes. "
                "The file is truncated or not an ETL file of this kind; copy it again from the ETL archive.")
        records = np.fromfile(path, dtype=layout.dtype)
    except OSError as error:   # unreadable (permissions, a vanished network share): not a traceback
        raise DatasetFormatError(f"{path}: cannot be read ({one_line(error)})") from None
    first = 1 if layout.dummy_first else 0
    records = records[first:]
    codes = records["jis"]
    # JIS X 0208 codes are two bytes in 0x21..0x7e; anything else means this is not an ETL file
    raw = np.frombuffer(codes.tobytes(), np.uint8).reshape(-1, 2) if len(codes) else np.zeros((0, 2), np.uint8)
    bad = np.flatnonzero(((raw < 0x21) | (raw > 0x7E)).any(axis=1))
    if len(bad):
        index = int(bad[0]) + first
        raise DatasetFormatError(
            f"{path}: record {index} (offset {index * layout.record:,}) has JIS code {bytes(raw[bad[0]]).hex()}, "
            f"expected a JIS X 0208 code (two bytes 21..7e) as every {layout.name} record has; "
            "the file is corrupt or of another ETL format.")
    hiragana = raw[:, 0] == 0x24   # row 4 of JIS X 0208 holds the hiragana
    records = records[hiragana]
    chars = [jis_to_char(code) for code in records["jis"]]
    keep = np.array([c is not None and is_hiragana(c) for c in chars], dtype=bool)
    chars = [c for c, k in zip(chars, keep) if k]
    records = records[keep]
    return chars, records["sheet"].astype(np.int64), layout.decode(np.ascontiguousarray(records["image"]))


def writer_split(writers: np.ndarray):
    """Boolean mask of test samples: TEST_FRACTION of the distinct writers, seeded."""
    distinct = np.unique(writers)
    rng = np.random.RandomState(ETL_SPLIT_SEED)   # legacy stream: frozen forever (NEP 19)
    order = distinct.copy()
    rng.shuffle(order)
    # at least one test writer when there are two or more, so a small collection still has a test split
    n_test = max(1, int(round(len(distinct) * TEST_FRACTION))) if len(distinct) > 1 else 0
    return np.isin(writers, order[:n_test])


def parse(files, image_size: int, classes) -> dict:
    all_chars, all_writers, all_images = [], [], []
    for layout, path in files:
        chars, sheets, images = read_file(layout, path)
        all_chars += chars
        # a writer is a sheet of one database: ETL8's sheet 5 and ETL9's sheet 5 are different people
        database = 8 if layout.name.startswith("ETL8") else 9
        all_writers.append(sheets * 10 + database)
        resized = resize_images(torch.from_numpy(images[:, None]), image_size)
        all_images.append(resized)
    if not all_chars:
        raise MissingDataError(f"etl-hiragana: the ETL files found ({', '.join(str(p) for _, p in files)}) hold no "
                               "hiragana records; hiragana are in ETL8B2, ETL9B, ETL8G and ETL9G")
    found = sorted(set(all_chars))
    if classes in (None, "71"):
        names = [c for c in found if c in ETL9_HIRAGANA and c not in SMALL_KANA]
    elif classes == "all":
        names = found
    else:
        names = [found[i] for i in select_classes(classes, found, [romaji(c) for c in found])]
    index = {name: i for i, name in enumerate(names)}
    labels = np.array([index.get(c, -1) for c in all_chars], dtype=np.int64)
    writers = np.concatenate(all_writers)
    images = torch.cat(all_images)
    keep = labels >= 0
    test = writer_split(writers[keep])
    images, labels = images[torch.from_numpy(keep)], torch.from_numpy(labels[keep])
    test_t = torch.from_numpy(test)
    return {"train": (images[~test_t], labels[~test_t]), "test": (images[test_t], labels[test_t]),
            "classes": tuple(names)}


def _folder(data_dir) -> Path:
    if not data_dir:
        raise MissingDataError("etl-hiragana reads your own copy of the ETL Character Database (it needs a "
                               "registration at http://etlcdb.db.aist.go.jp, so konbu can't download it): pass "
                               "--data-dir DIR, a folder holding ETL8B2*, ETL9B_*, ETL8G_* or ETL9G_* files")
    return Path(data_dir).expanduser()


def _available(data_dir=None) -> bool:
    return bool(data_dir) and bool(find_files(data_dir))


@register_dataset(DatasetInfo(
    name="etl-hiragana",
    classes=ETL9_HIRAGANA,
    aliases=tuple(romaji(c) for c in ETL9_HIRAGANA),
    image_shape=(1, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE),
    split_sizes={"train": 0, "test": 0},   # depends on the files the user has
    source="your ETL8B2/ETL9B/ETL8G/ETL9G files (--data-dir); http://etlcdb.db.aist.go.jp",
    citation="ETL Character Database, Electrotechnical Laboratory / AIST, Japan (http://etlcdb.db.aist.go.jp).",
    license="AIST ETL Character Database terms: free for research, registration required, no redistribution",
    description="Handwritten hiragana from the ETL Character Database, 71 classes by default",
    ink="", ink_box=0,
), available=_available, options=("image_size", "classes"))
def _etl_hiragana(data_dir=None, image_size=None, classes=None):
    folder = _folder(data_dir)
    files = find_files(folder)
    if not files:
        raise MissingDataError(f"etl-hiragana: no ETL files in {folder} (or two folders below it); expected files "
                               "named ETL8B2C1..3, ETL9B_1..5, ETL8G_01..33 or ETL9G_01..50 from AIST's archives")
    image_size = int(image_size or DEFAULT_IMAGE_SIZE)
    options = {"image_size": image_size, "classes": classes}
    return cached("etl-hiragana", options, [path for _, path in files], lambda: parse(files, image_size, classes))
