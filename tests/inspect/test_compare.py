"""konbu.inspect.compare: the table of several runs' final numbers and the overlaid curves."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from konbu.inspect.compare import COLUMNS, compare_table, plot_curves_overlay, unique_names
from konbu.models import build_model


def epochs(accuracies, val_offset=-0.02):
    return [{"kind": "epoch", "epoch": e, "step": 100 * e, "train_loss": 2.0 / e, "train_accuracy": a,
             "val_loss": 2.1 / e, "val_accuracy": a + val_offset} for e, a in enumerate(accuracies, start=1)]


def run(name, model, accuracy, seconds, params=None, parent="runs"):
    info = {"name": name, "model": model, "dataset": "etl-hiragana", "config": {"epochs": 3}, "seconds": seconds,
            "final": {"train_accuracy": accuracy + 0.01, "val_accuracy": accuracy - 0.01, "test_accuracy": accuracy,
                      "test_loss": 1.0 - accuracy}}
    if params is not None:
        info["summary"] = {"total_params": params}
    return SimpleNamespace(info=info, path=Path(parent) / name, model=None)


def test_table_holds_the_hiragana_comparison():
    softmax = run("softmax", "softmax", 0.2879, 12.5, params=55_735)
    cnn = run("deep", "deep-mnist", 0.8715, 310.0, params=3_274_634)
    rows = compare_table([softmax, cnn])
    assert [row["name"] for row in rows] == ["softmax", "deep"]
    assert rows[0]["test_accuracy"] == 0.2879 and rows[1]["test_accuracy"] == 0.8715
    assert rows[0]["params"] == 55_735 and rows[1]["seconds"] == 310.0
    assert rows[1]["model"] == "deep-mnist" and rows[1]["dataset"] == "etl-hiragana" and rows[1]["epochs"] == 3
    assert all(set(row) == {key for key, _ in COLUMNS} for row in rows)


def test_params_fall_back_on_the_model_and_missing_numbers_are_none():
    model = build_model("softmax", (1, 28, 28), 10)
    unfinished = SimpleNamespace(info={"name": "running", "model": "softmax", "dataset": "mnist"},
                                 path=Path("runs/running"), model=model)
    row = compare_table([unfinished])[0]
    assert row["params"] == 28 * 28 * 10 + 10                # counted from the weights: 7,850
    assert row["test_accuracy"] is None and row["seconds"] is None and row["epochs"] is None


def test_names_are_made_unique_with_the_parent_folder():
    runs = [run("cnn", "lenet", 0.9, 1.0, parent="a"), run("cnn", "lenet", 0.91, 1.0, parent="b"),
            run("mlp", "mlp", 0.8, 1.0)]
    assert unique_names(runs) == ["a/cnn", "b/cnn", "mlp"]


def test_overlay_draws_several_runs_and_skips_batch_records(tmp_path):
    histories = {
        "softmax": epochs([0.20, 0.25, 0.2879]),
        "deep": [{"kind": "batch", "step": 5, "loss": 3.0, "accuracy": 0.1}] + epochs([0.5, 0.8, 0.8715]),
        "empty": [],
    }
    path = plot_curves_overlay(histories, tmp_path / "compare.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 1000
    single = plot_curves_overlay({"one": epochs([0.5])}, tmp_path / "one.png")
    with Image.open(single) as image:
        assert image.format == "PNG"
    with pytest.raises(ValueError):
        plot_curves_overlay({}, tmp_path / "none.png")


def test_overlay_lines_carry_the_epoch_values(tmp_path, monkeypatch):
    # The drawn points are the records' values: read them back from the figure before it is saved.
    import konbu.inspect.compare as compare

    drawn = {}

    def keep(figure, path):
        for ax in figure.axes:
            for line in ax.get_lines():
                drawn[(ax.get_title(), line.get_label())] = (list(line.get_xdata()), list(line.get_ydata()))
        return Path(path)

    monkeypatch.setattr(compare, "save_figure", keep)
    plot_curves_overlay({"softmax": epochs([0.20, 0.2879])}, tmp_path / "c.png")
    x, y = drawn[("Accuracy (higher is better)", "softmax (validation)")]
    assert x == [1, 2] and y == pytest.approx([0.18, 0.2679])
    x, y = drawn[("Loss (lower is better)", "softmax (training)")]
    assert y == pytest.approx([2.0, 1.0])
