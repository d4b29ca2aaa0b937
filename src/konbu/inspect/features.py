"""Feature maps: one image stepped through a trained model, every layer's output as a picture.

    from konbu.inspect.features import feature_maps, plot_activations
    maps = feature_maps(run, "seven.png")       # {"conv2d": [16, 26, 26], "conv2d_relu": ..., "dense_1": [10]}
    plot_activations(run, "seven.png", run.path / "figures" / "activations.png")

    konbu show activations runs/tfjs seven.png

`run` is anything with `.model` (a konbu Net, or any nn.Module) and `.preprocess` (the run's
preprocess.json dict): a `konbu.Run` works, so does a namespace in a test. `image` is a path, a PIL
image or an array, prepared exactly as `konbu predict` prepares it (konbu.preprocess), or an
already prepared uint8 tensor [C, H, W] of the model's input shape.

The keys are the module names of the Net, the names `konbu summary` shows: a conv layer and its
activation are separate modules (`conv2d`, `conv2d_relu`), so the picture "after conv" and the
picture "after ReLU" are both there. Every output's shape equals the summary's output shape of
its row (channels first here, channels last in the Keras-style summary).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.patches
import numpy as np
import torch
import torch.nn as nn

from ..errors import ShapeError
from ..inference import normalise
from ..preprocess import image_shape, to_model_input
from .canvas import display_image, new_figure, save_figure
from .fonts import display_label, label_font

MAX_MAPS = 16           # feature maps drawn per layer: more only shrinks each one on a laptop screen
MAX_BARS = 20           # classes in the probability chart; beyond this only the most likely are drawn
MAP_CMAP = "RdBu_r"     # red > 0, white = 0, blue < 0: ReLU visibly removes the blue
INPUT_NOTE = "pixels 0-255 as the model sees them; normalised to mean 0, std 1 before the first layer"

# What each kind of layer does, in one line, for the row titles of the step-through figure.
EXPLAIN = {
    "Conv2D": "each filter slides over its input and lights up where its pattern appears",
    "ReLU": "negative values set to 0 (the blue disappears)",
    "MaxPooling2D": "the largest value of each window kept: smaller maps, same channels",
    "AveragePooling2D": "the mean of each window kept: smaller maps, same channels",
    "Flatten": "its input laid out as one long vector (row after row, map after map)",
    "Dense": "weighted sums of the whole vector",
    "Dropout": "does nothing when predicting (only drops units while training)",
    "BatchNormalization": "each channel shifted and scaled by statistics learned in training",
}


def named_modules(model: nn.Module) -> list:
    """[(name, module, kind)] of the modules whose outputs are feature maps, in model order.

    For a konbu Net: every module of every spec layer (the conv, then its activation), named as in
    the summary, kind = the Keras type (Conv2D) or the activation's class (ReLU). For any other
    model: its leaf modules, named by their dotted path, kind = the class name.
    """
    if hasattr(model, "layers") and hasattr(model, "module_named"):
        rows = []
        for layer in model.layers:
            for position, name in enumerate(layer.modules):
                module = model.module_named(name)
                rows.append((name, module, layer.type if position == 0 else type(module).__name__))
        return rows
    return [(name, module, type(module).__name__) for name, module in model.named_modules()
            if name and not list(module.children())]


def model_input(image, preprocess: dict) -> torch.Tensor:
    """uint8 [C, H, W] exactly as the model sees it: `image` prepared like `konbu predict` does,
    or an already prepared uint8 tensor [C, H, W] (or [1, C, H, W]) of the model's input shape."""
    expected = image_shape(preprocess)
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim in (3, 4):
        prepared = image[0] if image.ndim == 4 and image.shape[0] == 1 else image
        if tuple(prepared.shape) == expected:
            return prepared.detach().cpu()
        if image.ndim == 4 or image.shape[0] in (1, 3):
            raise ShapeError(f"a prepared image must be uint8 [C, H, W] = {list(expected)}, found "
                             f"{list(image.shape)}; pass a file path or PIL image to have it resized")
    return to_model_input(image, preprocess)


