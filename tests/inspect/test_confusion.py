"""konbu.inspect.confusion: the most-confused pairs of a hand-made confusion matrix."""

import warnings

import pytest
import torch
from PIL import Image

from konbu.inspect.confusion import most_confused_pairs
from konbu.inspect.figures import plot_confusion
from konbu.inspect.metrics import confusion_matrix

# rows: true class, columns: predicted class
CONFUSION = torch.tensor([
    [50, 3, 0, 1],
    [0, 40, 0, 0],
    [2, 6, 10, 0],
    [0, 3, 0, 7],
])
CLASSES = ["4", "9", "あ", "7"]


def test_pairs_ranked_by_count_then_fraction():
    pairs = most_confused_pairs(CONFUSION, CLASSES)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("あ", "9", 6),
        ("7", "9", 3),      # 3 of 10: ranks above "4 -> 9", also 3 but of 54
        ("4", "9", 3),
        ("あ", "4", 2),
        ("4", "7", 1),
    ]
    assert pairs[0]["fraction"] == pytest.approx(6 / 18)
    assert pairs[0]["true_index"] == 2 and pairs[0]["predicted_index"] == 1
    assert [p["count"] for p in most_confused_pairs(CONFUSION, CLASSES, k=2)] == [6, 3]


def test_a_perfect_model_has_no_pairs_and_bad_shapes_are_errors():
    labels = torch.tensor([0, 1, 2, 2])
    assert most_confused_pairs(confusion_matrix(labels, labels, 3), ["a", "b", "c"]) == []
    with pytest.raises(ValueError):
        most_confused_pairs(torch.zeros(2, 3), ["a", "b"])
    with pytest.raises(ValueError):
        most_confused_pairs(CONFUSION, CLASSES[:3])


def test_the_confusion_figure_draws_kana_as_glyphs(tmp_path):
    # `konbu show confusion` draws with figures.plot_confusion: its tick labels must not be tofu
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = plot_confusion(CONFUSION, CLASSES, tmp_path / "confusion.png", normalize=True)
    assert not [w for w in caught if "missing from" in str(w.message)], [str(w.message) for w in caught]
    with Image.open(path) as image:
        assert image.format == "PNG"
