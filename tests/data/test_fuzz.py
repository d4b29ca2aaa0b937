"""Fuzzing konbu's file parsers: random bytes and mutated valid files raise only konbu's errors.

    .venv/bin/python -m pytest -q tests/data/test_fuzz.py
    KONBU_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest -q tests/data/test_fuzz.py   # a longer hunt

Targets: the IDX reader (raw and gzipped), ETL records in each of the four layouts, CIFAR's pickled
batches through the restricted unpickler, Kuzushiji's .npz arrays, the unpacking of CIFAR's .tar.gz
and EMNIST's .zip, and konbu.images.read_image on PNG, JPEG, GIF, BMP, TIFF and WebP. Whatever the
bytes, a parser either returns or raises a KonbuError subclass with a one-line message naming the
file (what the CLI prints): any other exception type, a multi-line message or a hang is a bug.
Each property starts from a small valid file in the real format and mutates it (bytes overwritten,
inserted, deleted, the file cut short), because random bytes alone rarely get past a format's magic
number.

The examples are derandomized (the same inputs every run, so CI doesn't flake) and few enough that
this file runs in a few seconds on 2 cores; KONBU_FUZZ_EXAMPLES raises the count and draws new,
random inputs each run, for a longer hunt.
"""

import gzip
import io
import os
import pickle
import struct
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from konbu.data import emnist, etl
from konbu.data.cifar import batch_arrays
from konbu.data.download import extract_tar
from konbu.data.idx import read_idx
from konbu.data.kuzushiji import read_npz
from konbu.errors import KonbuError
from konbu.images import read_image

# PIL warns about some damage it reads past (a TIFF tag larger than the file): not what is tested here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")
HUNT = "KONBU_FUZZ_EXAMPLES" in os.environ   # a longer hunt explores new inputs each run
FUZZ = settings(max_examples=int(os.environ.get("KONBU_FUZZ_EXAMPLES", "60")), deadline=None, database=None,
                derandomize=not HUNT, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def only_konbu_errors(parse, path, content: bytes):
    """Write `content` to `path` and parse it: a result, or a KonbuError with a one-line message."""
    path.write_bytes(content)
    try:
        parse(path)
    except KonbuError as error:
        assert "\n" not in str(error) and str(path) in str(error), str(error)


@st.composite
def mutations(draw, seed: bytes) -> bytes:
    """`seed` with 1-6 edits: bytes overwritten, runs inserted or deleted, or the file cut short."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["overwrite", "insert", "delete", "cut"]))
        if edit == "overwrite":
            data[at:at + 4] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif edit == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# Seeds: one small valid file per format
# ---------------------------------------------------------------------------------------------

IDX = struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2, 5, 4) + bytes(range(40))
CIFAR = pickle.dumps({"batch_label": "fuzz", "data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072),
                      "labels": [3, 7], "filenames": ["a.png", "b.png"]}, protocol=2)


def npz_seed(compressed: bool) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, np.arange(2 * 5 * 4, dtype=np.uint8).reshape(2, 5, 4))
    return buffer.getvalue()


def etl_seed(layout) -> bytes:
    """Three records of `layout`: あ, い and a katakana ア, images of varying bytes."""
    records = np.zeros(3, dtype=layout.dtype)
    records["sheet"] = [1, 2, 3]
    records["jis"] = [char.encode("iso2022_jp")[3:5] for char in "あいア"]
    records["image"] = np.arange(records["image"].size, dtype=np.uint64).reshape(records["image"].shape) % 251
    return records.tobytes()


def image_seed(file_format: str) -> bytes:
    grey = np.zeros((12, 10), np.uint8)
    grey[2:10, 4:6] = 255
    buffer = io.BytesIO()
    Image.fromarray(grey).convert("RGB" if file_format == "JPEG" else "L").save(buffer, file_format)
    return buffer.getvalue()


def archive_seed(kind: str) -> bytes:
    """A CIFAR-style .tar.gz or NIST-style .zip of two small members."""
    buffer = io.BytesIO()
    names = ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"] if kind == "tar" else \
        [f"gzip/{name}" for name in ZIP_MEMBERS]
    with (tarfile.open(fileobj=buffer, mode="w:gz") if kind == "tar" else zipfile.ZipFile(buffer, "w", 8)) as archive:
        for name in names:
            if kind == "tar":
                info = tarfile.TarInfo(name)
                info.size = 300
                archive.addfile(info, io.BytesIO(bytes(range(150)) * 2))
            else:
                archive.writestr(name, bytes(range(150)) * 2)
    return buffer.getvalue()


ZIP_MEMBERS = ["emnist-digits-test-images-idx3-ubyte.gz", "emnist-digits-test-labels-idx1-ubyte.gz"]
IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff", "WEBP": "webp"}


# ---------------------------------------------------------------------------------------------
# The properties
# ---------------------------------------------------------------------------------------------

@FUZZ
@given(content=st.one_of(st.binary(max_size=256), mutations(IDX), mutations(gzip.compress(IDX))))
def test_idx_reader(folder, content):
    only_konbu_errors(read_idx, folder / "fuzz-idx3-ubyte.gz", content)


@FUZZ
@given(index=st.sampled_from(range(len(etl.LAYOUTS))), data=st.data())
def test_etl_reader(folder, index, data):
    layout = etl.LAYOUTS[index]
    seed = etl_seed(layout)
    content = data.draw(st.one_of(st.binary(max_size=2 * layout.record).map(lambda b: b * 3), mutations(seed)))
    only_konbu_errors(lambda path: etl.read_file(layout, path), folder / layout.name, content)


@FUZZ
@given(content=st.one_of(st.binary(max_size=256), mutations(CIFAR)))
def test_cifar_reader(folder, content):
    only_konbu_errors(lambda path: batch_arrays(path, "labels", 10), folder / "data_batch_1", content)


@FUZZ
@given(content=st.one_of(st.binary(max_size=256), mutations(npz_seed(False)), mutations(npz_seed(True))))
def test_npz_reader(folder, content):
    only_konbu_errors(lambda path: read_npz(path, 3), folder / "kmnist-train-imgs.npz", content)


@FUZZ
@given(kind=st.sampled_from(["tar", "zip"]), data=st.data())
def test_archive_unpackers(folder, kind, data):
    """The archives a download leaves (CIFAR's .tar.gz, EMNIST's .zip), unpacked into a new folder each time."""
    content = data.draw(st.one_of(st.binary(max_size=256), mutations(archive_seed(kind))))
    target = Path(tempfile.mkdtemp(dir=folder))
    if kind == "tar":
        only_konbu_errors(lambda path: extract_tar(path, target, "cifar-10-batches-py"), target / "c.tar.gz", content)
    else:
        only_konbu_errors(lambda path: emnist._extract(path, target, ZIP_MEMBERS), target / "gzip.zip", content)


@pytest.mark.parametrize("file_format", IMAGE_FORMATS)
def test_image_reader(folder, file_format):
    """One property per format (a parametrized test: hypothesis runs the examples for each)."""
    path = folder / f"fuzz.{IMAGE_FORMATS[file_format]}"

    @FUZZ
    @given(content=st.one_of(st.binary(max_size=128), mutations(image_seed(file_format))))
    def property(content):
        only_konbu_errors(read_image, path, content)
    property()
