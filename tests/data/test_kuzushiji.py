"""Kuzushiji-MNIST and Kuzushiji-49 from .npz files and class maps written like CODH's."""

import gzip
import struct

import numpy as np
import pytest

from konbu.data import dataset_info, is_available, load_dataset
from konbu.data.kuzushiji import K49_CLASSES, KMNIST_CLASSES
from konbu.errors import DatasetFormatError

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published")   # fixtures aren't the real bytes


def write_npz_set(folder, prefix, n_train, n_test, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % num_classes).astype(np.uint8)
        np.savez_compressed(folder / f"{prefix}-{split}-imgs.npz", images)   # np.savez names it arr_0
        np.savez_compressed(folder / f"{prefix}-{split}-labels.npz", labels)
        arrays[split] = (images, labels)
    return arrays


def write_classmap(path, chars):
    lines = ["index,codepoint,char"] + [f"{i},U+{ord(c):04X},{c}" for i, c in enumerate(chars)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_kmnist_from_npz(tmp_path):
    arrays = write_npz_set(tmp_path, "kmnist", 20, 10, 10)
    assert is_available("kmnist", tmp_path)
    train = load_dataset("kmnist", "train", tmp_path)
    assert np.array_equal(train.images[:, 0].numpy(), arrays["train"][0])
    assert train.labels.tolist() == arrays["train"][1].tolist()
    assert train.classes == tuple("おきすつなはまやれを")
    assert train.info.aliases == ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    picked = load_dataset("kmnist", "test", tmp_path, classes="wo,o")   # romaji aliases select classes
    assert picked.classes == ("を", "お") and picked.labels.tolist() == [1, 0]


def test_kmnist_from_idx_files_like_torchvisions(tmp_path):
    rng = np.random.default_rng(0)
    for stem, n in (("train", 12), ("t10k", 6)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                            ("labels-idx1", np.arange(n, dtype=np.uint8) % 10)):
            header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (tmp_path / f"{stem}-{kind}-ubyte.gz").write_bytes(gzip.compress(header + array.tobytes()))
    assert is_available("kmnist", tmp_path)
    assert len(load_dataset("kmnist", "train", tmp_path)) == 12


def test_k49_class_map_and_headline_metric(tmp_path):
    arrays = write_npz_set(tmp_path, "k49", 98, 49, 49)
    write_classmap(tmp_path / "k49_classmap.csv", K49_CLASSES)
    assert (tmp_path / "k49_classmap.csv").stat().st_size == 697   # the size CODH publishes
    test = load_dataset("k49", "test", tmp_path)
    assert test.classes == K49_CLASSES and len(K49_CLASSES) == 49 and test.classes[-1] == "ゝ"
    assert test.labels.tolist() == arrays["test"][1].tolist()
    assert test.info.headline_metric == "balanced_accuracy" == dataset_info("k49").headline_metric
    assert test.info.aliases[:3] == ("a", "i", "u")


def test_kmnist_classmap_size_matches_codh(tmp_path):
    write_classmap(tmp_path / "kmnist_classmap.csv", KMNIST_CLASSES)
    assert (tmp_path / "kmnist_classmap.csv").stat().st_size == 151   # the size CODH publishes


def test_truncated_and_wrong_npz(tmp_path):
    write_npz_set(tmp_path, "kmnist", 20, 10, 10)
    path = tmp_path / "kmnist-train-imgs.npz"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DatasetFormatError, match=r"kmnist-train-imgs.npz: not a readable .npz .*truncated"):
        load_dataset("kmnist", "train", tmp_path)
    np.savez(path, np.zeros((20, 28), np.uint8))
    with pytest.raises(DatasetFormatError, match=r"kmnist-train-imgs.npz: expected an integer array with 3"):
        load_dataset("kmnist", "train", tmp_path)
    write_npz_set(tmp_path, "k49", 10, 5, 5)
    (tmp_path / "k49_classmap.csv").write_text("index,codepoint,char\n0,U+3042,あ\n5,U+3044,い\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"k49_classmap.csv: line 3 should be '1,U\+XXXX"):
        load_dataset("k49", "train", tmp_path)
