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


def as_uint8(images) -> torch.Tensor:
    """uint8 [N, C, H, W] from uint8, or float in [0, 1], images."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dtype != torch.uint8:
        images = (images.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return images


def plot_image_grid(images, titles=None, path=None, columns: int | None = None, title: str | None = None,
                    row_labels=None, title_colors=None) -> Path:
    """One cell per image, `columns` per row (default: about square), an optional title per cell
    and an optional label at the start of each row. Returns the path written."""
    images = as_uint8(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"expected images [N, C, H, W] with N >= 1, got {tuple(images.shape)}")
    count = images.shape[0]
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    font = label_font()
    label_width = 0.9 if row_labels is not None else 0.0
    figure = new_figure(label_width + CELL_INCHES * columns, CELL_INCHES * rows + (0.5 if title else 0.1))
    cells = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).reshape(rows, columns)
    for index, cell in enumerate(cells.ravel()):
        cell.set_xticks([])
        cell.set_yticks([])
        for spine in cell.spines.values():
            spine.set_visible(False)
        if index >= count:
            cell.axis("off")
            continue
        array, kwargs = display_image(images[index])
        cell.imshow(array, interpolation="nearest", **kwargs)
        if titles is not None and index < len(titles) and titles[index] is not None:
            color = title_colors[index] if title_colors is not None else "black"
            cell.set_title(display_label(titles[index]), fontsize=8, color=color, fontproperties=font, pad=2)
    if row_labels is not None:
        for row, label in enumerate(row_labels[:rows]):
            cells[row, 0].set_ylabel(display_label(label), rotation=0, ha="right", va="center", fontsize=11,
                                     fontproperties=label_font(11))
    if title:
        figure.suptitle(display_label(title) if len(title) < 3 else title, fontsize=12)
    return save_figure(figure, path)
