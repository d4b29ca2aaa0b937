"""konbu.inspect.canvas: figures off pyplot, PNGs written whole at the promised size, images as imshow wants them."""

import numpy as np
import pytest
import torch
from PIL import Image

from konbu.inspect.canvas import DPI, display_image, new_figure, save_figure


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
