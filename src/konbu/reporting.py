"""After training: calibrate a run's percentages, draw every figure, and write its report.html.

    import konbu
    from konbu.reporting import calibrate_run, build_report
    run = konbu.Run.load("runs/deep")
    calibrate_run(run)           # fits T on the validation split -> calibration.json, figures/calibration.png
    build_report(run)            # figures/*.png + evaluation.json + diagnosis.json + report.html; its path
    build_report(run, data_dir="/mnt/mnist")      # the run's dataset lies elsewhere on this machine
    draw_mistakes(run)           # figures/mistakes.png and how many test images were wrong
    show_calibration(run)        # the reliability diagram, fitting T first when the run has none

    konbu report runs/deep               # the same from the CLI
    konbu show calibration runs/deep     # the reliability diagram alone

This module sits above konbu.inspect (it needs a loaded Run and the data): inspect draws and
writes pages from tensors and files, this module feeds it. Its functions only add files to the run
directory (atomically); the weights are never touched. The training loop calls them at the end of
fit() (konbu.train.finish): `fit_calibration(run, val)`, then `build_report(run, test, reliability=...)`,
which draws the reliability diagram with the other figures.

The validation split of a run trained before calibration existed is recomputed exactly as fit()
makes it: `validation_split(train, config.val_fraction, config.seed)`.
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from . import atomic
from .data import Dataset, validation_split
from .errors import ConfigError, MissingDataError, ModelSpecError
from .evaluate import evaluate_logits, resolve_dataset
from .forked import in_child
from .inspect import plot_confusion, plot_curves, write_report
from .inspect.calibration import calibration_summary, fit_temperature, plot_reliability
from .inspect.filters import plot_class_weights, plot_filters
from .inspect.mistakes import find_mistakes, plot_mistakes
from .runs import (CALIBRATION_FILE, DIAGNOSIS_FILE, EVALUATION_FILE, INITIAL_FILE, figure_path, read_metrics,
                   saved_config)

MISTAKES_SHOWN = 36        # a 6 x 6 gallery: enough to see patterns, small enough to embed


def run_validation_split(run, data_dir=None, full_train: Dataset | None = None) -> Dataset:
    """The run's validation images, recomputed the way fit() split them (same dataset, fraction, seed),
    from `full_train` when the caller has the run's whole train split loaded already.

    Raises ConfigError for a run trained without a validation split, MissingDataError when the
    run's dataset is not on this machine (`data_dir`: where it lies, if not where it was trained)."""
    config = saved_config(run.info)
    fraction, seed = config.get("val_fraction", 0.0), config.get("seed", run.info.get("seed", 0))
    if not fraction:
        raise ConfigError(f"{run.path} was trained without a validation split (val_fraction 0), and a temperature "
                          f"fitted on the test split would make its test numbers optimistic; train with "
                          f"--val-fraction 0.1 to calibrate")
    full_train = run.dataset("train", data_dir) if full_train is None else full_train
    _, val = validation_split(full_train, fraction, seed)
    return resolve_dataset(run, val)


def calibrate_run(run, val_dataset: Dataset | None = None, data_dir=None) -> dict:
    """Fit the softmax temperature on the validation split and store it in the run.

    Writes `calibration.json` ({"temperature", "val_nll_before", "val_nll_after", "ece_before",
    "ece_after", "bins", "n"}) and figures/calibration.png (reliability before and after), and sets
    `run.temperature`, so `run.predict` reports calibrated percentages at once. `val_dataset`
    None: recompute the split as fit() made it. Returns what calibration.json holds.
    """
    summary, reliability = fit_calibration(run, val_dataset, data_dir)
    draw_reliability(run, reliability)
    return summary


def fit_calibration(run, val_dataset: Dataset | None = None, data_dir=None) -> tuple[dict, tuple]:
    """calibrate_run without the figure: (what calibration.json holds, the reliability diagram's
    (val logits, labels)), for draw_reliability once the report's other figures are drawn too."""
    val = run_validation_split(run, data_dir) if val_dataset is None else resolve_dataset(run, val_dataset)
    logits = run.logits(val.images)
    temperature = fit_temperature(logits, val.labels)
    summary = calibration_summary(logits, val.labels, temperature)
    atomic.write_json(run.path / CALIBRATION_FILE, summary)
    run.temperature = temperature
    return summary, (logits, val.labels)


def draw_reliability(run, reliability: tuple) -> Path:
    """figures/calibration.png from fit_calibration's (logits, labels), with the run's temperature."""
    logits, labels = reliability
    return plot_reliability(logits, labels, run.temperature, figure_path(run.path, "calibration"))


def show_calibration(run, out=None, refit: bool = False, data_dir=None) -> tuple[dict, Path, bool]:
    """(summary, figure path, fitted): the reliability diagram before and after temperature scaling.
    Fits and stores the temperature first when the run has none (or with `refit`); `out` None draws
    RUN/figures/calibration.png."""
    val = run_validation_split(run, data_dir)
    fitted = refit or not (run.path / CALIBRATION_FILE).is_file()
    if fitted:
        summary = calibrate_run(run, val)   # writes calibration.json and the default figure
        if out is None:
            return summary, figure_path(run.path, "calibration"), True
    logits = run.logits(val.images)
    summary = calibration_summary(logits, val.labels, run.temperature)
    path = plot_reliability(logits, val.labels, run.temperature, out if out is not None else
                            figure_path(run.path, "calibration"))
    return summary, path, fitted


