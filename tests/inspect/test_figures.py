"""konbu.inspect.figures: every function writes a readable PNG, atomically, in every data situation."""

import math

import pytest
import torch
from PIL import Image

from konbu.inspect.figures import plot_confusion, plot_curves, plot_input_check
from konbu.inspect.metrics import confusion_matrix, normalized_confusion


def make_records(epochs=3, steps_per_epoch=20, validation=True):
    records, step = [], 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
            step += 1
            loss = 2.0 * math.exp(-step / 15) + 0.1
            records.append({"kind": "batch", "epoch": epoch, "step": step, "loss": loss,
                            "accuracy": 1 - loss / 2.2, "lr": 0.001})
        record = {"kind": "epoch", "epoch": epoch, "step": step, "train_loss": 0.5, "train_accuracy": 0.8,
                  "seconds": 1.3, "images_per_second": 2900.0}
        if validation:
            record.update(val_loss=0.4, val_accuracy=0.85)
        records.append(record)
    return records


def assert_png(path, returned):
    assert returned == path
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 200 and image.height > 200
        assert image.mode in ("RGB", "RGBA")
        image.verify()
    # Written through a temporary file + rename: nothing half-written is left beside it.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize("validation", [True, False])
def test_plot_curves(tmp_path, validation):
    path = tmp_path / "figures" / "curves.png"
    assert_png(path, plot_curves(make_records(validation=validation), path))


@pytest.mark.parametrize("records", [
    [r for r in make_records() if r["kind"] == "epoch"],     # epoch records only
    make_records(epochs=1, steps_per_epoch=3),                # too short to smooth
    [],                                                       # nothing logged yet
    [{"kind": "batch", "epoch": 1, "step": 1, "loss": float("nan")}],   # diverged, no accuracy
], ids=["epochs-only", "short", "empty", "nan"])
def test_plot_curves_edge_cases(tmp_path, records):
    path = tmp_path / "curves.png"
    assert_png(path, plot_curves(records, path))


@pytest.mark.parametrize("num_classes,normalize", [(3, False), (10, False), (10, True), (50, True)])
def test_plot_confusion(tmp_path, normalize, num_classes):
    g = torch.Generator().manual_seed(num_classes)
    targets = torch.randint(0, num_classes, (500,), generator=g)
    predictions = torch.where(torch.rand(500, generator=g) < 0.8, targets,
                              torch.randint(0, num_classes, (500,), generator=g))
    confusion = confusion_matrix(predictions, targets, num_classes)
    classes = [f"class {i}" for i in range(num_classes)]
    path = tmp_path / "confusion.png"
    assert_png(path, plot_confusion(confusion, classes, path, normalize=normalize))


def test_plot_confusion_normalized_values_and_list_input(tmp_path):
    confusion = [[5, 1, 0], [0, 0, 0], [2, 2, 4]]      # as stored in metrics JSON; class 1 is empty
    normalized = normalized_confusion(confusion)
    assert normalized.min() >= 0 and normalized.max() <= 1
    assert normalized.sum(1).tolist() == pytest.approx([1.0, 0.0, 1.0])
    path = tmp_path / "confusion.png"
    assert_png(path, plot_confusion(confusion, ["a", "b", "c"], path, normalize=True))


def test_plot_confusion_rejects_mismatched_classes(tmp_path):
    with pytest.raises(ValueError, match="class names"):
        plot_confusion(torch.zeros(3, 3, dtype=torch.long), ["a", "b"], tmp_path / "c.png")


@pytest.mark.parametrize("channels,count", [(1, 16), (3, 5), (1, 0)])
def test_plot_input_check(tmp_path, channels, count):
    g = torch.Generator().manual_seed(0)
    model_input = torch.randint(0, 256, (channels, 28, 28), dtype=torch.uint8, generator=g)
    examples = torch.randint(0, 256, (count, channels, 28, 28), dtype=torch.uint8, generator=g)
    path = tmp_path / "input.png"
    assert_png(path, plot_input_check(model_input, examples, "7", 0.93, path))


def test_plot_input_check_rejects_float_images(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        plot_input_check(torch.rand(1, 28, 28), torch.zeros(0, 1, 28, 28, dtype=torch.uint8), "7", 0.5,
                         tmp_path / "input.png")


def test_figures_leave_pyplot_alone(tmp_path):
    # Drawing on an Agg canvas directly: a user's notebook backend and pyplot's figure list untouched.
    import subprocess
    import sys

    code = (
        "import sys, torch; from konbu.inspect.figures import plot_confusion;"
        f"plot_confusion(torch.eye(2, dtype=torch.long), ['a', 'b'], {str(tmp_path / 'c.png')!r});"
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
