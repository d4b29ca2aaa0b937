"""Which classes a model mixes up most: the off-diagonal of the confusion matrix, ranked.

    from konbu.inspect.confusion import most_confused_pairs
    most_confused_pairs(metrics["confusion"], classes, k=5)
    # [{"true": "4", "predicted": "9", "count": 12, "fraction": 0.12}, ...]

    konbu show confusion RUN [--normalize]

`fraction` is the count divided by the number of images of the true class, so a rare class that
is always mistaken ranks by its count but reads as 100%.
"""

import torch


def most_confused_pairs(confusion, classes, k: int = 10) -> list:
    """The `k` largest off-diagonal cells of a [K, K] confusion matrix (rows true, columns
    predicted), largest count first (ties: larger fraction, then row-major order); zero cells are
    left out. Each is {"true", "predicted" (class names), "true_index", "predicted_index",
    "count", "fraction"}."""
    counts = torch.as_tensor(confusion).detach().cpu().long()
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"expected a square confusion matrix [K, K], got {tuple(counts.shape)}")
    if len(classes) != counts.shape[0]:
        raise ValueError(f"got {len(classes)} class names for a {counts.shape[0]}x{counts.shape[0]} confusion matrix")
    support = counts.sum(dim=1)
    pairs = []
    for i, j in (counts * (1 - torch.eye(counts.shape[0], dtype=torch.long))).nonzero().tolist():
        count = int(counts[i, j])
        pairs.append({"true": str(classes[i]), "predicted": str(classes[j]), "true_index": i, "predicted_index": j,
                      "count": count, "fraction": count / int(support[i])})
    pairs.sort(key=lambda pair: (-pair["count"], -pair["fraction"], pair["true_index"], pair["predicted_index"]))
    return pairs[:max(k, 0)]
