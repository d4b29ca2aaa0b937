"""The canvas every konbu figure is drawn on: a new figure, a PNG written atomically, an image for imshow.

    from konbu.inspect.canvas import display_image, new_figure, save_figure, set_margins
    figure = new_figure(8, 4.5)                        # inches, at DPI, constrained layout
    ax = figure.subplots()
    figure = set_margins(new_figure(8, 4.5, layout=None), 0.6, 0.5, 0.1, 0.4)   # or fixed margins (inches)
    array, kwargs = display_image(image)               # uint8 [C, H, W] -> imshow's array and options
    ax.imshow(array, interpolation="nearest", **kwargs)
    save_figure(figure, "figures/plot.png")            # returns the path

    python -m pytest tests/inspect/test_canvas.py

Each figure is a `matplotlib.figure.Figure` attached to an Agg canvas directly, never through
pyplot: no display is needed, nothing global changes (a user's notebook keeps its own backend, a
web server can draw from several threads) and no figure is left open in pyplot's registry.
Each PNG is rendered into memory and handed to `konbu.atomic.write_bytes`, so a reader never sees
half a file. Every figure module of konbu.inspect, and `konbu lr-find`'s plot, draws through here.
"""

import io
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import atomic

DPI = 110                # ~1000 px wide figures: sharp on a laptop, small enough to embed in HTML


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """An empty Agg-backed figure of `width` x `height` inches with constrained layout (or `layout`;
    None for a figure that places its own artists)."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def set_margins(figure: Figure, left: float, bottom: float, right: float, top: float, across: float = 0.0,
                down: float = 0.0, columns: int = 1, rows: int = 1) -> Figure:
    """Lay out a figure drawn with layout=None by fixed margins, in inches: round the grid of
    `rows` x `columns` subplots, `across` between columns and `down` between rows. The report's
    figures have known contents, and a layout engine measures every label of a figure twice:
    0.2-0.4 s a figure on a 2-core CPU, a third of the time the report takes to draw."""
    width, height = figure.get_size_inches()
    cell_width = (width - left - right - across * (columns - 1)) / columns
    cell_height = (height - bottom - top - down * (rows - 1)) / rows
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                           wspace=across / cell_width, hspace=down / cell_height)
    return figure


def save_figure(figure: Figure, path) -> Path:
    """Write `figure` to `path` as a PNG on white, atomically (temporary file + rename); returns the path."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return atomic.write_bytes(path, buffer.getvalue())


def display_image(image) -> tuple:
    """uint8 [C, H, W] tensor (1, 3 or 4 channels) -> (array for imshow, imshow keyword arguments)."""
    array = torch.as_tensor(image).detach().cpu()
    if array.dtype != torch.uint8 or array.ndim != 3 or array.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"expected a uint8 image [C, H, W] with 1, 3 or 4 channels, got {array.dtype} {tuple(array.shape)}"
        )
    if array.shape[0] == 1:
        # Fixed 0..255 range: show the pixel values as they are, without matplotlib's auto-contrast.
        return array[0].numpy(), {"cmap": "gray", "vmin": 0, "vmax": 255}
    return array.permute(1, 2, 0).numpy(), {}
