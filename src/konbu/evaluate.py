"""Evaluate a run on a dataset split: loss, accuracy, top-5, per-class report, confusion, calibration.

    konbu evaluate runs/deep --json
    konbu.Run.load("runs/deep").evaluate()          # its own dataset's test split

Calibration (the run's temperature T from calibration.json, 1.0 without one) never changes a
prediction, so accuracy, top-5, the per-class table and the confusion matrix are those of the raw
logits. "loss" is the raw cross-entropy too, the number training logged as test_loss; next to it
are "calibrated_loss" (cross-entropy of logits / T), and "ece" / "calibrated_ece": the expected
calibration error (15 equal-width bins) of the percentages before and after scaling by T.
"""

import warnings

import torch

from .data import Dataset, load_dataset
from .errors import KonbuError, MissingDataError, ShapeError
from .inspect import classification_metrics, plot_confusion
from .inspect.calibration import expected_calibration_error, nll
from .runs import figure_path
from .train.config import check_tta


def evaluate(run, dataset=None, split: str = "test", data_dir=None, figures: bool = False,
             tta: str | None = None) -> dict:
    """`dataset`: a Dataset, a registry name, or None for the dataset the run was trained on; `tta`:
    test-time augmentation (konbu.inference), None for the run's own (its --tta)."""
    asked, tta = tta is not None, run.tta if tta is None else check_tta(tta)
    dataset = resolve_dataset(run, dataset, split, data_dir)
    if asked and tta != "none":   # the run's own --tta warned when it trained
        from .train.augment import tta_safety_warning
        if message := tta_safety_warning(tta, dataset.info):
            warnings.warn(message)
    metrics = evaluate_logits(run, dataset, run.logits(dataset.images, tta=tta))
    if tta != "none":
        metrics["tta"] = tta
    if figures:
        path = figure_path(run.path, "confusion")
        plot_confusion(torch.tensor(metrics["confusion"]), run.classes, path)
        metrics["confusion_figure"] = str(path)
    return metrics


def resolve_dataset(run, dataset=None, split: str = "test", data_dir=None) -> Dataset:
    """A Dataset the run's model can take: `dataset` itself, or loaded by name (None: the run's own),
    checked against the run's image shape and number of classes (ShapeError otherwise)."""
    if not isinstance(dataset, Dataset):
        name = dataset or run.info["dataset"]
        # the run's own dataset comes with the run's options (folder, image size, classes)
        dataset = run.dataset(split, data_dir) if name == run.info["dataset"] else load_dataset(name, split, data_dir)
    expected = tuple(run.preprocess["image_shape"])
    if dataset.image_shape != expected:
        raise ShapeError(f"the run's model takes images of shape {expected} (C, H, W) but dataset "
                         f"{dataset.name!r} has {dataset.image_shape}; evaluate on a dataset of the same shape")
    if dataset.num_classes != len(run.classes):
        raise ShapeError(f"the run's model has {len(run.classes)} classes but dataset {dataset.name!r} has "
                         f"{dataset.num_classes}; evaluate on a dataset with the same classes")
    return dataset


def own_split(run, split: str = "test", data_dir=None) -> Dataset:
    """A split of the dataset the run was trained on, checked against the run's model; a dataset
    that cannot be loaded on this machine (a run copied elsewhere) is a MissingDataError saying so."""
    try:
        dataset = run.dataset(split, data_dir)   # with the run's own options (image size, classes)
    except KonbuError as error:
        raise MissingDataError(f"this run was trained on {run.info.get('dataset')!r}, whose {split} split cannot "
                               f"be loaded here: {error}") from None
    return resolve_dataset(run, dataset)


def evaluate_logits(run, dataset: Dataset, logits: torch.Tensor, metrics: dict | None = None) -> dict:
    """The metrics of `evaluate` from logits already computed for `dataset` (the report reuses
    them for the mistakes gallery instead of running the model twice); `metrics`: their
    classification_metrics, when the caller has them already (fit() does)."""
    metrics = classification_metrics(logits, dataset.labels, run.classes) if metrics is None else metrics
    return {"dataset": dataset.name, "split": dataset.split, **metrics, "temperature": run.temperature,
            "calibrated_loss": nll(logits, dataset.labels, run.temperature),
            "ece": expected_calibration_error(logits.softmax(dim=1), dataset.labels),
            "calibrated_ece": expected_calibration_error(run.probabilities(logits=logits), dataset.labels)}
