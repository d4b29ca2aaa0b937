"""What a model learned, drawn from its weights alone: conv filters and per-pixel class evidence.

    from konbu.inspect.filters import filter_weights, plot_filters, class_weight_images, plot_class_weights
    filter_weights(run.model)                          # first conv layer: [out, in, kh, kw]
    plot_filters(run.model, "filters.png")             # first layer: one small image per filter
    plot_filters(run.model, "f1.png", layer="conv2d_1")  # deeper: filters x input channels
    class_weight_images(run.model, (1, 28, 28))        # softmax regression: [10, 28, 28]
    plot_class_weights(run.model, run.classes, (1, 28, 28), "weights.png")

    konbu show filters RUN [--layer conv2d_1]
    konbu show weights RUN

Weights are drawn with a diverging colour map, red positive, white zero, blue negative, on one
scale per figure so that strong and weak filters compare honestly. A first-layer filter over a
grey image is a small picture of the stroke it responds to; a deeper filter has one kernel per
input channel (per feature map of the layer below), so it is a row of small pictures.
"""

import math
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ModelSpecError, ShapeError
from .canvas import new_figure, save_figure
from .features import draw_tiles, named_modules
from .fonts import display_label, label_font

WEIGHT_CMAP = "RdBu_r"     # red > 0, white = 0, blue < 0
MAX_FILTERS = 64           # first layer: more than 64 small kernels stop being readable
MAX_ROWS = 16              # deeper layers: at most 16 filters x 16 input channels
MAX_COLUMNS = 16
MAX_UNITS = 64             # class-weight images of a hidden dense layer's units


def conv_layers(model: nn.Module) -> list:
    """[(name, Conv2d module)] in model order, named as in `konbu summary`; the convs inside a
    pretrained backbone by their path in it (backbone.conv1, backbone.layer1.0.conv1)."""
    found = []
    for name, module, _ in named_modules(model):
        if isinstance(module, nn.Conv2d):
            found.append((name, module))
        elif list(module.children()):   # a layer that is a whole network (a backbone)
            found += [(f"{name}.{inner}", sub) for inner, sub in module.named_modules() if isinstance(sub, nn.Conv2d)]
    return found


def _conv_layer(model, layer):
    convs = conv_layers(model)
    if not convs:
        raise ModelSpecError("this model has no conv layer, so it has no filters to draw (softmax regression "
                             "and MLPs see the pixels directly); draw its dense weights with `konbu show weights`")
    if layer is None:
        return convs[0]
    for name, module in convs:
        if name == layer:
            return name, module
    raise ModelSpecError(f"--layer {layer!r} is not a conv layer of this model; its conv layers are "
                         f"{', '.join(name for name, _ in convs)}")


def filter_weights(model: nn.Module, layer: str | None = None) -> torch.Tensor:
    """The kernels of conv layer `layer` (default: the first): float [out, in, kh, kw], on the CPU."""
    _, module = _conv_layer(model, layer)
    return module.weight.detach().float().cpu().clone()


def _limit(values: torch.Tensor) -> float:
    largest = float(values.abs().max()) if values.numel() else 0.0
    return largest if largest > 0 else 1.0


def _tiled_figure(rows, columns, tile_inches, extra_width=1.6, extra_height=1.2, layout="constrained"):
    figure = new_figure(tile_inches * columns + extra_width, tile_inches * rows + extra_height, layout=layout)
    return figure, figure.subplots()


def _colorbar(figure, image, ax, label, cax=None):
    bar = figure.colorbar(image, ax=None if cax else ax, cax=cax, fraction=0.03, pad=0.02, shrink=0.8)
    bar.set_label(label, fontsize=9)


