"""konbu.inspect.features: every module's output for one image, shaped as the summary says, equal
to the same computation done by hand with torch.nn.functional; and the step-through figure."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from konbu.errors import ShapeError
from konbu.inference import normalise
from konbu.inspect.features import feature_maps, model_input, plot_activations
from konbu.models import build_model, get_model_entry, list_models, summary
from konbu.runs import Run
from konbu.preprocess import to_model_input

KANA = ["あ", "い", "う", "え", "お"]


def fake_run(model_name, input_shape=(1, 28, 28), classes=None):
    """A run without a run directory: its model and preprocessing are all the inspection needs."""
    classes = classes or [str(i) for i in range(10)]
    torch.manual_seed(0)
    net = build_model(model_name, input_shape, len(classes)).eval()
    channels = input_shape[0]
    preprocess = {"image_shape": list(input_shape), "mean": [0.13] * channels, "std": [0.31] * channels,
                  "classes": classes, "ink": ""}
    return Run("unsaved", {}, {}, preprocess, net)


def random_image(shape, seed=1):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def keras_order(shape):
    shape = list(shape)
    return shape[1:] + shape[:1] if len(shape) == 3 else shape


@pytest.mark.parametrize("name", list_models())
def test_shapes_equal_the_summary_for_every_zoo_model(name):
    entry = get_model_entry(name)
    run = fake_run(name, tuple(entry.input_shape))
    maps = feature_maps(run, random_image(tuple(entry.input_shape)))
    expected_names = [module for layer in run.model.layers for module in layer.modules]
    assert list(maps) == expected_names                       # every module, in the order the model runs them
    rows = {row.name: row for row in summary(run.model, tuple(entry.input_shape)).rows}
    for layer in run.model.layers:
        for module in layer.modules:                          # conv2d and conv2d_relu: the row's shape
            assert keras_order(maps[module].shape) == rows[layer.name].output_shape[1:], (layer.name, module)


def test_values_equal_the_layers_computed_by_hand():
    run = fake_run("tfjs-mnist")
    image = random_image((1, 28, 28))
    maps = feature_maps(run, image)
    net = run.model
    x = normalise(image[None], run.preprocess["mean"], run.preprocess["std"])
    conv = net.module_named("conv2d")
    by_hand = F.conv2d(x, conv.weight, conv.bias)[0]
    torch.testing.assert_close(maps["conv2d"], by_hand)
    # the ReLU module runs in place: the conv picture must still hold its negative values
    assert (maps["conv2d"] < 0).any()
    torch.testing.assert_close(maps["conv2d_relu"], by_hand.clamp(min=0))
    torch.testing.assert_close(maps["max_pooling2d"], F.max_pool2d(by_hand.clamp(min=0)[None], 2)[0])
    with torch.no_grad():
        torch.testing.assert_close(maps["dense_1"], net(x)[0])  # the last output is the logits
    assert maps["flatten"].shape == (32 * 3 * 3,)


def test_a_file_is_prepared_like_predict_and_mode_is_restored(tmp_path):
    run = fake_run("chollet-mnist")
    run.preprocess["ink"], run.preprocess["ink_box"] = "mnist", 20
    picture = torch.zeros(40, 40, dtype=torch.uint8)
    picture[10:30, 18:22] = 255                               # a bar of ink, off-size: predict re-centres it
    path = tmp_path / "one.png"
    Image.fromarray(picture.numpy()).save(path)
    run.model.train()
    from_file = feature_maps(run, path)
    assert run.model.training                                 # back in the mode it was given in
    from_tensor = feature_maps(run, to_model_input(path, run.preprocess))
    for name in from_file:
        torch.testing.assert_close(from_file[name], from_tensor[name])
    assert torch.equal(model_input(path, run.preprocess), to_model_input(path, run.preprocess))


def test_a_prepared_tensor_of_the_wrong_shape_is_a_shape_error():
    run = fake_run("softmax")
    with pytest.raises(ShapeError, match=r"\[1, 28, 28\]"):
        feature_maps(run, random_image((1, 32, 32)))
    maps = feature_maps(run, random_image((1, 1, 28, 28)))    # a batch of one is accepted
    assert list(maps) == ["flatten", "dense"]


def test_plot_activations_draws_conv_and_dense_models_with_kana_labels(tmp_path):
    for name, shape in (("tfjs-mnist", (1, 28, 28)), ("softmax", (1, 28, 28)), ("cifar10-net", (3, 32, 32))):
        run = fake_run(name, shape, classes=KANA)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = plot_activations(run, random_image(shape), tmp_path / f"{name}.png", max_maps=8)
        assert not [w for w in caught if "missing from" in str(w.message)], [str(w.message) for w in caught]
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 800 and image.height >= 400


def test_plot_activations_rejects_max_maps_below_one(tmp_path):
    with pytest.raises(ValueError, match="max_maps"):
        plot_activations(fake_run("softmax"), random_image((1, 28, 28)), tmp_path / "a.png", max_maps=0)
