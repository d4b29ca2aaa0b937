"""The bad-data corpus of issue 13: every damaged dataset file is one clear line and exit 2.

    .venv/bin/python -m pytest -q tests/data/test_bad_files.py

Each case writes a small valid dataset in the real on-disk format (MNIST's gzipped IDX files,
CODH's .npz arrays and class map, CIFAR's pickled batches, ETL records, an image folder), damages
one file, and runs `konbu train` on it through the CLI runner. Every case must end in exit code 2
with one `error:` line that names the damaged file, no traceback, and nothing changed on disk: no
tensor-cache entry (not even a half-written one), no run directory, no file a hostile pickle made.
"""

import gzip
import io
import os
import pickle
import shutil
import struct
import subprocess
import tarfile
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from konbu.cli.testing import invoke as konbu
from konbu.data import load_dataset
from konbu.data.cifar import CIFAR10_CLASSES, read_batch
from konbu.data.idx import read_idx
from konbu.errors import DatasetFormatError

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published")   # fixtures aren't the real bytes


# ---------------------------------------------------------------------------------------------
# Valid datasets, written as the real files are
# ---------------------------------------------------------------------------------------------

RNG = np.random.default_rng(13)
MNIST_NAMES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def idx_bytes(array: np.ndarray, type_byte=0x08) -> bytes:
    """IDX: 00 00 <type> <ndim>, one big-endian uint32 per dimension, then the values."""
    return struct.pack(">BBBB", 0, 0, type_byte, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.tobytes()


def make_mnist(folder):
    for n, (images, labels) in zip((12, 6), MNIST_NAMES.values()):
        (folder / images).write_bytes(gzip.compress(idx_bytes(RNG.integers(0, 256, (n, 28, 28), np.uint8))))
        (folder / labels).write_bytes(gzip.compress(idx_bytes(np.arange(n, dtype=np.uint8) % 10)))


def make_kmnist(folder, prefix="kmnist", num_classes=10):
    for split, n in (("train", 12), ("test", 6)):
        np.savez_compressed(folder / f"{prefix}-{split}-imgs.npz", RNG.integers(0, 256, (n, 28, 28), np.uint8))
        np.savez_compressed(folder / f"{prefix}-{split}-labels.npz", np.arange(n, dtype=np.uint8) % num_classes)


def make_k49(folder):
    make_kmnist(folder, "k49", 3)
    (folder / "k49_classmap.csv").write_text("index,codepoint,char\n0,U+3042,あ\n1,U+3044,い\n2,U+3046,う\n",
                                             encoding="utf-8")


def cifar_batch(n: int, labels=None) -> dict:
    return {"batch_label": "a batch", "data": RNG.integers(0, 256, (n, 3072), np.uint8),
            "labels": list(range(n)) if labels is None else labels, "filenames": [f"{i}.png" for i in range(n)]}


def make_cifar10(folder):
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (batches / name).write_bytes(pickle.dumps(cifar_batch(3), protocol=2))   # Python 2's protocol, like the files
    (batches / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES)}, protocol=2))


def make_cifar10_archive(folder):
    """Only the archive the download would leave: cifar-10-python.tar.gz, unpacked on first load."""
    make_cifar10(folder / "src")
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder / "src" / CIFAR, arcname=CIFAR)
    shutil.rmtree(folder / "src")


