"""`konbu serve`: starts, answers, stops on Ctrl-C; refuses an open host without a token; names the
extra when the web packages are missing.

    .venv/bin/python -m pytest tests/cli/test_serve.py -q
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from konbu.cli.testing import invoke as konbu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_answers_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "konbu", "serve", "--runs", str(tmp_path), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    assert json.load(answer) == {"status": "ok"}
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "konbu serve did not answer within 60 s"
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=5) as answer:
            assert json.load(answer) == []
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{port}/" in output


def test_an_open_host_needs_a_token(tmp_path):
    result = konbu("serve", "--runs", tmp_path, "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert "--token" in result.output and "Traceback" not in result.output


def test_missing_web_extra_names_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    result = konbu("serve", "--runs", tmp_path)
    assert result.exit_code == 2
    assert "pip install 'konbu[web]'" in result.output and "fastapi" in result.output
