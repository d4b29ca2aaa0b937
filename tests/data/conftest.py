"""Fixtures for the data tests: a private KONBU_HOME and no internet.

Every test here runs with KONBU_HOME in a temporary folder (so the tensor cache and downloads never
touch ~/.cache/konbu) and KONBU_MIRROR pointing at a closed local port (so a missing file fails at
once instead of reaching the internet). Tests that download start `http_server` (tests/conftest.py).
"""

import pytest


@pytest.fixture(autouse=True)
def offline_home(tmp_path, monkeypatch):
    home = tmp_path / "konbu-home"
    monkeypatch.setenv("KONBU_HOME", str(home))
    monkeypatch.setenv("KONBU_MIRROR", "http://127.0.0.1:9/")   # discard port: connection refused
    return home
