"""Name -> dataset registry. Each loader declares its `DatasetInfo` and returns both splits.

    @register_dataset(DatasetInfo(name="digits", ...))
    def _digits(data_dir):  # -> {"train": (uint8 [N,C,H,W], int64 [N]), "test": (...)}

`available(data_dir)` says whether the data can be loaded right now without a network.
"""

from dataclasses import dataclass
from typing import Callable

from ..errors import UnknownNameError
from .dataset import DatasetInfo

_DATASETS: dict = {}


@dataclass(frozen=True)
class DatasetEntry:
    info: DatasetInfo
    load: Callable            # (data_dir or None) -> {"train": (images, labels), "test": (...)}
    available: Callable       # (data_dir or None) -> bool


def register_dataset(info: DatasetInfo, available: Callable = lambda data_dir: True):
    def decorate(load):
        if info.name in _DATASETS:
            raise ValueError(f"dataset {info.name!r} is registered twice")
        _DATASETS[info.name] = DatasetEntry(info, load, available)
        return load
    return decorate


def list_datasets():
    return sorted(_DATASETS)


def get_entry(name: str) -> DatasetEntry:
    if name not in _DATASETS:
        raise UnknownNameError(
            f"unknown dataset {name!r}; expected one of: {', '.join(list_datasets())}. "
            "Run `konbu datasets` to see them all.")
    return _DATASETS[name]