def model_batch(image, run) -> tuple:
    """(uint8 [C, H, W] the model sees, float [1, C, H, W] normalised on the model's device)."""
    prepared = model_input(image, run.preprocess)
    parameter = next(run.model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    x = normalise(prepared[None].to(device), run.preprocess["mean"], run.preprocess["std"])
    return prepared, x


def feature_maps(run, image) -> dict:
    """{module name: output [C, H, W] or [units]} for one image, in the order the model runs them.

    Float32 CPU tensors, detached. The model is put in eval mode (dropout off, as when predicting)
    and returned to its previous mode afterwards.
    """
    model = run.model
    _, x = model_batch(image, run)
    modules = named_modules(model)
    names = {id(module): name for name, module, _ in modules}
    outputs = {}

    def record(module, inputs, output):
        # clone: an in-place ReLU would otherwise overwrite the conv output we just kept
        outputs[names[id(module)]] = output.detach()[0].float().cpu().clone()

    handles = [module.register_forward_hook(record) for _, module, _ in modules]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return outputs


# ----------------------------------------------------------------------------- the step-through figure

FIGURE_WIDTH = 13.0     # inches: ~1430 px at the figures' DPI, a laptop screen's width
ROW_WIDTH = 12.4        # inches the images of one row may use
GAP_COLOR = "0.55"      # the lines between tiled maps: grey, so a white (zero) map still shows its edges


def _symmetric_limit(values: torch.Tensor) -> float:
    largest = float(values.abs().max()) if values.numel() else 0.0
    return largest if largest > 0 else 1.0   # an all-zero map (dead ReLU) draws white, not an error


@dataclass(frozen=True)
class Tiling:
    """Where draw_tiles put things, in image pixels: for ticks and labels."""

    image: object      # the AxesImage (for a colorbar)
    height: int        # one tile, as drawn (small kernels are enlarged)
    width: int
    pitch_y: int       # from one tile row's top to the next
    pitch_x: int
    above: int         # label space above each tile row
    rows: int
    columns: int


def draw_tiles(ax, tiles, columns: int, labels=None, font=None, limit=None, gap_color=GAP_COLOR,
               frame=False) -> Tiling:
    """Draw [N, H, W] tiles (diverging colours, -limit..limit) or [N, H, W, 3] tiles (RGB in [0, 1])
    as ONE image, `columns` per row, with a thin gap between them, an optional label above each and
    an optional frame around each.

    One image instead of one axes per tile: a figure of 250 tiny axes takes many seconds to lay
    out, a tiled image milliseconds, and reads the same. Tiles smaller than ~24 pixels (3x3
    kernels) are enlarged pixel for pixel so the gap stays a thin line."""
    tiles = torch.as_tensor(tiles).detach().float().cpu()
    rgb = tiles.ndim == 4
    scale = max(1, math.ceil(24 / max(tiles.shape[1:3])))
    tiles = tiles.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    count, height, width = tiles.shape[:3]
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    gap = max(1, width // 12)
    above = max(gap, round(height * 0.3)) if labels is not None else 0
    pitch_y, pitch_x = height + gap + above, width + gap
    mosaic = np.full((rows * pitch_y - gap, columns * pitch_x - gap) + ((3,) if rgb else ()), np.nan, np.float32)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * pitch_y + above, column * pitch_x
        mosaic[top:top + height, left:left + width] = tiles[index].numpy()
    if rgb:
        mosaic[np.isnan(mosaic[..., 0])] = matplotlib.colors.to_rgb(gap_color)
        image = ax.imshow(mosaic.clip(0, 1), interpolation="nearest")
    else:
        limit = limit or _symmetric_limit(tiles)
        cmap = matplotlib.colormaps[MAP_CMAP].with_extremes(bad=gap_color)
        image = ax.imshow(mosaic, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    if frame:   # a thin grey frame: a tile of zeros still shows where it is on a white background
        for index in range(count):
            row, column = divmod(index, columns)
            ax.add_patch(matplotlib.patches.Rectangle((column * pitch_x - 0.5, row * pitch_y + above - 0.5), width,
                                                      height, fill=False, edgecolor="0.55", linewidth=0.6,
                                                      clip_on=False))
    for index, label in enumerate(list(labels or [])[:count]):
        row, column = divmod(index, columns)
        ax.text(column * pitch_x + (width - 1) / 2, row * pitch_y + above / 2 - 0.5, label, ha="center",
                va="center", fontproperties=font)
    ax.set_xticks([])
    ax.set_yticks([])
    return Tiling(image, height, width, pitch_y, pitch_x, above, rows, columns)


def _map_row_height(maps_shape, shown, columns):
    """Inches a row of `shown` maps needs when `columns` maps fill the row's width."""
    _, height, width = maps_shape
    tile = ROW_WIDTH / columns                           # inches per map, the same in every row
    return 0.5 + math.ceil(shown / columns) * tile * height / width


def _draw_maps(ax, maps: torch.Tensor, shown: int, columns: int):
    """`shown` maps of [C, H, W] tiled in rows of `columns`, one colour scale for the whole layer."""
    tiling = draw_tiles(ax, maps[:shown], columns, limit=_symmetric_limit(maps))
    # channel numbers: across the bottom, and the first of each tile row down the side
    ax.set_xticks([c * tiling.pitch_x + (tiling.width - 1) / 2 for c in range(tiling.columns)],
                  [str(c) for c in range(tiling.columns)], fontsize=6)
    ax.tick_params(length=0, pad=1)
    if tiling.rows > 1:
        ax.set_yticks([r * tiling.pitch_y + (tiling.height - 1) / 2 for r in range(tiling.rows)],
                      [f"+{r * tiling.columns}" for r in range(tiling.rows)], fontsize=6)
    ax.set_anchor("W")


def _draw_vector(ax, vector: torch.Tensor, labels=None):
    """A vector as a strip of coloured cells (long vectors: one column per unit, squeezed)."""
    limit = _symmetric_limit(vector)
    ax.imshow(vector[None].numpy(), cmap=MAP_CMAP, vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_yticks([])
    units = vector.numel()
    if labels is not None and units <= MAX_BARS:
        font = label_font(9)
        ax.set_xticks(range(units), [display_label(label) for label in labels], fontsize=9, fontproperties=font)
    elif units <= 32:
        ax.set_xticks(range(units), [str(i) for i in range(units)], fontsize=7)
    else:
        ax.tick_params(axis="x", labelsize=7)
    if units <= MAX_BARS:
        for index, value in enumerate(vector.tolist()):
            color = "white" if abs(value) > 0.6 * limit else "black"
            ax.text(index, 0, f"{value:.1f}", ha="center", va="center", fontsize=7, color=color)


def _draw_probabilities(ax, probabilities: torch.Tensor, classes):
    count = probabilities.numel()
    if count <= MAX_BARS:
        order = list(range(count))                                  # class order: easy to find a digit
    else:
        order = probabilities.argsort(descending=True)[:MAX_BARS].tolist()
    values = [float(probabilities[i]) for i in order]
    best = int(probabilities.argmax())
    colors = ["#d62728" if i == best else "#1f77b4" for i in order]
    positions = list(range(len(order)))
    ax.barh(positions, values, color=colors)
    font = label_font(10)
    ax.set_yticks(positions, [display_label(classes[i]) if i < len(classes) else str(i) for i in order],
                  fontproperties=font)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("probability")
    for position, value in zip(positions, values):
        ax.text(value + 0.01, position, f"{value:.1%}", va="center", fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    return best


def _title(ax, text, font=None):
    ax.set_title(text, loc="left", fontsize=10, fontproperties=font, pad=4)


def plot_activations(run, image, path, max_maps: int = MAX_MAPS) -> Path:
    """The step-through: the input as the model sees it, every module's output in order (feature
    maps tiled, at most `max_maps` per layer; vectors as strips), then the class probabilities.

    Each row is titled with the module's name, kind and output shape, and one line on what that
    kind of layer does. Colours: red positive, white zero, blue negative, one scale per row.
    """
    if max_maps < 1:
        raise ValueError(f"max_maps must be at least 1, got {max_maps}")
    prepared, _ = model_batch(image, run)
    maps = feature_maps(run, prepared)
    kinds = {name: kind for name, _, kind in named_modules(run.model)}
    classes = list(run.preprocess.get("classes") or [])
    last_name = next(reversed(maps))
    probabilities = run.probabilities(logits=maps[last_name])   # calibrated: what `konbu predict` says

    columns = min(max_maps, 16)
    heights = [2.0]
    for output in maps.values():
        if output.ndim == 3:
            heights.append(_map_row_height(output.shape, min(output.shape[0], max_maps), columns))
        else:
            heights.append(0.95)
    heights.append(0.8 + 0.26 * min(probabilities.numel(), MAX_BARS))
    figure = new_figure(FIGURE_WIDTH, sum(heights) + 0.5)
    axes = figure.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights})
    figure.suptitle("One image through the model, layer by layer (colours: red > 0, white = 0, blue < 0; "
                    "each row has its own scale)", fontsize=12)

    array, kwargs = display_image(prepared)
    channels, height, width = prepared.shape
    axes[0].imshow(array, interpolation="nearest", **kwargs)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    axes[0].set_anchor("W")
    _title(axes[0], f"input: {channels}×{height}×{width}, {INPUT_NOTE}")

    for ax, (name, output) in zip(axes[1:], maps.items()):
        kind = kinds.get(name, "")
        explain = EXPLAIN.get(kind, "")
        if output.ndim == 3:
            count, map_height, map_width = output.shape
            shown = min(count, max_maps)
            showing = "" if shown == count else f", first {shown} shown"
            title = f"{name} ({kind}): {count} maps of {map_height}×{map_width}{showing}"
            _draw_maps(ax, output, shown, columns)
        else:
            title = f"{name} ({kind}): {output.numel()} numbers"
            output = output.reshape(-1)
            _draw_vector(ax, output, classes if name == last_name and len(classes) == output.numel() else None)
            if name == last_name:
                explain = "the logits: one score per class, before softmax"
        _title(ax, title + (f" — {explain}" if explain else ""))

    best = _draw_probabilities(axes[-1], probabilities, classes)
    answer = display_label(classes[best]) if best < len(classes) else str(best)
    temperature = run.temperature
    how = "softmax of the logits" if temperature == 1.0 else f"softmax of the logits / {temperature:.2f}, calibrated"
    _title(axes[-1], f"class probabilities ({how}): the model says '{answer}' with "
                     f"{float(probabilities[best]):.1%}", font=label_font(10))
    return save_figure(figure, path)
