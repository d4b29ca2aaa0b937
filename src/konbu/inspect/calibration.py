"""Calibrated percentages: temperature scaling, expected calibration error, reliability diagrams.

    from konbu.inspect.calibration import fit_temperature, expected_calibration_error, plot_reliability
    temperature = fit_temperature(val_logits, val_labels)            # e.g. 1.6: the model was over-confident
    probabilities = (test_logits / temperature).softmax(dim=1)       # what `konbu predict` reports
    expected_calibration_error(probabilities, test_labels)           # 0.012: "90%" means ~90% right
    plot_reliability(val_logits, val_labels, temperature, "figures/calibration.png")

A network trained with cross-entropy is usually over-confident: of the images it calls "98% a 7",
fewer than 98% are sevens. Temperature scaling (Guo et al., "On Calibration of Modern Neural
Networks", 2017) divides every logit by one number T > 0 fitted on the validation split to minimise
the negative log-likelihood. T > 1 softens the probabilities, T < 1 sharpens them; dividing by a
positive number never changes the argmax, so accuracy is exactly the same before and after.

Everything here is a pure function of tensors except `plot_reliability`, which writes a PNG.
"""

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .canvas import new_figure, save_figure, set_margins

DEFAULT_BINS = 15      # Guo et al.'s choice; the figure and the ECE use the same bins
LOG_T_RANGE = 5.0      # T in [e^-5, e^5] = [0.0067, 148]: far beyond any useful temperature


def _check(scores, labels, what):
    scores, labels = torch.as_tensor(scores), torch.as_tensor(labels)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise ValueError(f"expected {what} of shape [N, K], got {tuple(scores.shape)}")
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise ValueError(f"expected labels of shape [N] = [{scores.shape[0]}] to match {what} "
                         f"{tuple(scores.shape)}, got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must be class indices in [0, {scores.shape[1] - 1}]")
    return scores.detach().cpu().double(), labels.detach().cpu().long()


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (cross-entropy) of `logits / temperature`; 0.0 for N = 0."""
    logits, labels = _check(logits, labels, "logits")
    if labels.numel() == 0:
        return 0.0
    return F.cross_entropy(logits / float(temperature), labels).item()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T) on (validation) `logits` [N, K].

    The NLL is convex in b = 1/T: its slope is the mean over images of E_p[z] - z_label (p the
    softmax of b * z) and its curvature the mean variance of the logits z under p. Newton's method
    on b, kept inside a shrinking bracket by bisection, in float64, starting from T = 1, finds the
    global minimum in a few iterations (no torch.optim: no autograd, no compiler import). T stays in
    [e^-5, e^5]; a model that is 100% right on every validation image with growing margins is pushed
    towards the small-T end. Returns 1.0 for no data or non-finite logits.
    """
    logits, labels = _check(logits, labels, "logits")
    if labels.numel() == 0 or not torch.isfinite(logits).all():   # a diverged model: leave the percentages alone
        return 1.0
    true_logit = logits.gather(1, labels[:, None])[:, 0]
    low, high, beta = math.exp(-LOG_T_RANGE), math.exp(LOG_T_RANGE), 1.0
    for _ in range(100):
        p = torch.softmax(beta * logits, dim=1)
        expected = (p * logits).sum(dim=1)
        slope = float((expected - true_logit).mean())
        curvature = float((p * (logits - expected[:, None]) ** 2).sum(dim=1).mean())
        step = slope / curvature if curvature > 0 else math.nan
        if slope == 0 or abs(step) <= 1e-12 * beta:      # at the minimum, to float64's precision
            break
        if slope > 0:
            high = beta
        else:
            low = beta
        beta = beta - step if low < beta - step < high else math.sqrt(low * high)
        if high - low <= 1e-12 * beta:
            break
    value = 1.0 / beta
    # Never worse than doing nothing (a flat, saturated NLL can stop the search anywhere).
    return value if nll(logits, labels, value) <= nll(logits, labels, 1.0) else 1.0


