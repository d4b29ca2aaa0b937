"""Test-wide guard: no test downloads anything or writes into the user's ~/.cache/konbu.

KONBU_HOME (downloads and the tensor cache) points at a session temporary folder, and KONBU_MIRROR
at a closed local port, so a dataset file a test forgot to generate fails at once with konbu's
MissingDataError instead of being fetched from the internet. Tests that download start
`http_server`, a real http.server on 127.0.0.1 in a thread that serves `server.files` and can
break transfers off.
"""

import http.server
import threading

import pytest


@pytest.fixture(autouse=True, scope="session")
def _offline_konbu_home(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("KONBU_HOME", str(tmp_path_factory.mktemp("konbu-home")))
    patch.setenv("KONBU_MIRROR", "http://127.0.0.1:9/")   # the discard port: connection refused
    yield
    patch.undo()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests.append(self.path)
        if self.path in server.redirects:   # as the Hugging Face Hub sends a file: a redirect with its hash
            location, headers = server.redirects[self.path]
            self.send_response(302)
            self.send_header("Location", location)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in server.broken:   # promise every byte, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):   # keep pytest's output clean
        pass


@pytest.fixture
def http_server(monkeypatch):
    """A server on 127.0.0.1: put bytes in `server.files["/folder/name"]`; `server.broken` paths
    send a Content-Length and close after half the body; `server.redirects[path] = (location,
    {header: value})` answers 302. KONBU_MIRROR points at it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.broken, server.requests, server.redirects = {}, set(), [], {}
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("KONBU_MIRROR", server.url)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def published_classifier(tmp_path_factory):
    """A small published classifier, as torchvision publishes one: backbone `test-mobilenet`
    (mobilenet_v3_small, random weights, 4 classes, 64x64 input) whose whole state dict is the file
    `tinynet-<sha256[:8]>.pth` at a download.pytorch.org URL. Serve `.data` at `/weights/<.file>` of
    `http_server` to publish it; `.path` is a copy on disk (for --weights)."""
    import hashlib
    import io
    from types import SimpleNamespace

    import torch
    import torchvision

    from konbu.models.backbones import BACKBONES, BackboneEntry, _children_blocks, register_backbone
    from konbu.models.weights import Published

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=4)
    with torch.no_grad():   # torchvision's init answers 25% each: give it statistics and a head that differ per
        torch.nn.init.normal_(model.classifier[-1].weight, std=1.0)        # image, as a trained model's do
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None   # running statistics = those of the batch below
        model.train()(torch.randn(16, 3, 64, 64))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    data = buffer.getvalue()
    file = f"tinynet-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    categories = ("cat", "dog", "fish", "bird")
    published = Published(f"https://download.pytorch.org/models/{file}", categories, crop_size=64, resize_size=72)
    if "test-mobilenet" not in BACKBONES:
        register_backbone(BackboneEntry(
            "test-mobilenet", lambda: torchvision.models.mobilenet_v3_small(num_classes=4), ("features",),
            _children_blocks("features"), published, description="tests: a published 4-class MobileNet"))
    path = tmp_path_factory.mktemp("published") / file
    path.write_bytes(data)
    return SimpleNamespace(name="test-mobilenet", file=file, data=data, path=path, model=model.eval(),
                           categories=categories, published=published)


@pytest.fixture
def one_thread():
    """This process running a single thread, as konbu.forked needs to fork: an earlier test's
    download (torch.hub, huggingface_hub) leaves tqdm's monitor thread behind; stop it."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None and getattr(tqdm, "monitor", None) is not None:
        tqdm.monitor.exit()
        tqdm.monitor = None
    assert threading.active_count() == 1, f"a fork needs one thread; running: {threading.enumerate()}"
