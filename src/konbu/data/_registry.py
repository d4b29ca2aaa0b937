"""Name -> dataset registry. Each loader declares its `DatasetInfo` and returns both splits.

    @register_dataset(DatasetInfo(name="digits", ...))
    def _digits(data_dir):  # -> {"train": (uint8 [N,C,H,W], int64 [N]), "test": (...)}

    @register_dataset(DatasetInfo(name="etl-hiragana", ...), options=("image_size", "classes"))
    def _etl(data_dir, image_size=None, classes=None):   # options it applies itself while parsing
        return {"train": ..., "test": ..., "classes": ("あ", ...)}   # classes found in the files

    @register_family("folder:")           # names made at run time: "folder:PATH"
    def _folder_entry(name) -> DatasetEntry

`available(data_dir)` says whether the data can be loaded right now without a network. A loader
may return "classes" when its class names depend on the files; otherwise `info.classes` stands.
"""

from dataclasses import dataclass
from typing import Callable

from ..errors import UnknownNameError
from .dataset import DatasetInfo

_DATASETS: dict = {}
_FAMILIES: dict = {}


@dataclass(frozen=True)
class DatasetEntry:
    info: DatasetInfo
    load: Callable            # (data_dir or None, **options) -> {"train": (images, labels), "test": (...)}
    available: Callable       # (data_dir or None) -> bool
    options: tuple = ()       # options the loader applies itself ("image_size", "classes", "strict");
                              # load_splits passes a loader only those it declares


def register_dataset(info: DatasetInfo, available: Callable = lambda data_dir: True, options: tuple = ()):
    def decorate(load):
        if info.name in _DATASETS:
            raise ValueError(f"dataset {info.name!r} is registered twice")
        _DATASETS[info.name] = DatasetEntry(info, load, available, tuple(options))
        return load
    return decorate


def register_family(prefix: str):
    """Names that start with `prefix` are built on demand by `make(name) -> DatasetEntry`."""
    def decorate(make):
        if prefix in _FAMILIES:
            raise ValueError(f"dataset family {prefix!r} is registered twice")
        _FAMILIES[prefix] = make
        return make
    return decorate


def list_datasets():
    return sorted(_DATASETS)


def list_families():
    return sorted(_FAMILIES)


def get_entry(name: str) -> DatasetEntry:
    if name in _DATASETS:
        return _DATASETS[name]
    for prefix, make in _FAMILIES.items():
        if name.startswith(prefix):
            return make(name)
    families = ", ".join(f"{prefix}PATH" for prefix in list_families())
    raise UnknownNameError(
        f"unknown dataset {name!r}; expected one of: {', '.join(list_datasets())}"
        + (f", or {families}" if families else "") + ". Run `konbu datasets` to see them all.")