def draw_mistakes(run, test: Dataset | None = None, logits: torch.Tensor | None = None, n: int = MISTAKES_SHOWN,
                  out=None, data_dir=None) -> dict:
    """figures/mistakes.png (or `out`): the test split's `n` worst mistakes, titled with the
    calibrated probability (the percentage `konbu predict` would have said). Returns {"path",
    "wrong", "n" (test images), "shown"}. `logits`: the model's, when the caller has them already."""
    test = resolve_dataset(run, test, data_dir=data_dir)
    logits = run.logits(test.images) if logits is None else logits
    found = find_mistakes(logits / run.temperature, test.labels, n=n)
    wrong = int((logits.argmax(dim=1) != test.labels).sum())
    title = (f"the {len(found)} worst of {wrong:,} mistakes on {len(test):,} test images: "
             "true → predicted (probability of the prediction)")
    path = plot_mistakes(test.images, found, run.classes, out or figure_path(run.path, "mistakes"), title=title)
    return {"path": path, "wrong": wrong, "n": len(test), "shown": len(found)}


def build_report(run, test_dataset: Dataset | None = None, val_dataset: Dataset | None = None,
                 test_logits: torch.Tensor | None = None, test_metrics: dict | None = None, data_dir=None,
                 reliability: tuple | None = None) -> Path:
    """Draw every figure into run/figures/, write evaluation.json, then report.html; return its path.

    Figures: curves (metrics.jsonl), confusion and mistakes (test split), filters (first conv layer;
    the per-class weights of a model without one, e.g. softmax regression), calibration (validation
    split; fitted first if the run has no calibration.json yet). `test_dataset` None: the run's own
    dataset's test split, from `data_dir` when given (else where it was trained); `test_logits` and
    `test_metrics` (classification_metrics of them), when the caller already has them (fit() does),
    save computing them a second time; `reliability`: fit_calibration's (logits, labels) when the
    caller has just fitted the temperature. When the data is not on this machine (a run copied
    elsewhere), the figures and evaluation.json already in the run are kept and the page is rebuilt.
    """
    test = _dataset_or_none(lambda: resolve_dataset(run, test_dataset, data_dir=data_dir))
    calibrated = (run.path / CALIBRATION_FILE).is_file() and figure_path(run.path, "calibration").is_file()
    if reliability is None and (not calibrated or val_dataset is not None):
        if val_dataset is not None or saved_config(run.info).get("val_fraction"):
            val = (val_dataset if val_dataset is not None
                   else _dataset_or_none(lambda: run_validation_split(run, data_dir)))
            if val is not None:
                _, reliability = fit_calibration(run, val)
    logits = None if test is None else run.logits(test.images) if test_logits is None else test_logits
    metrics = None if test is None else evaluate_logits(run, test, logits, test_metrics)

    def test_figures():   # matplotlib alone: no model, no torch threads
        plot_curves(read_metrics(run.path), figure_path(run.path, "curves"))
        if metrics is not None:
            plot_confusion(torch.tensor(metrics["confusion"]), run.classes, figure_path(run.path, "confusion"))
            draw_mistakes(run, test, logits)

    # Three lanes on a 2-core CPU's two cores, ~2.5 s of drawing in ~1.5: these figures in a forked
    # child (matplotlib holds the GIL: a thread would wait), and in this process the diagnosis checks
    # (the model over the training images, in a thread: torch releases the GIL) beside the weights'
    # figures. The fork comes first, while this process has one thread; the diagnosis thread starts
    # after the last use of the model here, because some checks hook into the model.
    figures = in_child(test_figures)
    with ThreadPoolExecutor(max_workers=1) as pool:
        diagnosis = pool.submit(write_diagnosis, run, data_dir)
        _draw_weights(run)
        if reliability is not None:
            draw_reliability(run, reliability)
        if metrics is not None:
            atomic.write_json(run.path / EVALUATION_FILE, metrics)
        figures.join()
        diagnosis.result()
    return write_report(run.path)


def write_diagnosis(run, data_dir=None) -> list:
    """Run every konbu.diagnosis check and keep the findings in diagnosis.json (the report's
    Diagnosis section reads it); returns the findings. Checks whose data is not on this machine
    are left out (konbu.diagnosis says which ran)."""
    from .diagnosis import diagnose, list_checks

    findings = diagnose(run, data_dir)
    atomic.write_json(run.path / DIAGNOSIS_FILE, {"checks": list_checks(),
                                                  "findings": [finding.to_dict() for finding in findings]})
    return findings


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
            plot_filters(run.initial_model(), figure_path(run.path, "filters-initial"), when="before training")
        return plot_filters(run.model, figure_path(run.path, "filters"), when="after training")
    try:
        return plot_class_weights(run.model, run.classes, tuple(run.preprocess["image_shape"]),
                                  figure_path(run.path, "class_weights"))
    except ModelSpecError:
        return None
