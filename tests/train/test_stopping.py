"""Tests for konbu.train.stopping: which epoch is best (max and min metrics, min_delta), when
early stopping fires (patience), the "latest" monitor, and the state saved for resume.

    PYTHONPATH=src python -m pytest tests/train/test_stopping.py -q
"""

import pytest
import torch

from konbu.train.schedule import make_schedule
from konbu.train.stopping import Monitor, improved


def feed(monitor, name, values):
    """Epochs 1.. with `values` of `name`; the list of update() answers."""
    return [monitor.update({"epoch": epoch, name: value}) for epoch, value in enumerate(values, start=1)]


def test_max_mode_keeps_the_highest():
    monitor = Monitor("val_accuracy")
    assert feed(monitor, "val_accuracy", [0.5, 0.7, 0.6, 0.8, 0.8]) == [True, True, False, True, False]
    assert monitor.best == 0.8 and monitor.best_epoch == 4 and monitor.wait == 1


def test_min_mode_keeps_the_lowest():
    monitor = Monitor("val_loss")
    assert feed(monitor, "val_loss", [1.0, 0.7, 0.9, 0.4, 0.4]) == [True, True, False, True, False]
    assert monitor.best == 0.4 and monitor.best_epoch == 4 and monitor.wait == 1


def test_a_tied_accuracy_with_a_lower_loss_is_the_new_best_epoch_but_not_an_improvement():
    monitor = Monitor("val_accuracy", patience=3)
    records = [(0.9, 0.50), (0.95, 0.40), (0.95, 0.45), (0.95, 0.30), (0.95, 0.30), (0.9, 0.20)]
    answers = [monitor.update({"epoch": epoch, "val_accuracy": accuracy, "val_loss": loss})
               for epoch, (accuracy, loss) in enumerate(records, start=1)]
    # epoch 3 ties with a higher loss, epoch 5 with the same loss: neither is a new best; 6 is worse
    assert answers == [True, True, False, True, False, False]
    assert (monitor.best, monitor.best_epoch, monitor.best_loss) == (0.95, 4, 0.30)
    assert monitor.wait == 4 and monitor.should_stop          # patience counts the tie (Keras's rule)
    resumed = Monitor("val_accuracy", patience=3)
    resumed.load_state_dict(monitor.state_dict())
    assert resumed.update({"epoch": 7, "val_accuracy": 0.95, "val_loss": 0.25})   # the restored loss is the bar
    old = Monitor("val_accuracy")    # a checkpoint from before tie-breaks has no best_loss: the next tie wins
    old.load_state_dict({"name": "val_accuracy", "best": 0.95, "best_epoch": 2, "wait": 0})
    assert old.update({"epoch": 3, "val_accuracy": 0.95, "val_loss": 0.9}) and old.best_epoch == 3


def test_a_loss_monitor_has_no_tie_break():
    monitor = Monitor("val_loss")
    answers = [monitor.update({"epoch": epoch, "val_loss": 0.5, "val_accuracy": accuracy})
               for epoch, accuracy in enumerate([0.8, 0.9], start=1)]
    assert answers == [True, False] and monitor.best_epoch == 1


def test_min_delta_is_a_strict_margin():
    monitor = Monitor("val_loss", min_delta=0.1)
    # 0.95: better by only 0.05; 0.9: by exactly min_delta, not more; 0.85: by 0.15
    assert feed(monitor, "val_loss", [1.0, 0.95, 0.9, 0.85]) == [True, False, False, True]
    assert monitor.best == 0.85 and monitor.best_epoch == 4
    higher = Monitor("train_accuracy", min_delta=0.1)
    assert feed(higher, "train_accuracy", [0.5, 0.55, 0.65]) == [True, False, True]


def test_patience_stops_after_that_many_epochs_without_improvement():
    monitor = Monitor("val_accuracy", patience=2)
    answers = []
    for epoch, value in enumerate([0.5, 0.6, 0.6, 0.7, 0.65, 0.6], start=1):
        monitor.update({"epoch": epoch, "val_accuracy": value})
        answers.append(monitor.should_stop)
    # epoch 3 is the first without improvement, epoch 4 improves and resets the count
    assert answers == [False, False, False, False, False, True]


def test_without_patience_it_never_stops():
    monitor = Monitor("val_loss")
    feed(monitor, "val_loss", [1.0] + [2.0] * 50)
    assert monitor.wait == 50 and not monitor.should_stop


def test_latest_counts_every_epoch_as_the_best():
    monitor = Monitor("latest", patience=1)
    assert [monitor.update({"epoch": epoch}) for epoch in (1, 2, 3)] == [True, True, True]
    assert monitor.best_epoch == 3 and monitor.wait == 0 and not monitor.should_stop


def test_state_dict_round_trip_resumes_the_count():
    monitor = Monitor("val_loss", patience=3, min_delta=0.01)
    feed(monitor, "val_loss", [1.0, 0.5, 0.6, 0.7])
    state = monitor.state_dict()
    assert state == {"name": "val_loss", "best": 0.5, "best_epoch": 2, "best_loss": None, "wait": 2}
    resumed = Monitor("val_loss", patience=3, min_delta=0.01)
    resumed.load_state_dict(state)
    assert (resumed.best, resumed.best_epoch, resumed.wait) == (0.5, 2, 2)
    assert not resumed.update({"epoch": 5, "val_loss": 0.495})   # within min_delta of the restored best
    assert resumed.should_stop


@pytest.mark.parametrize("name, value, best, min_delta, expected", [
    ("val_accuracy", 0.1, None, 0.5, True),      # the first value always counts
    ("val_accuracy", 0.61, 0.6, 0.0, True),
    ("val_accuracy", 0.6, 0.6, 0.0, False),      # a tie is not an improvement
    ("val_loss", 0.59, 0.6, 0.0, True),
    ("val_loss", 0.61, 0.6, 0.0, False),
    ("train_loss", 0.55, 0.6, 0.1, False),
    ("train_loss", 0.45, 0.6, 0.1, True),
])
def test_improved_is_the_shared_rule(name, value, best, min_delta, expected):
    assert improved(name, value, best, min_delta) is expected


def test_the_plateau_schedule_and_the_monitor_agree_on_what_improved():
    monitor = Monitor("val_loss", min_delta=1e-3)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = make_schedule("plateau:min_delta=0.001,patience=100", optimizer, 100)
    for epoch, value in enumerate([1.0, 0.9, 0.9, 0.8995, 0.85, 0.86, 0.7], start=1):
        record = {"epoch": epoch, "val_loss": value}
        monitor.update(record)
        schedule.epoch_end(record)
        assert (schedule.best, schedule.bad_epochs) == (monitor.best, monitor.wait)
