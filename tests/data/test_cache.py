"""The tensor cache (a second load skips parsing; a changed source is re-parsed) and the options
every dataset takes: `image_size` (resize) and `classes` (a relabelled subset)."""

import gzip
import os
import struct

import numpy as np
import pytest
import torch

from konbu.data import cache, dataset_info, load_dataset
from konbu.data import mnist as mnist_module
from konbu.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published")


def write_mnist(folder, n_train=30, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                            ("labels-idx1", np.arange(n, dtype=np.uint8) % 10)):
            header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            (folder / f"{stem}-{kind}-ubyte.gz").write_bytes(gzip.compress(header + array.tobytes()))


def test_second_load_comes_from_the_cache(tmp_path, offline_home, monkeypatch):
    write_mnist(tmp_path)
    first = load_dataset("mnist", "train", tmp_path)
    entries = list((offline_home / "tensors").iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".safetensors"   # no temporary file left behind

    def no_parsing(*args):
        raise AssertionError("parsed again despite a cache entry")
    monkeypatch.setattr(mnist_module, "idx_pair", no_parsing)
    second = load_dataset("mnist", "train", tmp_path)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert second.mean == first.mean

    # a touched source file is a different key: parsed again (here: the patched parser runs)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="parsed again"):
        load_dataset("mnist", "train", tmp_path)


def test_a_damaged_cache_entry_is_a_miss(tmp_path, offline_home):
    write_mnist(tmp_path)
    first = load_dataset("mnist", "test", tmp_path)
    entry, = (offline_home / "tensors").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    assert torch.equal(load_dataset("mnist", "test", tmp_path).images, first.images)


def test_cache_keeps_class_names(tmp_path):
    splits = {"train": (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])),
              "test": (torch.ones(1, 1, 4, 4, dtype=torch.uint8), torch.tensor([1])), "classes": ("あ", "い")}
    source = tmp_path / "source.bin"
    source.write_bytes(b"x")
    cache.cached("demo", {"k": 1}, [source], lambda: splits)
    again = cache.cached("demo", {"k": 1}, [source], lambda: pytest.fail("should be a cache hit"))
    assert again["classes"] == ("あ", "い") and torch.equal(again["test"][0], splits["test"][0])
    assert cache.clear() == 1


def test_image_size_and_classes_on_any_dataset(tmp_path):
    write_mnist(tmp_path)
    full = load_dataset("mnist", "train", tmp_path)
    small = load_dataset("mnist", "train", tmp_path, image_size=14)
    assert small.images.shape == (30, 1, 14, 14) and small.info.image_shape == (1, 14, 14)
    assert small.info.ink_box == 10   # 20 of 28 scales to 10 of 14
    # torchvision's antialiased Resize is the answer key (they may differ by one in rounding)
    from torchvision.transforms.v2.functional import resize
    assert (small.images.int() - resize(full.images, [14, 14], antialias=True).int()).abs().max() <= 1
    pair = load_dataset("mnist", "train", tmp_path, classes="7,3")
    assert pair.classes == ("7", "3") and len(pair) == 6 and pair.num_classes == 2
    assert torch.equal(pair.images[pair.labels == 0], full.images[full.labels == 7])
    info = dataset_info("mnist", tmp_path, classes="7,3")
    assert info.split_sizes == {"train": 6, "test": 2}
    with pytest.raises(ConfigError, match="--image-size"):
        load_dataset("mnist", "train", tmp_path, image_size=1)
    with pytest.raises(ConfigError, match="at least two classes"):
        load_dataset("mnist", "train", tmp_path, classes="7")
