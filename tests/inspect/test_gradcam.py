"""konbu.inspect.gradcam: the heat map lands on a planted feature, for a net whose answer is known
by construction and for a tiny net trained to find a bright square."""


import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from konbu.errors import ConfigError, ModelSpecError
from konbu.inspect.gradcam import gradcam, plot_gradcam
from konbu.models import build_model
from konbu.runs import Run

SIZE = 16


def bars_net():
    """Channel 0 of the conv detects vertical bars, channel 1 horizontal bars; class 0 sums
    channel 0's map, class 1 channel 1's. Grad-CAM for class k must therefore light up bar k."""
    spec = [{"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "flatten"}, {"type": "dense", "units": "classes"}]
    net = build_model(spec, (1, SIZE, SIZE), 2)
    vertical = torch.tensor([[-1.0, 2.0, -1.0]] * 3)
    with torch.no_grad():
        conv = net.module_named("conv2d")
        conv.weight.copy_(torch.stack([vertical, vertical.T])[:, None])
        conv.bias.zero_()
        dense = net.module_named("dense")
        dense.weight.zero_()
        dense.weight[0, :SIZE * SIZE] = 1.0                  # flatten: channel 0's map first
        dense.weight[1, SIZE * SIZE:] = 1.0
        dense.bias.zero_()
    return net.eval()


def bars_image():
    x = torch.zeros(1, SIZE, SIZE)
    x[0, 2:8, 3] = 1.0          # a vertical bar, top left
    x[0, 11, 8:14] = 1.0        # a horizontal bar, bottom right
    return x


def peak(heat):
    return divmod(int(heat.argmax()), heat.shape[1])


def test_each_class_lights_up_its_own_feature():
    net, x = bars_net(), bars_image()
    vertical = gradcam(net, x, target=0)
    horizontal = gradcam(net, x, target=1)
    assert vertical.shape == horizontal.shape == (SIZE, SIZE)
    for heat in (vertical, horizontal):
        assert heat.min() == 0 and heat.max() == 1
    row, column = peak(vertical)
    assert 2 <= row <= 7 and 2 <= column <= 4
    row, column = peak(horizontal)
    assert 10 <= row <= 12 and 8 <= column <= 13
    # the other bar gets (almost) nothing
    assert vertical[10:13, 9:13].max() < 0.2 and horizontal[3:7, 2:5].max() < 0.2


def test_default_target_is_the_predicted_class_and_state_is_restored():
    net, x = bars_net(), bars_image()
    x[0, 2:8, 3] = 0.0                                       # only the horizontal bar: class 1 wins
    with torch.no_grad():
        assert net(x[None]).argmax() == 1
    net.train()
    torch.testing.assert_close(gradcam(net, x), gradcam(net, x, target=1))
    assert net.training                                      # mode given back
    assert all(p.grad is None for p in net.parameters())    # no gradient left on the weights
    for p in net.parameters():
        p.requires_grad_(False)                              # a frozen model still gets a heat map
    assert gradcam(net, x, target=1).max() == 1
    assert not any(p.requires_grad for p in net.parameters())


def make_squares(count, generator, square=4, size=20, positive=None):
    """Dim noise; a bright square at a random place in the positives (label 1)."""
    images = torch.rand(count, 1, size, size, generator=generator) * 0.3
    labels = torch.randint(0, 2, (count,), generator=generator) if positive is None else torch.full((count,), positive)
    corners = torch.randint(0, size - square + 1, (count, 2), generator=generator)
    for i in range(count):
        if labels[i]:
            row, column = corners[i].tolist()
            images[i, 0, row:row + square, column:column + square] = 1.0
    return images, labels, corners


def test_a_trained_detector_looks_at_the_square():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny tensors: more threads only fight over the shared cores
    try:
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        spec = [{"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
                {"type": "maxpool2d", "pool_size": 2},
                {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
                {"type": "avgpool2d", "pool_size": 10},
                {"type": "flatten"}, {"type": "dense", "units": "classes"}]
        net = build_model(spec, (1, 20, 20), 2)
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(40):
            images, labels, _ = make_squares(64, generator)
            loss = F.cross_entropy(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        images, _, corners = make_squares(40, generator, positive=1)   # held out
        hits = 0
        for image, (top, left) in zip(images, corners.tolist()):
            row, column = peak(gradcam(net, image, target=1))
            # the heat map is upsampled from 10x10: allow the pixel around the 4x4 square
            hits += top - 1 <= row <= top + 4 and left - 1 <= column <= left + 4
    finally:
        torch.set_num_threads(threads)
    assert hits >= 36, f"the peak fell on the square in only {hits} of 40 images"   # chance: about 9%


def test_models_without_conv_layers_and_bad_arguments():
    softmax = build_model("softmax", (1, 28, 28), 10)
    with pytest.raises(ModelSpecError, match="conv layer"):
        gradcam(softmax, torch.zeros(1, 28, 28))
    net = bars_net()
    with pytest.raises(ModelSpecError, match="conv2d"):
        gradcam(net, bars_image(), layer="dense")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        gradcam(net, bars_image(), target=2)


def test_plot_gradcam_from_an_image_file(tmp_path):
    picture = (bars_image()[0] * 255).to(torch.uint8).numpy()
    path = tmp_path / "bars.png"
    Image.fromarray(picture).save(path)
    run = Run("unsaved", {}, {}, {"image_shape": [1, SIZE, SIZE], "mean": [0.0], "std": [1.0],
                                  "classes": ["縦", "横"], "ink": ""}, bars_net())
    for target in (None, 0):
        written = plot_gradcam(run, path, tmp_path / f"cam-{target}.png", target=target)
        with Image.open(written) as image:
            assert image.format == "PNG" and image.width > 600
