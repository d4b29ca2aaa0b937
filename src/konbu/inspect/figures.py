"""Figures of a run, drawn with matplotlib's Agg renderer and written atomically as PNG.

    from konbu.inspect.figures import plot_curves, plot_confusion, plot_input_check
    plot_curves(records, run_dir / "figures" / "curves.png")        # records: metrics.jsonl lines
    plot_confusion(confusion, classes, run_dir / "figures" / "confusion.png")
    plot_input_check(model_input, examples, "7", 0.98, "input.png")  # `konbu predict --show-input`

    python -m pytest tests/inspect/test_figures.py

Each figure is drawn on konbu.inspect.canvas (an Agg figure, never pyplot; the PNG written
atomically). Every function returns the path it wrote.
"""

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from .canvas import display_image, new_figure, save_figure, set_margins
from .fonts import display_label, label_font
from .metrics import normalized_confusion
from .smoothing import centred_average

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#d62728"
ANNOTATE_MAX_CLASSES = 20   # beyond this, numbers in the cells are too small to read


# ----------------------------------------------------------------------------- training curves

def _series(records, kind, x_key, y_key):
    points = [
        (record[x_key], record[y_key])
        for record in records
        if record.get("kind") == kind and record.get(x_key) is not None and record.get(y_key) is not None
    ]
    points.sort(key=lambda point: point[0])
    return np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float)


