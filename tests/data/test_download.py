"""Downloads against a local HTTP server: good checksum, bad checksum, a transfer that breaks off,
mirror fallback, the offline message, and local files whose md5 differs (warn once, then load)."""

import gzip
import hashlib
import struct
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest

from konbu.data import is_available, load_dataset
from konbu.data import download as dl
from konbu.data import mnist as mnist_module
from konbu.errors import MissingDataError


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def mnist_files(n_train=20, n_test=10):
    rng = np.random.default_rng(1)
    files, arrays = {}, {}
    for split, n, stem in (("train", n_train, "train"), ("test", n_test, "t10k")):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        files[f"{stem}-images-idx3-ubyte.gz"] = idx_bytes(images)
        files[f"{stem}-labels-idx1-ubyte.gz"] = idx_bytes(labels)
        arrays[split] = (images, labels)
    return files, arrays


def no_partial_files(folder):
    return not folder.exists() or not [p for p in folder.iterdir() if p.suffix == ".part" or p.name.startswith(".")]


def test_download_good_checksum(http_server, tmp_path):
    http_server.files["/things/a.bin"] = b"hello konbu" * 100
    remote = dl.Remote("things", ("https://unreachable.invalid/",), (dl.RemoteFile("a.bin", md5(b"hello konbu" * 100)),))
    paths = dl.fetch(remote, tmp_path / "d")
    assert paths["a.bin"].read_bytes() == b"hello konbu" * 100
    assert http_server.requests == ["/things/a.bin"]   # KONBU_MIRROR replaced the published mirror
    assert no_partial_files(tmp_path / "d")
    dl.fetch(remote, tmp_path / "d")                   # present now: no second request
    assert len(http_server.requests) == 1


def test_download_bad_checksum_leaves_nothing(http_server, tmp_path):
    http_server.files["/things/a.bin"] = b"tampered"
    remote = dl.Remote("things", (), (dl.RemoteFile("a.bin", md5(b"original")),))
    with pytest.raises(MissingDataError, match=r"md5 .* does not match the published"):
        dl.fetch(remote, tmp_path / "d")
    assert not (tmp_path / "d" / "a.bin").exists() and no_partial_files(tmp_path / "d")


def test_download_size_checked_when_there_is_no_md5(http_server, tmp_path):
    http_server.files["/things/a.bin"] = b"12345"
    remote = dl.Remote("things", (), (dl.RemoteFile("a.bin", size=6),))
    with pytest.raises(MissingDataError, match="got 5 bytes, expected 6"):
        dl.fetch(remote, tmp_path / "d")
    assert not (tmp_path / "d" / "a.bin").exists()


def test_broken_off_transfer_leaves_no_complete_looking_file(http_server, tmp_path):
    body = bytes(range(256)) * 400
    http_server.files["/things/big.bin"] = body
    http_server.broken.add("/things/big.bin")
    remote = dl.Remote("things", (), (dl.RemoteFile("big.bin"),))   # no md5: only the length can tell
    with pytest.raises(MissingDataError, match="broke off"):
        dl.fetch(remote, tmp_path / "d")
    assert not (tmp_path / "d" / "big.bin").exists() and no_partial_files(tmp_path / "d")


def test_mirrors_are_tried_in_order(http_server, tmp_path, monkeypatch):
    monkeypatch.delenv("KONBU_MIRROR")
    http_server.files["/second/a.bin"] = b"data"
    remote = dl.Remote("things", (f"{http_server.url}/first/", f"{http_server.url}/second/"),
                       (dl.RemoteFile("a.bin", md5(b"data")),))
    assert dl.fetch(remote, tmp_path)["a.bin"].read_bytes() == b"data"
    assert http_server.requests == ["/first/a.bin", "/second/a.bin"]


def test_offline_message_names_urls_files_and_folder(offline_home, monkeypatch):
    monkeypatch.delenv("KONBU_MIRROR")
    # the published mirrors, but a resolver that fails as it does with no network
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", no_network)
    with pytest.raises(MissingDataError) as caught:
        load_dataset("mnist", "train")
    message = str(caught.value)
    folder = offline_home / "mnist"
    for text in ("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
                 "http://yann.lecun.com/exdb/mnist/t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "Name or service not known", f"put them in {folder}", "--data-dir"):
        assert text in message
    assert not folder.exists() or not list(folder.iterdir())
    assert message.count("Name or service not known") == 2   # each unreachable host is tried once
    assert "http://yann.lecun.com/exdb/mnist/t10k-labels-idx1-ubyte.gz: not tried, yann.lecun.com did not answer" \
        in message


def test_mnist_downloads_checks_and_loads(http_server, monkeypatch, offline_home):
    files, arrays = mnist_files()
    for name, body in files.items():
        http_server.files[f"/mnist/{name}"] = body
    mirrors, _ = mnist_module.TORCHVISION_IDX["MNIST"]
    monkeypatch.setitem(mnist_module.TORCHVISION_IDX, "MNIST", (mirrors, tuple((n, md5(b)) for n, b in files.items())))
    assert not is_available("mnist")
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the downloaded files match their md5s: no warning
        train = load_dataset("mnist", "train")
    assert np.array_equal(train.images[:, 0].numpy(), arrays["train"][0])
    assert is_available("mnist") and sorted(p.name for p in (offline_home / "mnist").iterdir()) == sorted(files)


def test_local_file_with_other_md5_warns_once_then_loads(tmp_path):
    files, arrays = mnist_files()
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)   # right names, not the canonical bytes (like ../shared/data/mnist)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        test = load_dataset("mnist", "test", tmp_path)
        load_dataset("mnist", "train", tmp_path)   # once per file per process: the second load is quiet
    messages = [str(w.message) for w in caught if issubclass(w.category, dl.DataWarning)]
    assert len(messages) == 4 and sorted(m.split(": md5")[0] for m in messages) == sorted(
        str(tmp_path / name) for name in files)
    assert any("md5 " + md5(files["train-images-idx3-ubyte.gz"]) + " differs from the published "
               "f68b3c2dcbeaaa9fbdd348bbdeb94873; loading it anyway" in m for m in messages)
    assert test.labels.tolist() == arrays["test"][1].tolist()


def test_pinned_urls_and_md5s_are_torchvisions():
    import torchvision.datasets as tv

    from konbu.data import cifar, emnist

    for name in ("MNIST", "FashionMNIST", "KMNIST"):
        mirrors, resources = mnist_module.TORCHVISION_IDX[name]
        assert list(mirrors) == getattr(tv, name).mirrors
        assert [tuple(r) for r in resources] == [tuple(r) for r in getattr(tv, name).resources]
    assert (emnist.ARCHIVE_URL, emnist.ARCHIVE_MD5) == (tv.EMNIST.url, tv.EMNIST.md5)
    for name in ("CIFAR10", "CIFAR100"):
        pinned, source = cifar.TORCHVISION_CIFAR[name], getattr(tv, name)
        assert (pinned["url"], pinned["filename"], pinned["tgz_md5"]) == (source.url, source.filename, source.tgz_md5)
        assert pinned["md5s"] == dict(source.train_list + source.test_list + [[source.meta["filename"], source.meta["md5"]]])
