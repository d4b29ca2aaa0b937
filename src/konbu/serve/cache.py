"""Each run's model, datasets and test predictions, loaded once and kept while the server runs.

A run is loaded on its first request (Run.load: model, weights, preprocessing, temperature) and
answers every later one from memory. A run that is still training saves better weights as it goes,
so an entry is keyed by the modification times of its weights and calibration files: new weights
mean a fresh load on the next request, never a stale answer. The test split's probabilities (what
the confusion-cell and mistake views read) are computed once per loaded model.
"""

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..runs import CALIBRATION_FILE, WEIGHTS_FILE, Run


@dataclass
class Loaded:
    run: Run
    stamp: tuple
    lock: threading.Lock = field(default_factory=threading.Lock)   # guards the lazily filled fields below
    # one model call at a time: feature maps and Grad-CAM hook the model's modules, and a concurrent
    # forward pass would fire those hooks with another request's image
    model_lock: threading.Lock = field(default_factory=threading.Lock)
    splits: dict = field(default_factory=dict)         # "train"/"test" -> Dataset
    test_probabilities: torch.Tensor | None = None     # [N, K] calibrated, for the test split


def _stamp(path: Path) -> tuple:
    stamps = []
    for name in (WEIGHTS_FILE, CALIBRATION_FILE):
        try:
            stat = os.stat(path / name)
            stamps.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


class RunCache:
    """path -> Loaded. Thread-safe: the server answers requests on a thread pool."""

    def __init__(self, device="cpu"):
        self.device = device
        self.entries: dict = {}
        self.lock = threading.Lock()

    def get(self, path: Path) -> Loaded:
        stamp = _stamp(path)
        with self.lock:
            entry = self.entries.get(path)
            if entry is None or entry.stamp != stamp:
                entry = Loaded(Run.load(path, device=self.device), stamp)
                self.entries[path] = entry
            return entry

    def split(self, path: Path, name: str):
        """The run's own dataset split ("train" or "test"), loaded once (KonbuError when the data is
        not on this machine)."""
        entry = self.get(path)
        with entry.lock:
            if name not in entry.splits:
                train, test = entry.run.data()
                entry.splits.update(train=train, test=test)
            return entry.splits[name]

    def test_probabilities(self, path: Path) -> tuple:
        """(the test split, its calibrated probabilities [N, K])."""
        test = self.split(path, "test")
        entry = self.get(path)
        with entry.lock, entry.model_lock:
            if entry.test_probabilities is None:
                entry.test_probabilities = entry.run.probabilities(test.images).float().cpu()
            return test, entry.test_probabilities
