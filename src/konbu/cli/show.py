"""`konbu show ...` and `konbu compare`: figures of trained runs, each a PNG, each path printed.

    konbu show filters RUN [--layer NAME] [--initial]    first-layer kernels (--initial: before training)
    konbu show activations RUN IMAGE [--out PATH]        one image through every layer, then the probabilities
    konbu show weights RUN                               softmax regression: each class's weights as an image
    konbu show mistakes RUN [--n 36] [--data-dir DIR]    misclassified test images, worst first
    konbu show confusion RUN [--normalize]               confusion matrix + the most-confused pairs
    konbu show gradcam RUN IMAGE [--target LABEL]        where a conv model found the evidence
    konbu show curves RUN...                             training curves (several runs: overlaid)
    konbu show calibration RUN [--refit]                 reliability diagram before/after temperature scaling
    konbu compare RUN RUN...                             final numbers side by side + overlaid curves

Figures go to RUN/figures/<name>.png unless --out says otherwise.
"""

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import ConfigError
from ._app import command, console, group

show_app = group("show", "Draw what a trained model learned and where it fails, as PNG figures.")

RUN = typer.Argument(..., help="a run directory (written by `konbu train`)")
OUT = typer.Option(None, "--out", help="where to write the PNG [default: RUN/figures/<name>.png]")


def _load(path):
    from ..runs import Run
    return Run.load(path)


def _figure_path(run, out, name) -> Path:
    from ..runs import figure_path
    return Path(out) if out else figure_path(run.path, name)


def _wrote(path):
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def _class_index(target: str, classes) -> int:
    """A class given by its label ("7", "あ"), a kana label's romaji ("a") or its index ("3")."""
    from ..data.kana import romaji

    names = [str(c) for c in classes]
    if target in names:
        return names.index(target)
    romanised = [romaji(name) for name in names]
    if target.lower() in romanised:
        return romanised.index(target.lower())
    if target.isdigit() and int(target) < len(names):
        return int(target)
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise ConfigError(f"--target {target!r} is not a class of this run; give a label ({shown}) "
                      f"or an index 0-{len(names) - 1}")


@command("filters", on=show_app)
def filters(run: Path = RUN,
            layer: Optional[str] = typer.Option(None, help="a conv layer's name (konbu summary) [default: the first]"),
            initial: bool = typer.Option(False, "--initial", help="the filters as initialised, before training"),
            out: Optional[Path] = OUT):
    """The conv filters: first layer as small pictures, deeper layers as filters × input channels."""
    from ..inspect.filters import plot_filters

    loaded = _load(run)
    name = "filters" + (f"-{layer}" if layer else "") + ("-initial" if initial else "")
    model = loaded.initial_model() if initial else loaded.model
    _wrote(plot_filters(model, _figure_path(loaded, out, name), layer=layer,
                        when="before training" if initial else "after training"))


@command("activations", on=show_app)
def activations(run: Path = RUN, image: Path = typer.Argument(..., help="an image file"),
                max_maps: int = typer.Option(16, "--max-maps", help="feature maps drawn per layer"),
                out: Optional[Path] = OUT):
    """One image through the model: the input as it sees it, every layer's output, the probabilities."""
    from ..inspect.features import plot_activations

    if max_maps < 1:
        raise ConfigError(f"--max-maps must be at least 1, got {max_maps}")
    loaded = _load(run)
    _wrote(plot_activations(loaded, image, _figure_path(loaded, out, "activations"), max_maps=max_maps))


@command("weights", on=show_app)
def weights(run: Path = RUN, out: Optional[Path] = OUT):
    """Softmax regression / first dense layer: each class's (unit's) weights over the pixels."""
    from ..inspect.filters import plot_class_weights

    loaded = _load(run)
    _wrote(plot_class_weights(loaded.model, loaded.classes, loaded.preprocess["image_shape"],
                              _figure_path(loaded, out, "weights")))


@command("mistakes", on=show_app)
def mistakes(run: Path = RUN, n: int = typer.Option(36, "--n", help="how many mistakes to draw"),
             data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with the dataset's files"),
             out: Optional[Path] = OUT):
    """The misclassified test images, highest loss first, titled "true → predicted (p%)"."""
    from ..evaluate import own_split
    from ..reporting import draw_mistakes

    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    loaded = _load(run)
    drawn = draw_mistakes(loaded, own_split(loaded, "test", data_dir), n=n, out=out)
    console.print(f"{drawn['wrong']:,} of {drawn['n']:,} test images misclassified "
                  f"({drawn['wrong'] / max(drawn['n'], 1):.2%}); drawing the {drawn['shown']} with the highest loss",
                  highlight=False)
    _wrote(drawn["path"])


