"""Grids of small images with a label above each: dataset samples, augmented copies, mistakes.

    from konbu.inspect.grids import plot_image_grid
    plot_image_grid(images, titles, "grid.png", columns=10, title="mnist-sample: 10 per class")
    plot_image_grid(images, titles, "rows.png", row_labels=["0", "1", ...], columns=8)

`images` is uint8 [N, C, H, W] (1 or 3 channels) or float [N, C, H, W] in [0, 1]; `titles` may
hold kana or other non-Latin text: it is drawn with a CJK font when one is installed and falls
back to romaji otherwise (konbu.inspect.fonts), so no figure ever shows tofu boxes.
"""

import math
from pathlib import Path

import numpy as np
import torch

from .canvas import display_image, new_figure, save_figure
from .fonts import display_label, label_font

CELL_INCHES = 1.05   # one image and its one-line title; 10 columns -> ~1150 px wide
LINE_INCHES = 0.16   # one line of an 8-point title
MARGIN_INCHES = 0.05


def as_uint8(images) -> torch.Tensor:
    """uint8 [N, C, H, W] from uint8, or float in [0, 1], images."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dtype != torch.uint8:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return images


def plot_image_grid(images, titles=None, path=None, columns: int | None = None, title: str | None = None,
                    row_labels=None, title_colors=None) -> Path:
    """One cell per image, `columns` per row (default: about square), an optional title per cell
    and an optional label at the start of each row. Returns the path written.

    The cells are drawn on one axes spanning the figure, placed in inches: a grid of 36 subplots
    under constrained layout took ~0.5 s to lay out and draw (the report draws several), this ~0.1 s."""
    images = as_uint8(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected images [N, C, H, W] with N >= 1, got {tuple(images.shape)}")
    count = images.shape[0]
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    font = label_font()
    label_width = 0.9 if row_labels is not None else 0.0
    lines = max((display_label(t).count("\n") + 1 for t in (titles or ()) if t is not None), default=0)
    title_band = lines * LINE_INCHES
    cell_height = CELL_INCHES - LINE_INCHES + title_band      # a one-line title keeps the old cell
    top = 0.5 if title else 0.1
    width, height = label_width + CELL_INCHES * columns, cell_height * rows + top + MARGIN_INCHES
    figure = new_figure(width, height, layout=None)
    ax = figure.add_axes((0, 0, 1, 1))   # coordinates: inches from the top-left corner (limits set last)
    ax.axis("off")
    side = CELL_INCHES - LINE_INCHES - 2 * MARGIN_INCHES   # the image's square, as under a one-line title
    for index in range(count):
        row, column = divmod(index, columns)
        left, upper = label_width + column * CELL_INCHES, top + row * cell_height
        array, kwargs = display_image(images[index])
        h, w = array.shape[:2]
        box_w, box_h = side * w / max(h, w), side * h / max(h, w)
        x0 = left + (CELL_INCHES - box_w) / 2
        y0 = upper + title_band + MARGIN_INCHES
        ax.imshow(array, extent=(x0, x0 + box_w, y0 + box_h, y0), interpolation="nearest", **kwargs)
        if titles is not None and index < len(titles) and titles[index] is not None:
            color = title_colors[index] if title_colors is not None else "black"
            ax.text(left + CELL_INCHES / 2, y0 - 0.03, display_label(titles[index]), ha="center", va="bottom",
                    fontsize=8, color=color, fontproperties=font)
    if row_labels is not None:
        for row, label in enumerate(row_labels[:rows]):
            ax.text(label_width - 0.08, top + row * cell_height + title_band + MARGIN_INCHES + side / 2,
                    display_label(label), ha="right", va="center", fontsize=11, fontproperties=label_font(11))
    if title:
        figure.suptitle(display_label(title) if len(title) < 3 else title, fontsize=12, y=1 - 0.08 / height)
    ax.set_xlim(0, width)           # after the images: each imshow resets the limits to its own extent
    ax.set_ylim(height, 0)
    return save_figure(figure, path)
