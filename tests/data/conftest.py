"""Fixtures for the data tests: a private KONBU_HOME, no internet, and a local HTTP server.

Every test here runs with KONBU_HOME in a temporary folder (so the tensor cache and downloads never
touch ~/.cache/konbu) and KONBU_MIRROR pointing at a closed local port (so a missing file fails at
once instead of reaching the internet). Tests that download start `http_server`, a real
http.server on 127.0.0.1 in a thread that serves `server.files` and can break transfers off.
"""

import http.server
import threading

import pytest


@pytest.fixture(autouse=True)
def offline_home(tmp_path, monkeypatch):
    home = tmp_path / "konbu-home"
    monkeypatch.setenv("KONBU_HOME", str(home))
    monkeypatch.setenv("KONBU_MIRROR", "http://127.0.0.1:9/")   # discard port: connection refused
    return home


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests.append(self.path)
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
    send a Content-Length and close after half the body. KONBU_MIRROR points at it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.broken, server.requests = {}, set(), []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("KONBU_MIRROR", server.url)
    yield server
    server.shutdown()
    server.server_close()
