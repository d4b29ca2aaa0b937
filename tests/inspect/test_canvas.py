"""konbu.inspect.canvas: figures off pyplot, PNGs written whole at the promised size, images as imshow wants them."""

import numpy as np
import pytest
import torch
from PIL import Image

from konbu.inspect.canvas import DPI, display_image, new_figure, save_figure, set_margins


def test_new_figure_has_the_size_and_an_agg_canvas():
    figure = new_figure(4, 3)
    assert tuple(figure.get_size_inches()) == (4, 3) and figure.dpi == DPI
    assert type(figure.canvas).__name__ == "FigureCanvasAgg"


def test_save_figure_writes_a_png_of_size_times_dpi_and_nothing_else(tmp_path):
    figure = new_figure(4, 3)
    figure.subplots().plot([0, 1], [1, 0])
    path = tmp_path / "figures" / "line.png"          # the folder does not exist yet
    assert save_figure(figure, path) == path
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (4 * DPI, 3 * DPI)
        # facecolor white: the corner (outside the axes) is opaque white, so it reads in a dark-mode report
        assert image.convert("RGBA").getpixel((0, 0)) == (255, 255, 255, 255)
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]    # no temporary file left beside it


def test_display_image_grey_is_shown_on_a_fixed_0_255_scale():
    image = torch.randint(0, 256, (1, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    array, kwargs = display_image(image)
    assert np.array_equal(array, image[0].numpy())
    assert kwargs == {"cmap": "gray", "vmin": 0, "vmax": 255}


@pytest.mark.parametrize("channels", [3, 4])
def test_display_image_colour_is_channels_last(channels):
    image = torch.randint(0, 256, (channels, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    array, kwargs = display_image(image)
    assert np.array_equal(array, np.transpose(image.numpy(), (1, 2, 0))) and kwargs == {}


@pytest.mark.parametrize("image", [torch.rand(1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.uint8),
                                   torch.zeros(4, 4, dtype=torch.uint8)], ids=["float", "two-channels", "2-D"])
def test_display_image_rejects_what_imshow_would_misdraw(image):
    with pytest.raises(ValueError, match="uint8 image"):
        display_image(image)


def test_set_margins_places_the_grid_by_inches():
    figure = set_margins(new_figure(10, 5, layout=None), 0.5, 0.4, 0.2, 0.6, across=1.0, columns=2)
    left, right = figure.subplots(1, 2)
    width, height = 10, 5
    assert left.get_position().x0 * width == pytest.approx(0.5)
    assert right.get_position().x1 * width == pytest.approx(10 - 0.2)
    assert (right.get_position().x0 - left.get_position().x1) * width == pytest.approx(1.0)
    assert left.get_position().y0 * height == pytest.approx(0.4)
    assert left.get_position().y1 * height == pytest.approx(5 - 0.6)


# ----------------------------------------------------------------------------- fixed margins hold their text

def _drawn_figures(monkeypatch):
    """Capture the figures the report's figure functions save (the functions return only the path)."""
    import konbu.inspect.calibration as calibration
    import konbu.inspect.figures as figures
    import konbu.inspect.filters as filters

    captured = []

    def capture(figure, path):
        captured.append(figure)
        return save_figure(figure, path)

    for module in (calibration, figures, filters):
        monkeypatch.setattr(module, "save_figure", capture)
    return captured


def _inches_outside(figure) -> float:
    """How far (inches) the drawn artists of `figure` reach past its edges: 0 when nothing is clipped."""
    box = figure.get_tightbbox(figure.canvas.get_renderer())     # ticks, labels, titles, legends, colour bars
    width, height = figure.get_size_inches()
    return max(0.0, -box.x0, -box.y0, box.x1 - width, box.y1 - height)


def test_the_report_figures_keep_every_label_on_the_page(tmp_path, monkeypatch):
    """The curves, calibration, confusion (short class names) and first-layer filter figures are laid
    out by fixed margins instead of a layout engine: no title, tick or axis label may fall off them,
    with large losses, 4-digit counts and a diverging colour bar."""
    from konbu.inspect.calibration import plot_reliability
    from konbu.inspect.figures import plot_confusion, plot_curves
    from konbu.inspect.filters import plot_filters

    captured = _drawn_figures(monkeypatch)
    records = [{"kind": "batch", "step": step, "loss": 1500.0 / step, "accuracy": min(1.0, step / 300)}
               for step in range(1, 400)]
    records += [{"kind": "epoch", "epoch": e, "step": 100 * e, "val_loss": 12.5 / e, "val_accuracy": 0.9}
                for e in range(1, 4)]
    plot_curves(records, tmp_path / "curves.png")
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3000, 10, generator=generator) * 4
    plot_reliability(logits, torch.randint(0, 10, (3000,), generator=generator), 1.7, tmp_path / "calibration.png")
    confusion = torch.randint(0, 30, (10, 10), generator=generator) + torch.eye(10, dtype=torch.long) * 1100
    plot_confusion(confusion, [str(k) for k in range(10)], tmp_path / "confusion.png")
    plot_filters(torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3)), tmp_path / "filters.png", when="after training")
    plot_filters(torch.nn.Sequential(torch.nn.Conv2d(3, 6, 5)), tmp_path / "filters-rgb.png")
    assert len(captured) == 5
    for figure in captured:
        assert figure.get_layout_engine() is None               # the fixed layout, not the engine
        assert _inches_outside(figure) < 0.01