def make_emnist_archive(folder):
    """Only NIST's gzip.zip, holding the emnist-digits files under gzip/."""
    with zipfile.ZipFile(folder / "gzip.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for part, n in (("train", 12), ("test", 6)):
            archive.writestr(f"gzip/emnist-digits-{part}-images-idx3-ubyte.gz",
                             gzip.compress(idx_bytes(RNG.integers(0, 256, (n, 28, 28), np.uint8))))
            archive.writestr(f"gzip/emnist-digits-{part}-labels-idx1-ubyte.gz",
                             gzip.compress(idx_bytes(np.arange(n, dtype=np.uint8) % 10)))


def etl_b_record(sheet: int, char: str) -> bytes:
    """One ETL8B2 record (>H2s4s504s): sheet, JIS X 0208 code, reading, a 64x63 1-bit image."""
    return struct.pack(">H2s4s504s", sheet, char.encode("iso2022_jp")[3:5], b"A   ", RNG.bytes(504))


def make_etl(folder):
    # the first record of a B file is a dummy; six writers (sheets) so both splits get some
    records = [etl_b_record(0, "あ")] + [etl_b_record(sheet, char) for sheet in range(1, 7) for char in "あい"]
    (folder / "ETL8B2C1").write_bytes(b"".join(records))


def make_pictures(folder):
    for name in ("cat", "dog"):
        (folder / "pictures" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (12, 12), 40 * i).save(folder / "pictures" / name / f"{i}.png")


# ---------------------------------------------------------------------------------------------
# The damage: each returns the path of the file it broke, which the message must name
# ---------------------------------------------------------------------------------------------

def cut(path, keep=0.5):
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])
    return path


def overwrite(path, content: bytes):
    path.write_bytes(content)
    return path


def scramble(path, start=0.3, length=64):
    """Random bytes over part of the file: the size stays, the content is corrupt."""
    raw = bytearray(path.read_bytes())
    at = int(len(raw) * start)
    raw[at:at + length] = RNG.bytes(len(raw[at:at + length]))
    return overwrite(path, bytes(raw))


def npz_bytes(*arrays, **named) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, *arrays, **named)
    return buffer.getvalue()