def _fit_tiles(figure, ax, image, bar: float, top=0.75, bottom=0.15):
    """Fixed margins (inches) for a tiled image and its title, instead of a layout engine: the axes
    take the image's own shape, centred, with `bar` inches on the right for a colour bar; returns the
    colour bar's axes (None for bar=0)."""
    width, height = figure.get_size_inches()
    rows, columns = image.get_array().shape[:2]
    tall = height - top - bottom
    wide = min(tall * columns / rows, width - 0.3 - bar)
    tall = wide * rows / columns
    left = (width - bar - wide) / 2
    ax.set_position([left / width, bottom / height, wide / width, tall / height])
    if not bar:
        return None
    return figure.add_axes([(left + wide + 0.15) / width, (bottom + 0.1 * tall) / height, 0.18 / width,
                            0.8 * tall / height])


def _plot_first_layer(name, weights, path, when="") -> Path:
    """One small picture per filter (RGB filters in colour, like AlexNet's famous figure)."""
    out_channels, in_channels, kh, kw = weights.shape
    shown = min(out_channels, MAX_FILTERS)
    columns = min(shown, 8 if shown <= 32 else 16)
    rows = math.ceil(shown / columns)
    figure, ax = _tiled_figure(rows, columns, 1.0 if columns <= 8 else 0.7, layout=None)
    limit = _limit(weights[:shown])
    labels = [str(index) for index in range(shown)]
    if in_channels == 3:
        # zero at mid-grey: the colour shows which mix of red, green and blue a filter wants
        tiles = (weights[:shown].permute(0, 2, 3, 1) / (2 * limit) + 0.5).clamp(0, 1)
        _fit_tiles(figure, ax, draw_tiles(ax, tiles, columns, labels=labels, gap_color="white", frame=True).image, 0)
        about = "colour = the RGB mix each filter responds to, grey = 0"
    else:
        tiling = draw_tiles(ax, weights[:shown].mean(dim=1), columns, labels=labels, limit=limit, gap_color="white",
                            frame=True)
        _colorbar(figure, tiling.image, ax, "weight", cax=_fit_tiles(figure, ax, tiling.image, 1.0))
        about = "red: a bright pixel there raises the output, blue: lowers it"
    ax.axis("off")
    showing = "" if shown == out_channels else f" (first {shown} shown)"
    figure.suptitle(f"{name}: {out_channels} filters of {kh}×{kw}{showing}{when}\n{about}", fontsize=11)
    return save_figure(figure, path)


