"""Test-wide guard: no test downloads anything or writes into the user's ~/.cache/konbu.

KONBU_HOME (downloads and the tensor cache) points at a session temporary folder, and KONBU_MIRROR
at a closed local port, so a dataset file a test forgot to generate fails at once with konbu's
MissingDataError instead of being fetched from the internet.
"""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _offline_konbu_home(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("KONBU_HOME", str(tmp_path_factory.mktemp("konbu-home")))
    patch.setenv("KONBU_MIRROR", "http://127.0.0.1:9/")   # the discard port: connection refused
    yield
    patch.undo()