def reliability(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = DEFAULT_BINS) -> dict:
    """Per confidence bin: how sure the model was against how often it was right.

    Confidence is the top probability of each row; bin b holds confidences in (b/bins, (b+1)/bins]
    (equal width; a confidence of exactly 0 goes to the first bin). Returns JSON-ready lists:
    {"bins", "edges" (bins + 1), "confidence" (mean per bin, None if empty), "accuracy" (fraction
    right per bin, None if empty), "count", "n"}.
    """
    probabilities, labels = _check(probabilities, labels, "probabilities")
    if bins < 1:
        raise ValueError(f"need at least one bin, got {bins}")
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).double()
    index = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    count = torch.bincount(index, minlength=bins)
    confidence_sum = torch.bincount(index, weights=confidence, minlength=bins)
    correct_sum = torch.bincount(index, weights=correct, minlength=bins)
    mean = lambda sums: [float(s / c) if c else None for s, c in zip(sums.tolist(), count.tolist())]  # noqa: E731
    return {
        "bins": bins,
        "edges": [b / bins for b in range(bins + 1)],
        "confidence": mean(confidence_sum),
        "accuracy": mean(correct_sum),
        "count": [int(c) for c in count.tolist()],
        "n": int(labels.numel()),
    }


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = DEFAULT_BINS) -> float:
    """ECE: sum over equal-width confidence bins of (bin size / N) * |accuracy(bin) - confidence(bin)|.

    0 is perfectly calibrated; 0.05 means the stated percentages are off by 5 points on average.
    0.0 for N = 0.
    """
    table = reliability(probabilities, labels, bins)
    if table["n"] == 0:
        return 0.0
    return float(sum(count / table["n"] * abs(accuracy - confidence)
                     for count, accuracy, confidence in zip(table["count"], table["accuracy"], table["confidence"])
                     if count))


def calibration_summary(logits: torch.Tensor, labels: torch.Tensor, temperature: float,
                        bins: int = DEFAULT_BINS) -> dict:
    """NLL and ECE before (T = 1) and after temperature scaling: the fields of calibration.json."""
    logits, labels = _check(logits, labels, "logits")
    return {
        "temperature": float(temperature),
        "val_nll_before": nll(logits, labels),
        "val_nll_after": nll(logits, labels, temperature),
        "ece_before": expected_calibration_error(logits.softmax(dim=1), labels, bins),
        "ece_after": expected_calibration_error((logits / temperature).softmax(dim=1), labels, bins),
        "bins": bins,
        "n": int(labels.numel()),
    }


# ----------------------------------------------------------------------------- the figure

def _draw_reliability(ax, hist_ax, table, ece, title, color):
    edges = np.array(table["edges"])
    width = edges[1] - edges[0]
    centres = edges[:-1] + width / 2
    accuracy = np.array([np.nan if a is None else a for a in table["accuracy"]])
    confidence = np.array([np.nan if c is None else c for c in table["confidence"]])
    filled = np.isfinite(accuracy)
    ax.plot([0, 1], [0, 1], color="0.4", linestyle="--", linewidth=1.0, label="perfectly calibrated")
    ax.bar(centres[filled], accuracy[filled], width=width * 0.92, color=color, alpha=0.85, edgecolor="white",
           label="fraction right in the bin")
    # What the model claimed in each bin, as a red tick across the bar: a tick above the bar's top
    # is over-confidence (it said 90%, it was right 70% of the time), below it under-confidence.
    ax.hlines(confidence[filled], centres[filled] - width * 0.46, centres[filled] + width * 0.46, color="#d62728",
              linewidth=2.2, label="mean stated confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}\nECE = {ece:.2%}", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelbottom=False)
    counts = np.array(table["count"])
    hist_ax.bar(centres, counts, width=width * 0.92, color="0.55")
    hist_ax.set_xlim(0, 1)
    hist_ax.set_xlabel("confidence (top probability)")
    hist_ax.set_ylabel("images", fontsize=9)
    hist_ax.tick_params(labelsize=8)


def plot_reliability(logits: torch.Tensor, labels: torch.Tensor, temperature: float, path,
                     bins: int = DEFAULT_BINS) -> Path:
    """Reliability diagram before (T = 1) and after dividing the logits by `temperature`, side by side.

    Each bar is one confidence bin: its height is the fraction of that bin's images the model got
    right. On a calibrated model the bars reach the diagonal; bars below it mean over-confidence.
    Under each panel, how many images fell in each bin. ECE is in each panel's title and legend.
    """
    logits, labels = _check(logits, labels, "logits")
    temperature = float(temperature)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    figure = set_margins(new_figure(10, 5.6, layout=None), 0.6, 0.45, 0.15, 0.75, across=0.75, down=0.2, columns=2,
                         rows=2)
    grid = figure.add_gridspec(2, 2, height_ratios=[4, 1])
    panels = (
        (logits.softmax(dim=1), "Before: raw softmax (T = 1)", "#1f77b4", 0),
        ((logits / temperature).softmax(dim=1), f"After temperature scaling (T = {temperature:.3g})", "#2ca02c", 1),
    )
    for probabilities, title, color, column in panels:
        ax = figure.add_subplot(grid[0, column])
        hist_ax = figure.add_subplot(grid[1, column])
        table = reliability(probabilities, labels, bins)
        ece = expected_calibration_error(probabilities, labels, bins)
        _draw_reliability(ax, hist_ax, table, ece, title, color)
    figure.suptitle(f"Calibration on {labels.numel():,} validation images: do the percentages mean what they say?",
                    fontsize=12)
    return save_figure(figure, path)
