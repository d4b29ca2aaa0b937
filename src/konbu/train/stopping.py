"""Which epoch is best, and when to stop early (Keras's ModelCheckpoint + EarlyStopping, in one).

    monitor = Monitor("val_loss", patience=3, min_delta=1e-3)
    if monitor.update(record): save_weights(...)     # a new best epoch
    if monitor.should_stop: break

Without a validation split a `val_*` monitor has nothing to watch: the latest epoch counts as the
best (what we know), and early stopping needs a split (ConfigError in fit).

`improved(name, value, best, min_delta)` is the one "has it improved" rule: the plateau learning-rate
schedule (schedule.py) uses it too, so the two can never disagree about what counts as better.

    PYTHONPATH=src python -m pytest tests/train/test_stopping.py -q
"""

from .config import MONITORS


def improved(name: str, value: float, best: float | None, min_delta: float = 0.0) -> bool:
    """True when `value` of the MONITORS metric `name` beats `best` by more than `min_delta`.

    The first value (best is None) always counts. Like Keras, the margin is strict: a change of
    exactly `min_delta` is not an improvement, so with min_delta 0 a tie is not one either.
    """
    if best is None:
        return True
    if MONITORS[name] == "max":
        return value > best + min_delta
    return value < best - min_delta


class Monitor:
    def __init__(self, name: str, patience: int | None = None, min_delta: float = 0.0):
        self.name = name                     # a MONITORS key, or "latest"
        self.patience = patience
        self.min_delta = min_delta
        self.best = None                     # the best value so far
        self.best_epoch = 0                  # 0: no epoch yet (the initial weights are the best we have)
        self.wait = 0                        # epochs since the last improvement

    def update(self, record: dict) -> bool:
        """Take an epoch record; True when it is the new best."""
        if self.name == "latest":
            self.best, self.best_epoch = record["epoch"], record["epoch"]
            return True
        value = record[self.name]
        better = improved(self.name, value, self.best, self.min_delta)
        if better:
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
        else:
            self.wait += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.wait >= self.patience

    def state_dict(self):
        return {"name": self.name, "best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
