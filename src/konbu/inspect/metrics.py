"""Classification metrics as pure functions of tensors.

    from konbu.inspect.metrics import classification_metrics
    metrics = classification_metrics(logits, targets, classes)   # JSON-ready dict
    metrics["accuracy"], metrics["per_class"][3]["recall"], metrics["confusion"]

Every function takes tensors (on any device) and returns plain Python numbers, lists and dicts,
so results go straight into run.json / metrics.jsonl and the CLI/web app without conversion.
Conventions follow scikit-learn, which the tests use as the answer key:

- the confusion matrix has true classes as rows and predicted classes as columns;
- precision, recall and F1 are 0 (never NaN) where undefined (no predictions / no support),
  like sklearn's `zero_division=0`;
- balanced accuracy is the mean recall over the classes that occur in the targets.

An empty batch (N = 0) gives 0.0 for every rate rather than NaN, so a report never shows "nan".
"""

import torch
import torch.nn.functional as F


def _check_scores_targets(scores, targets):
    if scores.ndim != 2:
        raise ValueError(f"expected scores of shape [N, K] (logits or probabilities), got {tuple(scores.shape)}")
    if targets.ndim != 1 or targets.shape[0] != scores.shape[0]:
        raise ValueError(
            f"expected targets of shape [N] = [{scores.shape[0]}] to match scores {tuple(scores.shape)}, "
            f"got {tuple(targets.shape)}"
        )


def accuracy(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows of `scores` [N, K] (logits or probabilities) whose argmax equals `targets` [N]."""
    _check_scores_targets(scores, targets)
    if targets.numel() == 0:
        return 0.0
    return (scores.argmax(dim=1) == targets).double().mean().item()  # double: 0.977, not 0.9769999980926514


def top_k_accuracy(scores: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    """Fraction of rows whose target is among the `k` highest scores (ties broken as torch.topk does)."""
    _check_scores_targets(scores, targets)
    num_classes = scores.shape[1]
    if not 1 <= k <= num_classes:
        # Keras silently answers 1.0 for k > K; an error is clearer than a meaningless perfect score.
        raise ValueError(f"top-k accuracy needs 1 <= k <= number of classes ({num_classes}), got k={k}")
    if targets.numel() == 0:
        return 0.0
    top = scores.topk(k, dim=1).indices                          # [N, k]
    return (top == targets[:, None]).any(dim=1).double().mean().item()


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts [K, K] int64: entry (i, j) is the number of samples of true class i predicted as j."""
    if predictions.shape != targets.shape or predictions.ndim != 1:
        raise ValueError(
            f"expected predictions and targets of the same shape [N], got {tuple(predictions.shape)} "
            f"and {tuple(targets.shape)}"
        )
    predictions, targets = predictions.long(), targets.long()
    for name, values in (("predictions", predictions), ("targets", targets)):
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} must be class indices in [0, {num_classes - 1}], "
                f"found values from {values.min().item()} to {values.max().item()}"
            )
    # One bincount over the flattened (true, predicted) pair index: a single kernel, no Python loop.
    flat = targets * num_classes + predictions
    counts = torch.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _check_confusion(confusion):
    confusion = torch.as_tensor(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"expected a square confusion matrix [K, K], got {tuple(confusion.shape)}")
    return confusion


def _safe_divide(numerator, denominator):
    # 0 where the denominator is 0: an undefined precision/recall is reported as 0, not NaN.
    defined = denominator > 0
    safe = torch.where(defined, denominator, torch.ones_like(denominator))
    return torch.where(defined, numerator / safe, torch.zeros_like(numerator))


def per_class_report(confusion) -> list:
    """Per class: {"class", "precision", "recall", "f1", "support"} from a [K, K] confusion matrix."""
    confusion = _check_confusion(confusion).double()
    true_positives = confusion.diagonal()
    support = confusion.sum(dim=1)          # row sums: how many samples truly are this class
    predicted = confusion.sum(dim=0)        # column sums: how often this class was predicted
    precision = _safe_divide(true_positives, predicted)
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return [
        {
            "class": index,
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(s),
        }
        for index, (p, r, f, s) in enumerate(zip(precision.tolist(), recall.tolist(), f1.tolist(), support.tolist()))
    ]


def balanced_accuracy(confusion) -> float:
    """Mean recall over classes with support > 0 (classes absent from the targets are left out)."""
    confusion = _check_confusion(confusion).double()
    support = confusion.sum(dim=1)
    present = support > 0
    if not present.any():
        return 0.0
    recall = confusion.diagonal()[present] / support[present]
    return recall.mean().item()


def normalized_confusion(confusion) -> torch.Tensor:
    """The confusion matrix with each row divided by its sum (row i: where class i's samples went).

    Rows of classes with no samples stay all zero. Values lie in [0, 1]; the diagonal is recall.
    """
    confusion = _check_confusion(confusion).double()
    support = confusion.sum(dim=1, keepdim=True)
    return _safe_divide(confusion, support.expand_as(confusion))


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, classes, loss=None) -> dict:
    """Everything a run reports about one split, as a JSON-serialisable dict.

    Keys: "n", "loss" (mean cross-entropy of `logits`, unless `loss` is given), "accuracy",
    "top5_accuracy" (only with 5 or more classes), "balanced_accuracy",
    "per_class" (list of {"label", "precision", "recall", "f1", "support"}), "confusion" (K lists of K).
    """
    _check_scores_targets(logits, targets)
    num_classes = logits.shape[1]
    if len(classes) != num_classes:
        raise ValueError(f"got {len(classes)} class names for {num_classes} columns of logits")
    targets = targets.long()
    n = targets.shape[0]
    if loss is None:
        # float(): half-precision logits (AMP) would lose digits in the cross-entropy sum.
        loss = F.cross_entropy(logits.float(), targets).item() if n else 0.0
    confusion = confusion_matrix(logits.argmax(dim=1), targets, num_classes)
    metrics = {
        "n": int(n),
        "loss": float(loss),
        "accuracy": accuracy(logits, targets),
    }
    if num_classes >= 5:
        metrics["top5_accuracy"] = top_k_accuracy(logits, targets, 5)
    metrics["balanced_accuracy"] = balanced_accuracy(confusion)
    metrics["per_class"] = [
        {
            "label": str(label),
            "precision": row["precision"],
            "recall": row["recall"],
            "f1": row["f1"],
            "support": row["support"],
        }
        for label, row in zip(classes, per_class_report(confusion))
    ]
    metrics["confusion"] = confusion.cpu().tolist()
    return metrics
