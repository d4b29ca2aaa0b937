"""The registry, the embedded datasets, the IDX reader and the MNIST folder loader."""

import gzip
import struct

import numpy as np
import pytest
import torch

from konbu.data import dataset_info, is_available, list_datasets, load_dataset, validation_split
from konbu.data.idx import read_idx
from konbu.errors import DatasetFormatError, MissingDataError, UnknownNameError

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published")   # fixtures aren't the real bytes


def write_idx(path, array: np.ndarray, compress=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_mnist_folder(folder, n_train=30, n_test=10, compress=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    arrays = {}
    for split, n, stem in (("train", n_train, "train"), ("test", n_test, "t10k")):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(folder / f"{stem}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(folder / f"{stem}-labels-idx1-ubyte{suffix}", labels, compress)
        arrays[split] = (images, labels)
    return arrays


def test_registry_lists_the_seed_datasets():
    assert {"mnist-sample", "digits", "mnist"} <= set(list_datasets())
    with pytest.raises(UnknownNameError, match="mnist-sample"):
        load_dataset("imagenet-22k")


def test_mnist_sample_split_is_stratified_and_fixed():
    train, test = load_dataset("mnist-sample", "train"), load_dataset("mnist-sample", "test")
    assert train.images.shape == (4000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (1000, 1, 28, 28) and test.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10
    # the split never changes: a fingerprint of which images went to test
    assert int(test.images.float().sum()) == int(load_dataset("mnist-sample", "test").images.float().sum())
    assert abs(train.mean[0] - 0.1315) < 0.002 and abs(train.std[0] - 0.3087) < 0.002   # MNIST-like
    assert train.mean == test.mean  # both splits carry the train split's statistics
    info = train.info
    assert info.ink == "mnist" and info.source and info.citation


def test_digits():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797
    assert len(test) == dataset_info("digits").split_sizes["test"]
    assert train.images.max() == 255


def test_validation_split_is_seeded_and_disjoint():
    train = load_dataset("mnist-sample", "train")
    a_train, a_val = validation_split(train, 0.1, seed=1)
    b_train, b_val = validation_split(train, 0.1, seed=1)
    _, c_val = validation_split(train, 0.1, seed=2)
    assert len(a_val) == 400 and len(a_train) == 3600
    assert torch.equal(a_val.images, b_val.images)
    assert not torch.equal(a_val.images, c_val.images)
    assert torch.bincount(a_val.labels).tolist() == [40] * 10


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "x-idx3-ubyte", array, compress)
    assert np.array_equal(read_idx(path), array)


def test_idx_corrupt_and_truncated(tmp_path):
    path = write_idx(tmp_path / "images", np.zeros((5, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetFormatError, match="truncated"):
        read_idx(path)
    (tmp_path / "text").write_text("hello, not idx")
    with pytest.raises(DatasetFormatError, match="not an IDX file"):
        read_idx(tmp_path / "text")
    gz = tmp_path / "cut.gz"
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 200)[:-10])
    with pytest.raises(DatasetFormatError, match="gzip"):
        read_idx(gz)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_from_a_folder(tmp_path, compress):
    arrays = make_mnist_folder(tmp_path, compress=compress)
    assert is_available("mnist", tmp_path)
    train = load_dataset("mnist", "train", tmp_path)
    test = load_dataset("mnist", "test", tmp_path)
    assert np.array_equal(train.images[:, 0].numpy(), arrays["train"][0])
    assert test.labels.tolist() == arrays["test"][1].tolist()


def test_mnist_missing_files_say_what_to_do(tmp_path):
    make_mnist_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    assert not is_available("mnist", tmp_path)
    with pytest.raises(MissingDataError, match=r"missing t10k-labels-idx1-ubyte.*--data-dir"):
        load_dataset("mnist", "train", tmp_path / "")


def test_load_data_gives_both_splits_from_one_load():
    from konbu.data import dataset_options, load_data

    train, test = load_data("digits", classes="0,1,7")
    assert (train.split, test.split) == ("train", "test") and train.classes == ("0", "1", "7")
    assert train.mean == test.mean == load_dataset("digits", "test", classes="0,1,7").mean   # the train split's
    assert torch.equal(test.images, load_dataset("digits", "test", classes="0,1,7").images)
    assert dataset_options({"data_dir": "d", "image_size": None, "classes": "0,1", "epochs": 3}) == {
        "data_dir": "d", "classes": "0,1"}
