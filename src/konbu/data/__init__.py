"""Datasets: a registry of names -> loaders, each giving uint8 [N, C, H, W] images + int64 labels.

    from konbu.data import load_dataset
    train = load_dataset("mnist-sample", "train")   # Dataset: .images, .labels, .classes, .info
"""

from ..errors import ConfigError
from . import embedded, mnist  # noqa: F401  (importing registers the datasets)
from ._registry import get_entry, list_datasets, register_dataset
from .dataset import Dataset, DatasetInfo, channel_stats, stratified_split, validation_split

SPLITS = ("train", "test")


def dataset_info(name: str) -> DatasetInfo:
    return get_entry(name).info


def is_available(name: str, data_dir=None) -> bool:
    return bool(get_entry(name).available(data_dir))


def load_dataset(name: str, split: str = "train", data_dir=None) -> Dataset:
    """Load one split of a registered dataset. mean/std are always those of the train split."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    entry = get_entry(name)
    splits = entry.load(str(data_dir) if data_dir else None)
    mean, std = channel_stats(splits["train"][0])
    images, labels = splits[split]
    return Dataset(images, labels, entry.info, split, mean, std)


__all__ = ["Dataset", "DatasetInfo", "load_dataset", "list_datasets", "register_dataset", "dataset_info",
           "is_available", "validation_split", "stratified_split", "channel_stats"]
