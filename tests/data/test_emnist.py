"""EMNIST from its IDX files: images transposed back to upright, letters relabelled 0..25."""

import gzip
import struct

import numpy as np
import pytest
import torch

from konbu.data import dataset_info, is_available, list_datasets, load_dataset
from konbu.errors import DatasetFormatError

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published")


def write_idx_gz(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_split(folder, split, labels_train, labels_test):
    """NIST's files hold each image transposed: write an upright 'L' transposed, as they do."""
    upright = np.zeros((28, 28), np.uint8)
    upright[4:24, 8] = 255      # the stem of an L ...
    upright[23, 8:20] = 255     # ... and its foot
    for part, labels in (("train", labels_train), ("test", labels_test)):
        images = np.stack([upright.T] * len(labels))
        write_idx_gz(folder / f"emnist-{split}-{part}-images-idx3-ubyte.gz", images)
        write_idx_gz(folder / f"emnist-{split}-{part}-labels-idx1-ubyte.gz", np.array(labels))
    return upright


def test_all_six_splits_are_registered():
    names = {f"emnist-{s}" for s in ("balanced", "byclass", "bymerge", "digits", "letters", "mnist")}
    assert names <= set(list_datasets())
    assert len(dataset_info("emnist-balanced").classes) == 47 and len(dataset_info("emnist-byclass").classes) == 62
    assert dataset_info("emnist-balanced").classes[36:] == tuple("abdefghnqrt")


def test_emnist_images_are_upright(tmp_path):
    upright = write_split(tmp_path, "balanced", [0, 10, 46], [3])
    assert is_available("emnist-balanced", tmp_path) and not is_available("emnist-digits", tmp_path)
    train = load_dataset("emnist-balanced", "train", tmp_path)
    assert torch.equal(train.images[0, 0], torch.from_numpy(upright))
    assert [train.classes[i] for i in train.labels] == ["0", "A", "t"]


def test_emnist_letters_are_relabelled(tmp_path):
    (tmp_path / "gzip").mkdir()   # the folder NIST's archive unpacks to is searched too
    write_split(tmp_path / "gzip", "letters", [1, 26, 2], [13])
    train = load_dataset("emnist-letters", "train", tmp_path)
    assert train.labels.tolist() == [0, 25, 1] and [train.classes[i] for i in train.labels] == ["a", "z", "b"]
    write_split(tmp_path / "gzip", "letters", [0, 1], [1])   # 0 is not a letter
    with pytest.raises(DatasetFormatError, match=r"labels must be in 1..26 for emnist-letters"):
        load_dataset("emnist-letters", "train", tmp_path)


def test_emnist_taken_out_of_nists_archive(tmp_path):
    import zipfile

    source = tmp_path / "src"
    source.mkdir()
    write_split(source, "digits", [1, 2, 3], [4])
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with zipfile.ZipFile(data_dir / "gzip.zip", "w") as archive:   # NIST's layout: gzip/<file>
        for path in source.iterdir():
            archive.write(path, f"gzip/{path.name}")
    assert not is_available("emnist-digits", data_dir)
    assert load_dataset("emnist-digits", "train", data_dir).labels.tolist() == [1, 2, 3]
    assert is_available("emnist-digits", data_dir)   # the split's four files were taken out
