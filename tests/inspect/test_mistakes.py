"""konbu.inspect.mistakes: misclassified rows ranked by loss, checked against hand-computed
cross-entropies; the gallery figure, kana titles included."""

import math
import warnings

import pytest
import torch
from PIL import Image

from konbu.inspect.mistakes import find_mistakes, mistake_title, plot_mistakes

# 5 images, 3 classes. Rows 1, 3 and 4 are wrong; row 3 is wrong with the most confidence.
LOGITS = torch.tensor([
    [3.0, 0.0, 0.0],     # label 0: right
    [0.0, 1.0, 0.0],     # label 0: wrong (predicted 1)
    [0.0, 0.0, 2.0],     # label 2: right
    [0.0, 4.0, 0.0],     # label 2: wrong (predicted 1), very sure
    [1.0, 0.0, 1.5],     # label 1: wrong (predicted 2)
])
LABELS = torch.tensor([0, 0, 2, 2, 1])


def loss(row, label):
    """Cross-entropy by hand: log(sum exp) - logit of the true class."""
    return math.log(sum(math.exp(v) for v in row)) - row[label]


def test_mistakes_sorted_by_loss_with_hand_computed_numbers():
    mistakes = find_mistakes(LOGITS, LABELS)
    assert [m["index"] for m in mistakes] == [3, 4, 1]
    for m in mistakes:
        row = LOGITS[m["index"]].tolist()
        assert m["true"] == LABELS[m["index"]]
        assert m["predicted"] == max(range(3), key=lambda k: row[k])
        assert m["loss"] == pytest.approx(loss(row, m["true"]), rel=1e-5)
        softmax = math.exp(row[m["predicted"]]) / sum(math.exp(v) for v in row)
        assert m["probability"] == pytest.approx(softmax, rel=1e-5)
        assert m["true_probability"] == pytest.approx(math.exp(-m["loss"]), rel=1e-5)
    assert mistakes[0]["loss"] == pytest.approx(math.log(math.exp(4) + 2) - 0.0, rel=1e-6)


def test_n_caps_the_list_and_all_right_gives_none():
    assert [m["index"] for m in find_mistakes(LOGITS, LABELS, n=2)] == [3, 4]
    assert find_mistakes(LOGITS, LABELS, n=0) == []
    assert find_mistakes(LOGITS, LOGITS.argmax(dim=1)) == []
    with pytest.raises(ValueError):
        find_mistakes(LOGITS, LABELS[:3])


def test_title_names_true_predicted_and_probability():
    mistake = {"index": 0, "true": 0, "predicted": 4, "probability": 0.873}
    assert mistake_title(mistake, ["あ", "い", "う", "え", "お"]) == "あ → お (87%)"


def test_plot_mistakes_grid_and_the_empty_gallery(tmp_path):
    images = torch.randint(0, 256, (5, 1, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = plot_mistakes(images, find_mistakes(LOGITS, LABELS), ["あ", "い", "う"], tmp_path / "m.png")
    assert not [w for w in caught if "missing from" in str(w.message)], [str(w.message) for w in caught]
    with Image.open(path) as image:
        assert image.format == "PNG"
    empty = plot_mistakes(images, [], ["a", "b", "c"], tmp_path / "none.png")
    with Image.open(empty) as image:
        assert image.format == "PNG"