def _draw_panel(ax, records, name):
    """One panel: train per batch (thin + smoothed), train/val per epoch as markers."""
    batch_x, batch_y = _series(records, "batch", "step", name)
    epoch_train_x, epoch_train_y = _series(records, "epoch", "step", f"train_{name}")
    val_x, val_y = _series(records, "epoch", "step", f"val_{name}")
    if len(batch_x):
        # A raw per-batch line is noisy (each batch is a small sample); the smoothed line is the trend.
        smooth = len(batch_x) >= 10
        ax.plot(batch_x, batch_y, color=TRAIN_COLOR, linewidth=0.7, alpha=0.35 if smooth else 1.0,
                label="training (each batch)")
        if smooth:
            window = max(3, len(batch_x) // 25) | 1
            ax.plot(batch_x, centred_average(batch_y, window), color=TRAIN_COLOR, linewidth=2.0,
                    label="training (smoothed)")
    elif len(epoch_train_x):
        # No per-batch log (e.g. logging switched off): fall back on the epoch means.
        ax.plot(epoch_train_x, epoch_train_y, color=TRAIN_COLOR, marker="o", linewidth=1.5,
                label="training (epoch mean)")
    if len(val_x):
        ax.plot(val_x, val_y, color=VAL_COLOR, marker="o", markersize=6, linestyle="--", linewidth=1.0,
                label="validation (end of each epoch)")
    return len(batch_x) + len(epoch_train_x) + len(val_x) > 0


def _epoch_axis(ax, records):
    """Label the top of a panel with epoch numbers at the step each epoch ended."""
    ends = sorted({(r["step"], r["epoch"]) for r in records
                   if r.get("kind") == "epoch" and r.get("step") is not None and r.get("epoch") is not None})
    if not ends:
        return
    stride = max(1, math.ceil(len(ends) / 12))   # at most ~12 labels, always including the last epoch
    shown = ends[::-1][::stride][::-1]
    top = ax.secondary_xaxis("top")
    top.set_xticks([step for step, _ in shown], [str(epoch) for _, epoch in shown])
    top.set_xlabel("end of epoch", fontsize=9)
    top.tick_params(labelsize=8)
    for step, _ in ends:
        ax.axvline(step, color="0.85", linewidth=0.8, zorder=0)


def plot_curves(records, path) -> Path:
    """Loss and accuracy against training step, from a run's metrics.jsonl records (dicts).

    Batch records ({"kind": "batch", "step", "loss", "accuracy"}) become a thin line plus a
    smoothed line; epoch records ({"kind": "epoch", "step", "val_loss", "val_accuracy"}) become
    validation markers at the epoch's last step. Validation fields may be missing.
    """
    records = [r for r in records if isinstance(r, dict)]
    # Margins fixed (in inches) rather than measured by a layout engine: the panels' labels are known.
    figure = set_margins(new_figure(11, 4.2, layout=None), 0.7, 0.5, 0.12, 0.7, across=0.95, columns=2)
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    panels = (
        (loss_ax, "loss", "Loss (lower is better)", "cross-entropy loss"),
        (accuracy_ax, "accuracy", "Accuracy (higher is better)", "accuracy"),
    )
    for ax, name, title, ylabel in panels:
        drawn = _draw_panel(ax, records, name)
        ax.set_title(title, fontsize=12)
        ax.set_xlabel("training step (batches seen)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.margins(y=0.08)      # keep end-of-range markers clear of the frame
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if drawn:
            _stage_line(ax, records)
            ax.legend(fontsize=8, loc="best")
            _epoch_axis(ax, records)
        else:
            ax.text(0.5, 0.5, f"no {name} recorded", transform=ax.transAxes, ha="center", va="center",
                    color="0.5")
    steps = [r["step"] for r in records if isinstance(r.get("step"), (int, float))]
    if steps:
        # Start at 0 (no batches seen yet) and leave room so the last epoch's marker isn't clipped.
        for ax in (loss_ax, accuracy_ax):
            ax.set_xlim(0, max(steps) * 1.03 + 1)
    accuracy_ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    accuracy_ax.set_ylim(top=1.0 + 0.02)
    loss_ax.set_ylim(bottom=0)
    return save_figure(figure, path)


def _stage_line(ax, records):
    """--fine-tune: a dashed line where the backbone was unfrozen (epoch records carry their stage)."""
    epochs = [r for r in records if r.get("kind") == "epoch" and isinstance(r.get("step"), (int, float))]
    frozen = [r["step"] for r in epochs if r.get("stage") == 1]
    if frozen and any(r.get("stage") == 2 for r in epochs):
        ax.axvline(max(frozen), color="0.35", linestyle="--", linewidth=1, label="backbone unfrozen")


# ----------------------------------------------------------------------------- confusion matrix

def plot_confusion(confusion, classes, path, normalize=False) -> Path:
    """Heat map of a [K, K] confusion matrix: true class down the rows, predicted across the columns.

    With `normalize=True` each row is divided by its total, so the diagonal reads as per-class
    recall and classes of different sizes compare fairly. Cells are annotated up to 20 classes.
    """
    counts = torch.as_tensor(confusion)
    num_classes = counts.shape[0] if counts.ndim == 2 else -1
    if counts.ndim != 2 or counts.shape[1] != num_classes:
        raise ValueError(f"expected a square confusion matrix [K, K], got {tuple(counts.shape)}")
    if len(classes) != num_classes:
        raise ValueError(f"got {len(classes)} class names for a {num_classes}x{num_classes} confusion matrix")
    values = (normalized_confusion(counts) if normalize else counts.double()).cpu().numpy()

    side = min(16.0, max(5.5, 0.42 * num_classes + 3.0))
    labels = [display_label(label) for label in classes]   # kana as glyphs (CJK font) or romaji, never tofu
    slanted = num_classes > 10 or max(len(label) for label in labels) > 3
    if slanted:   # long or many names: the layout engine measures what they need
        figure = new_figure(side + 1.2, side)
    else:         # digits, kana: a few characters each, fixed margins (inches) fit them
        figure = set_margins(new_figure(side + 1.2, side, layout=None), 0.8, 0.6, 0.8, 0.6)
    ax = figure.subplots()
    vmax = 1.0 if normalize else max(1.0, float(values.max()))
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    colorbar.set_label("fraction of the true class" if normalize else "number of images")

    tick_size = 10 if num_classes <= 20 else max(5, 10 - (num_classes - 20) // 8)
    ax.set_xticks(range(num_classes), labels, fontsize=tick_size, fontproperties=label_font(tick_size))
    ax.set_yticks(range(num_classes), labels, fontsize=tick_size, fontproperties=label_font(tick_size))
    if slanted:   # long or many names overlap when horizontal
        for label in ax.get_xticklabels():
            label.set(rotation=45, ha="right", rotation_mode="anchor")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    title = "Confusion matrix" + (" (each row sums to 1)" if normalize else "")
    ax.set_title(title + "\nrows: true class, columns: predicted class; the diagonal is correct", fontsize=11)

    if num_classes <= ANNOTATE_MAX_CLASSES:
        font_size = 9 if num_classes <= 12 else 7
        for i in range(num_classes):
            for j in range(num_classes):
                value = values[i, j]
                text = f"{value:.2f}" if normalize else f"{int(value)}"
                if not normalize and value == 0:
                    text = "0"
                # White on dark cells, black on light ones, so every number stays legible.
                color = "white" if value > 0.55 * vmax else "black"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=font_size)
    return save_figure(figure, path)


# ----------------------------------------------------------------------------- input check

def plot_input_check(model_input, examples, predicted_label: str, probability: float, path) -> Path:
    """The exact image the model saw, enlarged pixel for pixel, beside training examples of the
    class it predicted. If the left image does not look like the examples on the right (inverted
    colours, off-centre, cropped), the preprocessing — not the model — is the likely problem."""
    shown, shown_kwargs = display_image(model_input)
    examples = torch.as_tensor(examples)
    if examples.ndim != 4:
        raise ValueError(f"expected examples as uint8 [M, C, H, W], got {tuple(examples.shape)}")
    examples = examples[:25]                       # more than a 5x5 grid only shrinks each example
    count = examples.shape[0]
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))

    figure = new_figure(10, 5.2)
    left, right = figure.subfigures(1, 2, width_ratios=[1, 1], wspace=0.05)

    ax = left.subplots()
    # "nearest": each model pixel becomes a sharp square; smoothing would hide what the model got.
    ax.imshow(shown, interpolation="nearest", **shown_kwargs)
    height, width = shown.shape[:2]
    channels = "1 channel" if shown.ndim == 2 else f"{shown.shape[2]} channels"
    ax.set_xlabel(f"{width}x{height} pixels, {channels}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    left.suptitle("what the model saw", fontsize=13)
    ax.set_title(f"predicted '{predicted_label}' with probability {probability:.1%}", fontsize=10)

    right.suptitle(f"training examples of '{predicted_label}'", fontsize=13)
    grid = np.atleast_1d(right.subplots(rows, columns)).ravel()
    for index, cell in enumerate(grid):
        cell.set_xticks([])
        cell.set_yticks([])
        if index < count:
            array, kwargs = display_image(examples[index])
            cell.imshow(array, interpolation="nearest", **kwargs)
        else:
            cell.axis("off")
    if count == 0:
        grid[0].text(0.5, 0.5, "no training examples available", ha="center", va="center",
                     transform=grid[0].transAxes, color="0.4")
    return save_figure(figure, path)
