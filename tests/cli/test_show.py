"""`konbu show ...` and `konbu compare` through the CLI runner: each figure command writes a PNG
and prints its path; each user mistake exits 2 with a message instead of a traceback."""

import json
import shutil

import pytest
from PIL import Image

import konbu
from konbu.cli.testing import invoke as konbu_cli
from konbu.data import load_dataset


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A one-epoch CNN and a one-epoch softmax regression on the embedded MNIST sample."""
    root = tmp_path_factory.mktemp("show")
    # threads=1: on a shared 2-core machine, more threads mostly wait on each other
    cnn = konbu.fit(model="tfjs-mnist", epochs=1, quiet=True, threads=1, out=str(root / "cnn"))
    softmax = konbu.fit(model="softmax", epochs=1, quiet=True, threads=1, out=str(root / "softmax"))
    digit = root / "digit.png"
    Image.fromarray(load_dataset("mnist-sample", "test").images[0, 0].numpy()).save(digit)
    return cnn.path, softmax.path, digit


def wrote_png(result, expected):
    assert result.exit_code == 0, result.output
    assert f"wrote {expected}" in result.output.replace("\n", "")
    with Image.open(expected) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 150
        image.verify()


def test_filters_first_layer_deeper_layer_and_out(runs, tmp_path):
    cnn, _, _ = runs
    wrote_png(konbu_cli("show", "filters", cnn), cnn / "figures" / "filters.png")
    wrote_png(konbu_cli("show", "filters", cnn, "--layer", "conv2d_1"), cnn / "figures" / "filters-conv2d_1.png")
    wrote_png(konbu_cli("show", "filters", cnn, "--out", tmp_path / "f.png"), tmp_path / "f.png")


def test_activations_and_gradcam_of_an_image(runs):
    cnn, _, digit = runs
    wrote_png(konbu_cli("show", "activations", cnn, digit), cnn / "figures" / "activations.png")
    wrote_png(konbu_cli("show", "gradcam", cnn, digit), cnn / "figures" / "gradcam.png")
    wrote_png(konbu_cli("show", "gradcam", cnn, digit, "--target", "3", "--layer", "conv2d_1"),
              cnn / "figures" / "gradcam.png")


def test_weights_of_softmax_regression(runs):
    _, softmax, digit = runs
    wrote_png(konbu_cli("show", "weights", softmax), softmax / "figures" / "weights.png")
    wrote_png(konbu_cli("show", "activations", softmax, digit), softmax / "figures" / "activations.png")


def test_mistakes_and_confusion_on_the_test_split(runs):
    cnn, _, _ = runs
    result = konbu_cli("show", "mistakes", cnn, "--n", "12")
    wrote_png(result, cnn / "figures" / "mistakes.png")
    assert "of 1,000 test images misclassified" in result.output
    result = konbu_cli("show", "confusion", cnn, "--normalize", "--top", "3")
    wrote_png(result, cnn / "figures" / "confusion-normalized.png")
    assert "most confused pairs" in result.output and "predicted as" in result.output


def test_curves_and_compare(runs):
    cnn, softmax, _ = runs
    wrote_png(konbu_cli("show", "curves", cnn), cnn / "figures" / "curves.png")
    wrote_png(konbu_cli("show", "curves", softmax, cnn), softmax / "figures" / "compare.png")
    result = konbu_cli("compare", softmax, cnn)
    wrote_png(result, softmax / "figures" / "compare.png")
    for text in ("softmax", "tfjs-mnist", "7,850", "33,194", "test acc", "train time"):
        assert text in result.output
    accuracy = json.loads((cnn / "run.json").read_text())["final"]["test_accuracy"]
    assert f"{accuracy:.2%}" in result.output


@pytest.mark.parametrize("args, message", [
    (("show", "filters", "{cnn}", "--layer", "dense"), "conv2d, conv2d_1, conv2d_2"),
    (("show", "filters", "{softmax}"), "no conv layer"),
    (("show", "weights", "{cnn}"), "konbu show filters"),
    (("show", "gradcam", "{softmax}", "{digit}"), "conv layer"),
    (("show", "gradcam", "{cnn}", "{digit}", "--target", "nine"), "not a class"),
    (("show", "activations", "{cnn}", "{missing}"), "missing.png"),
    (("show", "mistakes", "{cnn}", "--n", "0"), "--n"),
    (("show", "filters", "{missing}"), "not found"),
    (("compare", "{cnn}"), "two or more"),
])
def test_user_mistakes_exit_2(runs, tmp_path, args, message):
    cnn, softmax, digit = runs
    names = {"cnn": cnn, "softmax": softmax, "digit": digit, "missing": tmp_path / "missing.png"}
    result = konbu_cli(*[arg.format(**names) for arg in args])
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_a_run_whose_dataset_is_not_here_exits_2(runs, tmp_path):
    cnn, _, _ = runs
    moved = tmp_path / "moved"
    shutil.copytree(cnn, moved)
    info = json.loads((moved / "run.json").read_text())
    # trained on the user's own folder of photos, then copied to a machine without that folder
    info["dataset"] = f"folder:{tmp_path / 'photos'}"
    (moved / "run.json").write_text(json.dumps(info))
    for command in ("mistakes", "confusion"):
        result = konbu_cli("show", command, moved)
        assert result.exit_code == 2, result.output
        assert "photos" in result.output and "cannot be loaded here" in result.output.replace("\n", "")


def test_a_target_class_by_label_romaji_or_index():
    from konbu.cli.show import _class_index
    from konbu.errors import ConfigError

    assert _class_index("き", ["あ", "き", "く"]) == 1
    assert _class_index("ku", ["あ", "き", "く"]) == 2        # romaji, for a keyboard without kana
    assert _class_index("0", ["あ", "き", "く"]) == 0         # an index
    assert _class_index("7", [str(i) for i in range(10)]) == 7
    with pytest.raises(ConfigError, match="0-2"):
        _class_index("5", ["あ", "き", "く"])