class Gadget:
    """A pickle that calls `function(argument)` while it is loaded: what a hostile "CIFAR batch" holds."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


def hostile_batch(folder, function, code):
    marker = folder / "PWNED"
    argument = code.format(marker=marker)
    batch = {**cifar_batch(3), "filenames": Gadget(function, argument)}
    # protocol 4: protocol 2 would name the functions as Python 2 did (__builtin__.eval)
    return overwrite(folder / "cifar-10-batches-py" / "data_batch_2", pickle.dumps(batch, protocol=4))


def empty_idx_split(folder):
    """Well-formed IDX files holding 0 images and 0 labels."""
    overwrite(folder / MNIST_LABELS, idx_bytes(np.zeros(0, np.uint8)))
    return overwrite(folder / MNIST_IMAGES, idx_bytes(np.zeros((0, 28, 28), np.uint8)))


def one_class_left(folder):
    for path in (folder / "dog").iterdir():
        path.unlink()
    (folder / "dog").rmdir()
    return folder


MNIST_IMAGES = "train-images-idx3-ubyte.gz"
MNIST_LABELS = "train-labels-idx1-ubyte.gz"
CIFAR = "cifar-10-batches-py"


@dataclass
class Case:
    id: str
    dataset: str                  # a registry name (read from --data-dir) or "folder:" + a path below it
    make: Callable                # folder -> None: writes the valid dataset
    damage: Callable              # folder -> Path: breaks one file, returns it
    says: str                     # a part of the message


CASES = [
    # MNIST's IDX files, gzipped
    Case("idx-truncated", "mnist", make_mnist, lambda d: overwrite(
        d / MNIST_IMAGES, gzip.compress(gzip.decompress((d / MNIST_IMAGES).read_bytes())[:-300])), "truncated"),
    Case("idx-gzip-cut", "mnist", make_mnist, lambda d: cut(d / MNIST_IMAGES), "gzip data is truncated"),
    Case("idx-gzip-scrambled", "mnist", make_mnist, lambda d: scramble(d / MNIST_IMAGES), "gzip"),
    Case("idx-empty", "mnist", make_mnist, lambda d: overwrite(d / MNIST_LABELS, b""), "an empty file"),
    Case("idx-text", "mnist", make_mnist, lambda d: overwrite(d / MNIST_LABELS, b"label,image\n7,a.png\n"),
         "not an IDX file"),
    Case("idx-header-cut", "mnist", make_mnist, lambda d: overwrite(d / MNIST_IMAGES, b"\0\0\x08\x03\0\0"),
         "header cut short"),
    Case("idx-too-long", "mnist", make_mnist, lambda d: overwrite(
        d / MNIST_LABELS, idx_bytes(np.zeros(12, np.uint8)) + b"\0" * 10), "holds more"),
    Case("idx-count-mismatch", "mnist", make_mnist, lambda d: overwrite(
        d / MNIST_LABELS, gzip.compress(idx_bytes(np.zeros(11, np.uint8)))), "of the same N"),
    Case("idx-float-images", "mnist", make_mnist, lambda d: overwrite(
        d / MNIST_IMAGES, idx_bytes(np.zeros((12, 28, 28), ">f4"), 0x0D)), "expected uint8 images"),
    Case("idx-label-out-of-range", "mnist", make_mnist, lambda d: overwrite(
        d / MNIST_LABELS, idx_bytes(np.full(12, 10, np.uint8))), "labels must be in 0..9"),
    Case("idx-no-images", "mnist", make_mnist, lambda d: empty_idx_split(d), "holds no images"),
    # Kuzushiji's .npz arrays and K49's class map
    Case("npz-truncated", "kmnist", make_kmnist, lambda d: cut(d / "kmnist-train-imgs.npz"), "not a readable .npz"),
    Case("npz-scrambled", "kmnist", make_kmnist, lambda d: scramble(d / "kmnist-train-imgs.npz"),
         "not a readable .npz"),
    Case("npz-empty", "kmnist", make_kmnist, lambda d: overwrite(d / "kmnist-test-labels.npz", b""),
         "not a readable .npz"),
    Case("npz-text", "kmnist", make_kmnist, lambda d: overwrite(d / "kmnist-test-labels.npz", b"0\n1\n2\n"),
         "not a readable .npz"),
    Case("npz-no-arr_0", "kmnist", make_kmnist, lambda d: overwrite(
        d / "kmnist-train-imgs.npz", npz_bytes(images=np.zeros((12, 28, 28), np.uint8))), "arr_0"),
    Case("npz-pickled-objects", "kmnist", make_kmnist, lambda d: overwrite(
        d / "kmnist-train-labels.npz", npz_bytes(np.array([0, "x", None] * 4, dtype=object))), "allow_pickle"),
    Case("npz-float-images", "kmnist", make_kmnist, lambda d: overwrite(
        d / "kmnist-train-imgs.npz", npz_bytes(np.zeros((12, 28, 28), np.float32))), "integer array"),
    Case("npz-flat-images", "kmnist", make_kmnist, lambda d: overwrite(
        d / "kmnist-train-imgs.npz", npz_bytes(np.zeros((12, 784), np.uint8))), "with 3 dimensions"),
    Case("npz-count-mismatch", "kmnist", make_kmnist, lambda d: overwrite(
        d / "kmnist-test-labels.npz", npz_bytes(np.zeros(5, np.uint8))), "of the same N"),
    Case("npz-label-out-of-range", "kmnist", make_kmnist, lambda d: overwrite(
        d / "kmnist-test-labels.npz", npz_bytes(np.full(6, 200, np.uint8))), "labels must be in 0..9"),
    Case("classmap-not-utf8", "k49", make_k49, lambda d: overwrite(
        d / "k49_classmap.csv", "index,codepoint,char\n0,U+3042,あ\n".encode("shift_jis")), "UTF-8"),
    Case("classmap-empty", "k49", make_k49, lambda d: overwrite(d / "k49_classmap.csv", b""), "an empty file"),
    Case("classmap-header-only", "k49", make_k49, lambda d: overwrite(d / "k49_classmap.csv",
                                                                       b"index,codepoint,char\n"), "names 0 class"),
    # CIFAR's pickled batches
    Case("cifar-truncated", "cifar10", make_cifar10, lambda d: cut(d / CIFAR / "data_batch_3"), "truncated"),
    Case("cifar-scrambled", "cifar10", make_cifar10, lambda d: scramble(d / CIFAR / "data_batch_3", 0.0, 40),
         "data_batch_3"),
    Case("cifar-empty", "cifar10", make_cifar10, lambda d: overwrite(d / CIFAR / "test_batch", b""),
         "not a readable CIFAR pickle"),
    Case("cifar-not-a-dict", "cifar10", make_cifar10, lambda d: overwrite(
        d / CIFAR / "test_batch", pickle.dumps([1, 2, 3], protocol=2)), "expected a pickled dict"),
    Case("cifar-wrong-shape", "cifar10", make_cifar10, lambda d: overwrite(
        d / CIFAR / "data_batch_1", pickle.dumps({"data": np.zeros((3, 1024), np.uint8), "labels": [0, 1, 2]})),
         "uint8 array [N, 3072]"),
    Case("cifar-float-data", "cifar10", make_cifar10, lambda d: overwrite(
        d / CIFAR / "data_batch_1", pickle.dumps({"data": np.zeros((3, 3072)), "labels": [0, 1, 2]})),
         "found float64"),
    Case("cifar-label-out-of-range", "cifar10", make_cifar10, lambda d: overwrite(
        d / CIFAR / "data_batch_4", pickle.dumps(cifar_batch(3, [0, 1, 10]), protocol=2)), "integers in 0..9"),
    Case("cifar-label-count", "cifar10", make_cifar10, lambda d: overwrite(
        d / CIFAR / "data_batch_4", pickle.dumps(cifar_batch(3, [0, 1]), protocol=2)), "a list of 3 labels"),
    Case("cifar-ragged-labels", "cifar10", make_cifar10, lambda d: overwrite(
        d / CIFAR / "data_batch_4", pickle.dumps(cifar_batch(3, [[0], [1, 2], 3]), protocol=2)), "integers in"),
    Case("cifar-text-labels", "cifar10", make_cifar10, lambda d: overwrite(
        d / CIFAR / "data_batch_4", pickle.dumps(cifar_batch(3, ["cat", "dog", "cat"]), protocol=2)), "integers in"),
    Case("cifar-no-images", "cifar10", make_cifar10, lambda d: overwrite(
        d / CIFAR / "test_batch", pickle.dumps(cifar_batch(0), protocol=2)), "holds no images"),
    Case("cifar-meta-cut", "cifar10", make_cifar10, lambda d: cut(d / CIFAR / "batches.meta"), "batches.meta"),
    # pickles that would run code on load: refused by the restricted unpickler before anything runs
    Case("cifar-os-system", "cifar10", make_cifar10, lambda d: hostile_batch(d, os.system, "touch {marker}"),
         "asks for posix.system"),
    Case("cifar-eval", "cifar10", make_cifar10, lambda d: hostile_batch(d, eval, "open('{marker}', 'w').close()"),
         "asks for builtins.eval"),
    Case("cifar-subprocess", "cifar10", make_cifar10, lambda d: hostile_batch(
        d, subprocess.check_call, "touch {marker}"), "asks for subprocess.check_call"),
    # the archives a download leaves: unpacked atomically, so a damaged one leaves no partial folder or file
    Case("cifar-archive-cut", "cifar10", make_cifar10_archive, lambda d: cut(d / "cifar-10-python.tar.gz", 0.6),
         "archive is truncated or corrupt"),
    Case("cifar-archive-scrambled", "cifar10", make_cifar10_archive, lambda d: scramble(
        d / "cifar-10-python.tar.gz", 0.5), "archive is truncated or corrupt"),
    Case("emnist-zip-cut", "emnist-digits", make_emnist_archive, lambda d: cut(d / "gzip.zip", 0.6),
         "zip archive is truncated or corrupt"),
    Case("emnist-zip-scrambled", "emnist-digits", make_emnist_archive, lambda d: scramble(d / "gzip.zip", 0.1),
         "gzip.zip"),
    # ETL records
    Case("etl-wrong-record-length", "etl-hiragana", make_etl, lambda d: overwrite(
        d / "ETL8B2C1", (d / "ETL8B2C1").read_bytes() + b"\0" * 100), "not a whole number of 512-byte ETL8B2"),
    Case("etl-truncated", "etl-hiragana", make_etl, lambda d: cut(d / "ETL8B2C1", 0.7), "is cut short"),
    Case("etl-other-format", "etl-hiragana", make_etl, lambda d: overwrite(
        d / "ETL8B2C1", b"".join(etl_b_record(1, "あ") + b"\0" * 64 for _ in range(8))), "has JIS code"),
    Case("etl-garbage", "etl-hiragana", make_etl, lambda d: overwrite(d / "ETL8B2C1", bytes(range(256)) * 8),
         "has JIS code 0203"),
    Case("etl-empty", "etl-hiragana", make_etl, lambda d: overwrite(d / "ETL8B2C1", b""), "no hiragana records"),
    # image folders (folder:)
    Case("folder-empty", "folder:pictures", lambda d: (d / "pictures").mkdir(), lambda d: d / "pictures",
         "found none"),
    Case("folder-one-class", "folder:pictures", make_pictures, lambda d: one_class_left(d / "pictures"),
         "at least two"),
    Case("folder-csv-unknown-paths", "folder:labels.csv", make_pictures, lambda d: overwrite(
        d / "labels.csv", b"path,label\npictures/cat/0.png,cat\npictures/dog/9.png,dog\n"), "does not exist"),
]


def snapshot(root) -> dict:
    """Every file below `root` with its size and modification time, and every folder (a folder's own
    time changes when a temporary file comes and goes, which leaves nothing behind)."""
    return {str(path.relative_to(root)): "folder" if path.is_dir() else (path.stat().st_size,
                                                                         path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_data_file_is_one_line_exit_2_and_changes_nothing(case, tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    case.make(data)
    damaged = case.damage(data)
    monkeypatch.chdir(tmp_path)   # a default runs/ folder would appear here
    before = snapshot(tmp_path)
    if case.dataset.startswith("folder:"):
        args = ("--dataset", f"folder:{data / case.dataset[len('folder:'):]}")
    else:
        args = ("--dataset", case.dataset, "--data-dir", data)
    result = konbu("train", *args, "--epochs", 1, "--out", tmp_path / "run")

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    assert damaged.name in errors[0] and case.says in errors[0], errors[0]
    # no cache entry, no run directory, no marker from a hostile pickle: the tree is as it was
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("function, code", [(os.system, "touch {marker}"), (exec, "open('{marker}', 'w').close()"),
                                            (subprocess.Popen, "touch {marker}")])
def test_restricted_unpickler_runs_no_code(tmp_path, function, code):
    """Read directly: the refusal comes from find_class, before the gadget's function is looked up."""
    (tmp_path / CIFAR).mkdir()
    path = hostile_batch(tmp_path, function, code)
    with pytest.raises(DatasetFormatError, match=r"data_batch_2: the pickle asks for .*refusing to load it"):
        read_batch(path)
    assert not (tmp_path / "PWNED").exists()


