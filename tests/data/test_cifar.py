"""CIFAR python pickles written like the real files: both label sets of CIFAR-100, the archive
layout, the restricted unpickler refusing anything but plain data, truncated files."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch

from konbu.data import is_available, load_dataset
from konbu.data.cifar import CIFAR100_COARSE, CIFAR100_FINE, CIFAR10_CLASSES, read_batch
from konbu.errors import DatasetFormatError

pytestmark = pytest.mark.filterwarnings("ignore:.*differs from the published")   # fixtures aren't the real bytes


def write_batch(path, n, rng, label_keys=("labels",), num_classes=(10,)):
    """A batch as the CIFAR files hold it: a dict of a uint8 [N, 3072] array and label lists."""
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    batch = {"batch_label": "training batch 1 of 5", "data": data, "filenames": [f"img_{i}.png" for i in range(n)]}
    labels = {}
    for key, k in zip(label_keys, num_classes):
        labels[key] = [int(v) for v in rng.integers(0, k, n)]
        batch[key] = labels[key]
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return data, labels


def make_cifar10(root, rng, per_batch=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    parts = [write_batch(folder / f"data_batch_{i}", per_batch, rng) for i in range(1, 6)]
    test = write_batch(folder / "test_batch", 3, rng)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES), "num_vis": 3072}, 2))
    return parts, test


def test_cifar10_from_a_folder(tmp_path):
    rng = np.random.default_rng(0)
    parts, test = make_cifar10(tmp_path, rng)
    assert is_available("cifar10", tmp_path)
    train = load_dataset("cifar10", "train", tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.classes == CIFAR10_CLASSES
    data = np.concatenate([p[0] for p in parts])
    # the first 1024 values of a row are the red plane, row-major
    assert np.array_equal(train.images[5, 0].numpy(), data[5, :1024].reshape(32, 32))
    assert np.array_equal(train.images[5, 2].numpy(), data[5, 2048:].reshape(32, 32))
    assert train.labels.tolist() == sum((p[1]["labels"] for p in parts), [])
    # the batches folder itself is accepted too
    assert load_dataset("cifar10", "test", tmp_path / "cifar-10-batches-py").labels.tolist() == test[1]["labels"]


def test_cifar10_matches_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    make_cifar10(tmp_path, np.random.default_rng(3))
    ours = load_dataset("cifar10", "train", tmp_path)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args: True)   # our fixtures aren't the real bytes
    theirs = tv_cifar.CIFAR10(str(tmp_path), train=True)                    # torchvision's reader: the answer key
    assert np.array_equal(ours.images.numpy(), theirs.data.transpose(0, 3, 1, 2))
    assert ours.labels.tolist() == theirs.targets and list(ours.classes) == theirs.classes


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _, train = write_batch(folder / "train", 12, rng, ("fine_labels", "coarse_labels"), (100, 20))
    write_batch(folder / "test", 5, rng, ("fine_labels", "coarse_labels"), (100, 20))
    fine = load_dataset("cifar100", "train", tmp_path)
    coarse = load_dataset("cifar100-coarse", "train", tmp_path)
    assert fine.labels.tolist() == train["fine_labels"] and coarse.labels.tolist() == train["coarse_labels"]
    assert torch.equal(fine.images, coarse.images)
    assert fine.classes == CIFAR100_FINE and len(CIFAR100_FINE) == 100 and list(CIFAR100_FINE) == sorted(CIFAR100_FINE)
    assert coarse.classes == CIFAR100_COARSE and len(CIFAR100_COARSE) == 20


def test_cifar10_from_the_archive(tmp_path):
    source = tmp_path / "src"
    parts, _ = make_cifar10(source, np.random.default_rng(2))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with tarfile.open(data_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    assert not is_available("cifar10", data_dir)
    train = load_dataset("cifar10", "train", data_dir)   # unpacked from the archive, no download
    assert len(train) == 20 and (data_dir / "cifar-10-batches-py" / "test_batch").is_file()


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_restricted_unpickler_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0], "x": Exploit()}, 2))
    with pytest.raises(DatasetFormatError, match=r"data_batch_1: the pickle asks for posix.system"):
        read_batch(path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_and_malformed_batches(tmp_path):
    make_cifar10(tmp_path, np.random.default_rng(4))
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.raises(DatasetFormatError, match=r"data_batch_3: not a readable CIFAR pickle .*truncated"):
        load_dataset("cifar10", "train", tmp_path)
    batch.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, 2))
    with pytest.raises(DatasetFormatError, match=r"data_batch_3: expected 'data' to be a uint8 array \[N, 3072\]"):
        load_dataset("cifar10", "train", tmp_path)
    buffer = io.BytesIO()
    pickle.dump([1, 2, 3], buffer, 2)
    batch.write_bytes(buffer.getvalue())
    with pytest.raises(DatasetFormatError, match="expected a pickled dict"):
        load_dataset("cifar10", "train", tmp_path)


def test_cifar10_downloaded_checked_and_unpacked(tmp_path, http_server, offline_home, monkeypatch):
    import hashlib

    from konbu.data import cifar

    source = tmp_path / "src"
    make_cifar10(source, np.random.default_rng(5))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    body = archive.read_bytes()
    http_server.files["/cifar10/cifar-10-python.tar.gz"] = body
    pinned = dict(cifar.TORCHVISION_CIFAR["CIFAR10"], tgz_md5=hashlib.md5(body).hexdigest())
    monkeypatch.setitem(cifar.TORCHVISION_CIFAR, "CIFAR10", pinned)
    assert not is_available("cifar10")
    assert len(load_dataset("cifar10", "train")) == 20
    assert is_available("cifar10") and (offline_home / "cifar10" / "cifar-10-batches-py" / "batches.meta").is_file()
    assert http_server.requests == ["/cifar10/cifar-10-python.tar.gz"]
