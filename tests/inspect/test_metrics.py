"""konbu.inspect.metrics against scikit-learn and torch.topk as answer keys, plus hand-made cases."""

import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm

from konbu.inspect.metrics import (
    accuracy,
    balanced_accuracy,
    classification_metrics,
    confusion_matrix,
    normalized_confusion,
    per_class_report,
    top_k_accuracy,
)


def random_case(seed, n=300, k=7, skip_class=None):
    """Random logits/targets; with skip_class, that class never occurs in the targets."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g)
    targets = torch.randint(0, k, (n,), generator=g)
    # Make predictions better than chance, so the matrices are not uniform noise.
    logits[torch.arange(n), targets] += 1.5 * torch.rand(n, generator=g)
    if skip_class is not None:
        targets[targets == skip_class] = (skip_class + 1) % k
    return logits, targets


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("skip_class", [None, 2])
def test_confusion_matrix_matches_sklearn(seed, skip_class):
    logits, targets = random_case(seed, skip_class=skip_class)
    predictions = logits.argmax(1)
    ours = confusion_matrix(predictions, targets, 7)
    expected = skm.confusion_matrix(targets.numpy(), predictions.numpy(), labels=list(range(7)))
    assert ours.dtype == torch.int64
    assert ours.tolist() == expected.tolist()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("skip_class", [None, 2])
def test_per_class_report_matches_sklearn(seed, skip_class):
    logits, targets = random_case(seed, skip_class=skip_class)
    predictions = logits.argmax(1)
    report = per_class_report(confusion_matrix(predictions, targets, 7))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        targets.numpy(), predictions.numpy(), labels=list(range(7)), zero_division=0
    )
    assert [row["class"] for row in report] == list(range(7))
    assert [row["precision"] for row in report] == pytest.approx(precision.tolist())
    assert [row["recall"] for row in report] == pytest.approx(recall.tolist())
    assert [row["f1"] for row in report] == pytest.approx(f1.tolist())
    assert [row["support"] for row in report] == support.tolist()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("skip_class", [None, 2])
def test_balanced_accuracy_matches_sklearn(seed, skip_class):
    logits, targets = random_case(seed, skip_class=skip_class)
    predictions = logits.argmax(1)
    with warnings.catch_warnings():
        # sklearn warns when a predicted class is absent from y_true, then leaves it out as we do.
        warnings.simplefilter("ignore")
        expected = skm.balanced_accuracy_score(targets.numpy(), predictions.numpy())
    assert balanced_accuracy(confusion_matrix(predictions, targets, 7)) == pytest.approx(expected)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
def test_top_k_accuracy_matches_torch_topk(k):
    logits, targets = random_case(11)
    top = torch.topk(logits, k, dim=1).indices
    expected = sum(int(t in row) for t, row in zip(targets.tolist(), top.tolist())) / len(targets)
    assert top_k_accuracy(logits, targets, k) == pytest.approx(expected)
    assert top_k_accuracy(logits, targets, 7) == 1.0


def test_accuracy_matches_sklearn_and_top1():
    logits, targets = random_case(5)
    expected = skm.accuracy_score(targets.numpy(), logits.argmax(1).numpy())
    assert accuracy(logits, targets) == pytest.approx(expected)
    assert accuracy(logits, targets) == pytest.approx(top_k_accuracy(logits, targets, 1))
    # Probabilities give the same answer as logits: only the argmax matters.
    assert accuracy(logits.softmax(1), targets) == pytest.approx(expected)


def test_hand_made_two_class_case():
    # true:      0 0 0 1 1
    # predicted: 0 0 1 1 0
    predictions = torch.tensor([0, 0, 1, 1, 0])
    targets = torch.tensor([0, 0, 0, 1, 1])
    confusion = confusion_matrix(predictions, targets, 2)
    assert confusion.tolist() == [[2, 1], [1, 1]]
    class0, class1 = per_class_report(confusion)
    assert class0 == {"class": 0, "precision": 2 / 3, "recall": 2 / 3, "f1": pytest.approx(2 / 3), "support": 3}
    assert class1["precision"] == 0.5 and class1["recall"] == 0.5 and class1["support"] == 2
    assert balanced_accuracy(confusion) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_perfect_and_all_wrong_predictions():
    targets = torch.tensor([0, 1, 2, 2])
    perfect = F.one_hot(targets, 3).float()
    assert accuracy(perfect, targets) == 1.0
    confusion = confusion_matrix(targets, targets, 3)
    assert balanced_accuracy(confusion) == 1.0
    assert all(row["f1"] == 1.0 for row in per_class_report(confusion))

    wrong = (targets + 1) % 3
    assert accuracy(F.one_hot(wrong, 3).float(), targets) == 0.0
    assert all(row["f1"] == 0.0 for row in per_class_report(confusion_matrix(wrong, targets, 3)))


def test_undefined_values_are_zero_not_nan():
    # Class 2 is never predicted and never true: every rate for it is undefined.
    confusion = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 0]), 3)
    report = per_class_report(confusion)
    assert report[1] == {"class": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report[2] == {"class": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert balanced_accuracy(confusion) == 0.5          # only class 0 has support
    assert balanced_accuracy(torch.zeros(3, 3, dtype=torch.int64)) == 0.0


def test_normalized_confusion_rows_sum_to_one_or_zero():
    logits, targets = random_case(3, skip_class=4)
    normalized = normalized_confusion(confusion_matrix(logits.argmax(1), targets, 7))
    assert normalized.min() >= 0 and normalized.max() <= 1
    sums = normalized.sum(1)
    assert sums[4] == 0
    assert torch.allclose(sums[torch.arange(7) != 4], torch.ones(6, dtype=sums.dtype))


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        accuracy(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        accuracy(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="k="):
        top_k_accuracy(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="class indices"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="class names"):
        classification_metrics(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), ["a", "b"])


def test_classification_metrics_dict():
    logits, targets = random_case(7, n=200, k=7)
    classes = [f"c{i}" for i in range(7)]
    metrics = classification_metrics(logits, targets, classes)
    assert json.loads(json.dumps(metrics)) == metrics      # plain JSON types only
    assert list(metrics) == ["n", "loss", "accuracy", "top5_accuracy", "balanced_accuracy", "per_class", "confusion"]
    assert metrics["n"] == 200
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, targets).item())
    assert metrics["accuracy"] == pytest.approx(accuracy(logits, targets))
    assert metrics["top5_accuracy"] == pytest.approx(top_k_accuracy(logits, targets, 5))
    assert [row["label"] for row in metrics["per_class"]] == classes
    assert set(metrics["per_class"][0]) == {"label", "precision", "recall", "f1", "support"}
    assert sum(row["support"] for row in metrics["per_class"]) == 200
    assert metrics["confusion"] == confusion_matrix(logits.argmax(1), targets, 7).tolist()
    for value in (metrics["loss"], metrics["accuracy"], metrics["balanced_accuracy"]):
        assert type(value) is float


def test_classification_metrics_few_classes_and_given_loss():
    logits, targets = random_case(8, n=50, k=3)
    metrics = classification_metrics(logits.half(), targets, ("a", "b", "c"), loss=0.25)
    assert "top5_accuracy" not in metrics
    assert metrics["loss"] == 0.25
    empty = classification_metrics(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), ("a", "b", "c"))
    assert empty["n"] == 0 and empty["loss"] == 0.0 and empty["accuracy"] == 0.0
