"""Runs to serve, the app in-process (TestClient) and a real server on a free port (browser tests).

`runs` holds two trained runs: "digits" (tfjs-mnist on the embedded MNIST sample, 3 epochs: good
enough to read a "1" drawn with a mouse) and "kana" (the same net on a few MNIST digits renamed to
hiragana, so pages and answers must show the glyphs). Both are trained once per test session.
"""

import shutil
import socket
import threading
import time

import pytest
import torch

import konbu
from konbu.data import DatasetInfo, load_dataset, register_dataset
from konbu.data._registry import list_datasets

KANA = ("あ", "い", "う", "え", "お", "か", "き", "く", "け", "こ")
TINY_KANA = "tiny-kana"

if TINY_KANA not in list_datasets():
    @register_dataset(DatasetInfo(name=TINY_KANA, classes=KANA, image_shape=(1, 28, 28),
                                  split_sizes={"train": 500, "test": 100}, source="tests: mnist-sample, renamed",
                                  aliases=("a", "i", "u", "e", "o", "ka", "ki", "ku", "ke", "ko")))
    def _tiny_kana(data_dir):
        train, test = load_dataset("mnist-sample", "train"), load_dataset("mnist-sample", "test")
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:500]
        return {"train": (train.images[pick], train.labels[pick]), "test": (test.images[:100], test.labels[:100])}


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A runs folder with "digits" and "kana", trained once; tests copy it before changing it."""
    runs = tmp_path_factory.mktemp("served") / "runs"
    konbu.fit(model="tfjs-mnist", epochs=3, out=str(runs / "digits"), quiet=True)
    konbu.fit(model="tfjs-mnist", dataset=TINY_KANA, epochs=1, out=str(runs / "kana"), quiet=True)
    return runs


@pytest.fixture
def runs(trained, tmp_path):
    """A copy of the trained runs folder this test may change."""
    copy = tmp_path / "runs"
    shutil.copytree(trained, copy)
    return copy


@pytest.fixture
def client(runs):
    from fastapi.testclient import TestClient

    from konbu.serve import create_app

    with TestClient(create_app(runs), base_url="http://127.0.0.1") as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(runs):
    """`konbu serve` on 127.0.0.1 and a free port, in a thread: yields its base URL."""
    import uvicorn

    from konbu.serve import create_app

    port = free_port()
    app = create_app(runs)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