@command("confusion", on=show_app)
def confusion(run: Path = RUN,
              normalize: bool = typer.Option(False, "--normalize", help="divide each row by its total (recall)"),
              top: int = typer.Option(10, "--top", help="how many confused pairs to list"),
              data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with the dataset's files"),
              out: Optional[Path] = OUT):
    """Confusion matrix on the test split, and the pairs of classes mixed up most often."""
    from ..evaluate import own_split
    from ..inspect.confusion import most_confused_pairs
    from ..inspect.figures import plot_confusion
    from ..inspect.metrics import confusion_matrix

    loaded = _load(run)
    test = own_split(loaded, "test", data_dir)
    counts = confusion_matrix(loaded.logits(test.images).argmax(dim=1), test.labels, len(loaded.classes))
    name = "confusion-normalized" if normalize else "confusion"
    path = plot_confusion(counts, loaded.classes, _figure_path(loaded, out, name), normalize=normalize)
    pairs = most_confused_pairs(counts, loaded.classes, k=top)
    if pairs:
        table = Table(title="most confused pairs (test split)")
        for column in ("true", "predicted as", "images", "of the true class"):
            table.add_column(column, justify="left" if column in ("true", "predicted as") else "right")
        for pair in pairs:
            table.add_row(pair["true"], pair["predicted"], f"{pair['count']:,}", f"{pair['fraction']:.1%}")
        console.print(table)
    else:
        console.print("no confusions: every test image was classified correctly", highlight=False)
    _wrote(path)


@command("calibration", on=show_app)
def calibration(run: Path = RUN, out: Optional[Path] = OUT,
                refit: bool = typer.Option(False, "--refit", help="fit the temperature again even if the run has one")):
    """Reliability diagram before and after temperature scaling, with ECE; fits and stores T when missing."""
    from ..reporting import show_calibration
    from ..runs import CALIBRATION_FILE

    loaded = _load(run)
    summary, path, fitted = show_calibration(loaded, out=out, refit=refit)
    if fitted:
        console.print(f"fitted temperature {summary['temperature']:.4g} on {summary['n']:,} validation images; "
                      f"saved in {loaded.path / CALIBRATION_FILE}", highlight=False, soft_wrap=True)
    console.print(f"temperature {summary['temperature']:.4g}  validation NLL {summary['val_nll_before']:.4f} -> "
                  f"{summary['val_nll_after']:.4f}  ECE {summary['ece_before']:.2%} -> {summary['ece_after']:.2%}",
                  highlight=False)
    console.print(f"reliability diagram: {path}", highlight=False, soft_wrap=True)


@command("gradcam", on=show_app)
def gradcam(run: Path = RUN, image: Path = typer.Argument(..., help="an image file"),
            target: Optional[str] = typer.Option(None, help="class label or index [default: the predicted class]"),
            layer: Optional[str] = typer.Option(None, help="conv layer to read [default: the last]"),
            out: Optional[Path] = OUT):
    """Grad-CAM: a heat map of where a conv model found the evidence for a class."""
    from ..inspect.gradcam import plot_gradcam

    loaded = _load(run)
    index = None if target is None else _class_index(target, loaded.classes)
    _wrote(plot_gradcam(loaded, image, _figure_path(loaded, out, "gradcam"), target=index, layer=layer))


def _overlay(loaded_runs, out, name):
    from ..inspect.compare import plot_curves_overlay, unique_names

    histories = dict(zip(unique_names(loaded_runs), (run.history for run in loaded_runs)))
    return plot_curves_overlay(histories, _figure_path(loaded_runs[0], out, name))


@command("curves", on=show_app)
def curves(runs: List[Path] = typer.Argument(..., help="one or more run directories"), out: Optional[Path] = OUT):
    """Training curves: one run in detail (every batch), several overlaid per epoch."""
    loaded = [_load(path) for path in runs]
    if len(loaded) == 1:
        from ..inspect.figures import plot_curves
        from ..runs import read_metrics

        run = loaded[0]
        _wrote(plot_curves(read_metrics(run.path), _figure_path(run, out, "curves")))
        return
    _wrote(_overlay(loaded, out, "compare"))


def _format(key, value):
    if value is None:
        return "–"
    if key == "params":
        return f"{value:,}"
    if key == "seconds":
        return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"
    if "accuracy" in key:
        return f"{value:.2%}"
    if "loss" in key:
        return f"{value:.4f}"
    return str(value)


@command("compare")
def compare(runs: List[Path] = typer.Argument(..., help="two or more run directories"),
            out: Optional[Path] = typer.Option(
                None, "--out", help="where to write the curves [default: FIRST_RUN/figures/compare.png]")):
    """Runs side by side: final accuracy, loss, parameter count and train time, plus overlaid curves."""
    from ..inspect.compare import COLUMNS, compare_table, unique_names

    if len(runs) < 2:
        raise ConfigError("konbu compare needs two or more run directories; for one run use `konbu show curves RUN`")
    loaded = [_load(path) for path in runs]
    rows = compare_table(loaded)
    table = Table(title="runs compared")
    for key, heading in COLUMNS:
        table.add_column(heading, justify="left" if key in ("name", "model", "dataset") else "right")
    best = max((row["test_accuracy"] for row in rows if row["test_accuracy"] is not None), default=None)
    for name, row in zip(unique_names(loaded), rows):
        cells = [name if key == "name" else _format(key, row[key]) for key, _ in COLUMNS]
        table.add_row(*cells, style="bold" if best is not None and row["test_accuracy"] == best else None)
    console.print(table)
    _wrote(_overlay(loaded, out, "compare"))