def _plot_deeper_layer(name, weights, path, when="") -> Path:
    """Filters down the rows, input channels across: each tile is one kh×kw kernel."""
    out_channels, in_channels, kh, kw = weights.shape
    rows, columns = min(out_channels, MAX_ROWS), min(in_channels, MAX_COLUMNS)
    shown = weights[:rows, :columns]
    figure, ax = _tiled_figure(rows, columns, 0.55, extra_width=2.4, extra_height=1.5)
    tiling = draw_tiles(ax, shown.reshape(rows * columns, kh, kw), columns, limit=_limit(shown))
    # fill the axes: with a fixed aspect the shrunken image would leave its row labels off the page
    ax.set_aspect("auto")
    ax.set_xticks([c * tiling.pitch_x + (tiling.width - 1) / 2 for c in range(columns)],
                  [f"in {c}" for c in range(columns)], fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([r * tiling.pitch_y + (tiling.height - 1) / 2 for r in range(rows)],
                  [f"filter {r}" for r in range(rows)], fontsize=7)
    ax.tick_params(length=0, pad=2)
    for spine in ax.spines.values():
        spine.set_visible(False)
    _colorbar(figure, tiling.image, ax, "weight")
    capped = "" if (rows, columns) == (out_channels, in_channels) else f" (first {rows} × {columns} shown)"
    figure.suptitle(f"{name}: {out_channels} filters of {kh}×{kw} over {in_channels} input channels{capped}{when}\n"
                    "each row is one filter: one kernel per feature map of the layer below", fontsize=11)
    return save_figure(figure, path)


def plot_filters(model: nn.Module, path, layer: str | None = None, when: str = "") -> Path:
    """Conv layer `layer`'s kernels (default: the first conv layer) as a grid; returns the path.

    A layer reading 1 or 3 channels draws one picture per filter; a deeper one draws a grid of
    filters (rows) × input channels (columns), capped at 16 × 16. `when` goes into the title
    ("before training" for the kernels as initialised).
    """
    name, module = _conv_layer(model, layer)
    weights = module.weight.detach().float().cpu()
    when = f", {when}" if when else ""
    if weights.shape[1] in (1, 3) and name == conv_layers(model)[0][0]:
        return _plot_first_layer(name, weights, path, when)
    return _plot_deeper_layer(name, weights, path, when)


# ----------------------------------------------------------------------------- dense weights on pixels

def _pixel_dense_layer(model):
    """(name, Linear) of the first dense layer if it sees the pixels directly (only flatten and
    dropout before it), else a ModelSpecError saying what to draw instead."""
    for name, module, kind in named_modules(model):
        if isinstance(module, nn.Linear):
            return name, module
        if not isinstance(module, (nn.Flatten, nn.Dropout, nn.Identity)):
            raise ModelSpecError(f"this model's first dense layer comes after {name} ({kind}), so its weights "
                                 "are over feature maps, not pixels; draw the conv filters with "
                                 "`konbu show filters` instead (weights are drawn for softmax regression and MLPs)")
    raise ModelSpecError("this model has no dense layer whose weights could be drawn as images")


def class_weight_images(model: nn.Module, image_shape) -> torch.Tensor:
    """The first dense layer's weights, one image per output unit: float [units, H, W].

    For softmax regression the units are the classes, and image k is the evidence each pixel gives
    for class k (logit_k = sum of weight × normalised pixel + bias). RGB weights are summed over the
    channels: the evidence of a grey pixel, which raises all three channels together.
    """
    channels, height, width = (int(v) for v in image_shape)
    _, module = _pixel_dense_layer(model)
    if module.in_features != channels * height * width:
        raise ShapeError(f"the first dense layer takes {module.in_features} inputs, not the "
                         f"{channels}×{height}×{width} = {channels * height * width} pixels of image_shape "
                         f"{[channels, height, width]}")
    weights = module.weight.detach().float().cpu()
    return weights.view(module.out_features, channels, height, width).sum(dim=1)


def plot_class_weights(model: nn.Module, classes, image_shape, path) -> Path:
    """Each class's (or, for a hidden dense layer, each unit's) weights as an image, on one
    diverging colour scale: red pixels are evidence for the class, blue against. Returns the path."""
    images = class_weight_images(model, image_shape)
    name, _ = _pixel_dense_layer(model)
    units = images.shape[0]
    per_class = classes is not None and len(classes) == units
    shown = units if per_class else min(units, MAX_UNITS)
    columns = min(shown, 5 if shown <= 10 else 10)
    rows = math.ceil(shown / columns)
    figure, ax = _tiled_figure(rows, columns, 2.0 if columns <= 5 else 1.15, extra_height=1.4)
    labels = [display_label(c) for c in classes] if per_class else [f"unit {i}" for i in range(shown)]
    tiling = draw_tiles(ax, images[:shown], columns, labels=labels, font=label_font(11 if columns <= 5 else 9),
                        limit=_limit(images[:shown]), gap_color="white", frame=True)
    ax.axis("off")
    _colorbar(figure, tiling.image, ax, "weight: red = evidence for, blue = against")
    if per_class:
        heading = f"{name}: each class's weights over the pixels (the evidence per pixel of softmax regression)"
    else:
        capped = "" if shown == units else f" (first {shown} of {units})"
        heading = f"{name}: what each of its {units} units looks for in the pixels{capped}"
    figure.suptitle(heading + "\na bright pixel on red raises the score, on blue lowers it", fontsize=11)
    return save_figure(figure, path)