def test_gzip_bomb_is_refused_without_inflating(tmp_path):
    """A 100 KB .gz whose header says 3x28x28 but which inflates to 64 MB: stopped one byte past the
    declared size, so the memory used is the declared size, not the inflated one."""
    body = idx_bytes(np.zeros((3, 28, 28), np.uint8)) + bytes(64 << 20)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(body, compresslevel=9))
    del body
    tracemalloc.start()
    try:
        with pytest.raises(DatasetFormatError, match=r"declares shape \(3, 28, 28\), 2,352 bytes .* holds more"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.stat().st_size < 200_000 and peak < 40 << 20


def test_header_declaring_a_huge_array_is_refused_without_allocating(tmp_path):
    """4 billion^3 images of 28x28 in a 30-byte file: the size is computed in Python ints (numpy's
    product would wrap around) and only what is there is read."""
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\0" * 14)
    with pytest.raises(DatasetFormatError, match="holds 14 bytes; the file is truncated"):
        read_idx(path)


def test_an_incomplete_unpacked_folder_is_replaced_from_the_archive(tmp_path):
    """A batches folder missing files (a copy cut short) beside a good archive: unpacked over it,
    not a 'Directory not empty' traceback, and no temporary folder left."""
    make_cifar10_archive(tmp_path)
    (tmp_path / CIFAR).mkdir()
    (tmp_path / CIFAR / "data_batch_1").write_bytes(b"half of a copy")
    assert len(load_dataset("cifar10", "train", tmp_path)) == 15
    assert sorted(path.name for path in tmp_path.iterdir()) == [CIFAR, "cifar-10-python.tar.gz", "konbu-home"]
