"""After training: calibrate a run's percentages, draw every figure, and write its report.html.

    import konbu
    from konbu.reporting import calibrate_run, build_report
    run = konbu.Run.load("runs/deep")
    calibrate_run(run)           # fits T on the validation split -> calibration.json, figures/calibration.png
    build_report(run)            # figures/*.png + evaluation.json + report.html; returns the report's path

    konbu report runs/deep               # the same from the CLI
    konbu show calibration runs/deep     # the reliability diagram alone

This module sits above konbu.inspect (it needs a loaded Run and the data): inspect draws and
writes pages from tensors and files, this module feeds it. Both functions only add files to the run
directory (atomically); the weights are never touched. The training loop calls them at the end of
fit(): `calibrate_run(run, val)` then `build_report(run, test)`.

The validation split of a run trained before calibration existed is recomputed exactly as fit()
makes it: `validation_split(train, config.val_fraction, config.seed)`.
"""

from pathlib import Path

import torch

from . import atomic
from .data import Dataset, validation_split
from .errors import ConfigError, MissingDataError, ModelSpecError
from .evaluate import evaluate_logits, resolve_dataset
from .inspect import plot_confusion, plot_curves, write_report
from .inspect.calibration import calibration_summary, fit_temperature, plot_reliability
from .inspect.filters import plot_class_weights, plot_filters
from .inspect.mistakes import find_mistakes, plot_mistakes
from .runs import CALIBRATION_FILE, INITIAL_FILE, read_metrics

EVALUATION_FILE = "evaluation.json"
MISTAKES_SHOWN = 36        # a 6 x 6 gallery: enough to see patterns, small enough to embed


def figure_path(run, name: str) -> Path:
    return run.path / "figures" / f"{name}.png"


def run_validation_split(run) -> Dataset:
    """The run's validation images, recomputed the way fit() split them (same dataset, fraction, seed).

    Raises ConfigError for a run trained without a validation split, MissingDataError when the
    run's dataset is not on this machine."""
    config = run.info.get("config", {})
    fraction, seed = config.get("val_fraction", 0.0), config.get("seed", run.info.get("seed", 0))
    if not fraction:
        raise ConfigError(f"{run.path} was trained without a validation split (val_fraction 0), and a temperature "
                          f"fitted on the test split would make its test numbers optimistic; train with "
                          f"--val-fraction 0.1 to calibrate")
    full_train = run.dataset("train")
    _, val = validation_split(full_train, fraction, seed)
    return resolve_dataset(run, val)


def calibrate_run(run, val_dataset: Dataset | None = None) -> dict:
    """Fit the softmax temperature on the validation split and store it in the run.

    Writes `calibration.json` ({"temperature", "val_nll_before", "val_nll_after", "ece_before",
    "ece_after", "bins", "n"}) and figures/calibration.png (reliability before and after), and sets
    `run.temperature`, so `run.predict` reports calibrated percentages at once. `val_dataset`
    None: recompute the split as fit() made it. Returns what calibration.json holds.
    """
    val = run_validation_split(run) if val_dataset is None else resolve_dataset(run, val_dataset)
    logits = run.logits(val.images)
    temperature = fit_temperature(logits, val.labels)
    summary = calibration_summary(logits, val.labels, temperature)
    atomic.write_json(run.path / CALIBRATION_FILE, summary)
    plot_reliability(logits, val.labels, temperature, figure_path(run, "calibration"))
    run.temperature = temperature
    return summary


def build_report(run, test_dataset: Dataset | None = None, val_dataset: Dataset | None = None,
                 test_logits: torch.Tensor | None = None) -> Path:
    """Draw every figure into run/figures/, write evaluation.json, then report.html; return its path.

    Figures: curves (metrics.jsonl), confusion and mistakes (test split), filters (first conv layer;
    the per-class weights of a model without one, e.g. softmax regression), calibration (validation
    split; fitted first if the run has no calibration.json yet). `test_dataset` None: the run's own
    dataset's test split; `test_logits`, when the caller already has them (fit() does), saves running
    the model on it a second time. When that data is not on this machine (a run copied elsewhere),
    the figures and evaluation.json already in the run are kept and the page is rebuilt from them.
    """
    figures = run.path / "figures"
    plot_curves(read_metrics(run.path / "metrics.jsonl"), figures / "curves.png")
    _draw_weights(run)

    test = _dataset_or_none(lambda: resolve_dataset(run, test_dataset))
    if not (run.path / CALIBRATION_FILE).is_file() or not (figures / "calibration.png").is_file() or val_dataset:
        if val_dataset is not None or run.info.get("config", {}).get("val_fraction"):
            val = val_dataset if val_dataset is not None else _dataset_or_none(lambda: run_validation_split(run))
            if val is not None:
                calibrate_run(run, val)
    if test is not None:
        logits = run.logits(test.images) if test_logits is None else test_logits
        metrics = evaluate_logits(run, test, logits)
        atomic.write_json(run.path / EVALUATION_FILE, metrics)
        plot_confusion(torch.tensor(metrics["confusion"]), run.classes, figures / "confusion.png")
        # Titled with the calibrated probability: the percentage `konbu predict` would have said.
        mistakes = find_mistakes(logits / run.temperature, test.labels, n=MISTAKES_SHOWN)
        plot_mistakes(test.images, mistakes, run.classes, figures / "mistakes.png")
    return write_report(run.path)


def _dataset_or_none(load):
    try:
        return load()
    except MissingDataError:
        return None


def _draw_weights(run) -> Path | None:
    """figures/filters.png for a conv model; figures/class_weights.png for one without a conv layer
    (softmax regression, MLP); None for a model with neither a conv layer nor a dense layer on pixels."""
    if any(isinstance(module, torch.nn.Conv2d) for module in run.model.modules()):
        if (run.path / INITIAL_FILE).is_file():   # before and after: what training changed
            plot_filters(run.initial_model(), figure_path(run, "filters-initial"), when="before training")
        return plot_filters(run.model, figure_path(run, "filters"), when="after training")
    try:
        return plot_class_weights(run.model, run.classes, tuple(run.preprocess["image_shape"]),
                                  figure_path(run, "class_weights"))
    except ModelSpecError:
        return None
