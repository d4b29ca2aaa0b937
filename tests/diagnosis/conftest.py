"""Runs for the diagnose tests: a healthy one every check must leave alone, and `train` to make a
run that shows one finding (a few seconds each on the embedded digits)."""

import pytest

import konbu

HEALTHY = dict(model="mlp", dataset="digits", epochs=20, threads=2)   # ~98% test accuracy in ~3 s of training


@pytest.fixture(scope="session")
def train(tmp_path_factory):
    """train(name, **settings) -> Run: a fresh run directory per call."""
    def make(name, **settings):
        return konbu.fit(out=str(tmp_path_factory.mktemp("diagnose") / name), quiet=True,
                         **{"threads": 2, **settings})
    return make


@pytest.fixture(scope="session")
def healthy(train):
    return train("healthy", **HEALTHY)
