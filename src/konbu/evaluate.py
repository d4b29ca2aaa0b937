"""Evaluate a run on a dataset split: loss, accuracy, top-5, per-class report, confusion.

    konbu evaluate runs/deep --json
    konbu.Run.load("runs/deep").evaluate()          # its own dataset's test split
"""

import torch

from .data import Dataset, load_dataset
from .errors import ShapeError
from .inspect import classification_metrics, plot_confusion


def evaluate(run, dataset=None, split: str = "test", data_dir=None, figures: bool = False) -> dict:
    """`dataset`: a Dataset, a registry name, or None for the dataset the run was trained on."""
    if not isinstance(dataset, Dataset):
        name = dataset or run.info["dataset"]
        if data_dir is None and name == run.info["dataset"]:
            data_dir = run.info["config"].get("data_dir")
        dataset = load_dataset(name, split, data_dir)
    expected = tuple(run.preprocess["image_shape"])
    if dataset.image_shape != expected:
        raise ShapeError(f"the run's model takes images of shape {expected} (C, H, W) but dataset "
                         f"{dataset.name!r} has {dataset.image_shape}; evaluate on a dataset of the same shape")
    if dataset.num_classes != len(run.classes):
        raise ShapeError(f"the run's model has {len(run.classes)} classes but dataset {dataset.name!r} has "
                         f"{dataset.num_classes}; evaluate on a dataset with the same classes")
    metrics = classification_metrics(run.logits(dataset.images), dataset.labels, run.classes)
    metrics = {"dataset": dataset.name, "split": dataset.split, **metrics}
    if figures:
        path = run.path / "figures" / "confusion.png"
        plot_confusion(torch.tensor(metrics["confusion"]), run.classes, path)
        metrics["confusion_figure"] = str(path)
    return metrics
