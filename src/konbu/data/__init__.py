"""Datasets: a registry of names -> loaders, each giving uint8 [N, C, H, W] images + int64 labels.

    from konbu.data import load_data, load_dataset, dataset_info
    train, test = load_data("mnist-sample")         # both splits from one load, like Keras's load_data()
    train = load_dataset("mnist-sample", "train")   # Dataset: .images, .labels, .classes, .info
    test = load_dataset("mnist", "test")            # downloaded once to ~/.cache/konbu/mnist
    kana = load_dataset("etl-hiragana", "train", data_dir="~/ETL", image_size=32, classes="all")
    mine = load_dataset("folder:photos", "train", image_size=64)
    checked = load_dataset("folder:photos", "train", strict=True)   # refuse a folder with a broken file
    digits01 = load_dataset("mnist", "train", classes="0,1")   # a subset, relabelled 0..k-1

Names: `konbu datasets` lists them; `folder:PATH` takes any folder of class sub-folders or a CSV.
Options:
- `data_dir`: the folder holding (or receiving) the dataset's files; default `$KONBU_HOME/<name>`.
- `image_size`: square side in pixels. etl-hiragana and folder: decode at this size (default 28,
  and the images' own size for a folder of same-size squares); any other dataset is resized to it.
- `classes`: etl-hiragana: None/"71" (ETL9's set) or "all"; any dataset: a comma-separated subset
  of class names or their romaji ("o,ki"), relabelled in that order.
- `strict`: folder: refuses a folder holding a file that is not a readable image (DatasetFormatError
  naming it) instead of skipping such files with one warning. The other datasets ignore it: their
  parsers refuse a corrupt file either way, as one bad record makes a whole IDX or pickle suspect.

Parsed splits are kept in a tensor cache (konbu.data.cache), so a second load is fast.
"""

import operator
from dataclasses import replace

from ..errors import ConfigError
from . import cifar, embedded, emnist, etl, folder, kuzushiji, mnist  # noqa: F401  (importing registers them)
from ._registry import get_entry, list_datasets, list_families, register_dataset, register_family
from .dataset import (Dataset, DatasetInfo, channel_stats, select_classes, stratified_split, subset_classes,
                      validation_split)
from .download import konbu_home
from .kana import romaji
from .resize import convert_channels, fit_images, resize_images

SPLITS = ("train", "test")


def _check_image_size(image_size):
    if image_size is None:
        return None
    try:
        size = operator.index(image_size)   # int or numpy integer; not 28.0, not "28", not True
    except TypeError:
        size = None
    if size is None or isinstance(image_size, bool) or not 4 <= size <= 1024:
        raise ConfigError(f"--image-size must be a whole number of pixels from 4 to 1024, got {image_size!r}")
    return size


def load_splits(name: str, data_dir=None, image_size=None, classes=None, strict=False):
    """(info, {"train": (images, labels), "test": (...)}) with the options applied; info matches the data."""
    image_size = _check_image_size(image_size)
    entry = get_entry(name)
    data_dir = str(data_dir) if data_dir else None
    own = {key: value for key, value in (("image_size", image_size), ("classes", classes), ("strict", strict))
           if key in entry.options}
    splits = entry.load(data_dir, **own)
    names = tuple(splits.get("classes") or entry.info.classes)
    aliases = tuple(romaji(str(name)) for name in names)   # kana -> romaji; other names alias themselves
    aliases = aliases if aliases != tuple(map(str, names)) else ()
    splits = {split: splits[split] for split in SPLITS}
    if classes is not None and "classes" not in entry.options:
        chosen = select_classes(classes, names, aliases)
        splits = {split: subset_classes(*pair, chosen) for split, pair in splits.items()}
        names = tuple(names[i] for i in chosen)
        aliases = tuple(aliases[i] for i in chosen) if aliases else ()
    if image_size is not None and "image_size" not in entry.options:
        splits = {split: (resize_images(images, image_size), labels) for split, (images, labels) in splits.items()}
    train_images = splits["train"][0]
    info = replace(entry.info, classes=names, aliases=aliases, image_shape=tuple(train_images.shape[1:]),
                   split_sizes={split: len(splits[split][1]) for split in SPLITS})
    if image_size is not None and info.ink == "mnist":
        # the ink box scales with the image: 20 of 28, like MNIST itself
        info = replace(info, ink_box=max(1, round(info.ink_box * info.image_shape[-1] / entry.info.image_shape[-1])))
    return info, splits


def load_data(name: str, data_dir=None, image_size=None, classes=None, strict=False) -> tuple[Dataset, Dataset]:
    """(train, test) from one load: the files are parsed and the statistics computed once. Both
    splits carry the train split's mean/std (what a model is normalised with)."""
    info, splits = load_splits(name, data_dir, image_size, classes, strict)
    mean, std = channel_stats(splits["train"][0])
    return tuple(Dataset(*splits[split], info, split, mean, std) for split in SPLITS)


def fit_to_shape(train: Dataset, test: Dataset, shape) -> tuple[Dataset, Dataset]:
    """(train, test) with their images brought to `shape` (C, H, W), another model's input: resized
    as --image-size does, grey <-> RGB converted (konbu.data.resize.fit_images); unchanged when they
    fit already. mean/std are recomputed from the fitted train split, as load_data computes them."""
    if train.image_shape == tuple(shape) and test.image_shape == tuple(shape):
        return train, test
    try:
        images = [fit_images(split.images, shape) for split in (train, test)]
    except ValueError as error:
        raise ConfigError(f"{train.name}: {error}; the model takes {tuple(shape)} images") from None
    info = replace(train.info, image_shape=tuple(shape))
    mean, std = channel_stats(images[0])
    return tuple(Dataset(fitted, split.labels, info, split.split, mean, std)
                 for fitted, split in zip(images, (train, test)))


def load_dataset(name: str, split: str = "train", data_dir=None, image_size=None, classes=None,
                 strict=False) -> Dataset:
    """Load one split of a dataset. mean/std are always those of the train split."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return load_data(name, data_dir, image_size, classes, strict)[SPLITS.index(split)]


# the settings of a training run (TrainConfig, or run.json's "config") that decide what is loaded ->
# the load_data keyword each one is (`strict_data` beside the training settings, `strict` here)
OPTIONS = {"data_dir": "data_dir", "image_size": "image_size", "classes": "classes", "strict_data": "strict"}


def dataset_options(settings) -> dict:
    """The data options among `settings` (a dict such as run.json's "config"), those given only:
    the one translation from training settings to load_data/load_dataset keywords."""
    return {keyword: settings[key] for key, keyword in OPTIONS.items() if settings.get(key) is not None}


def is_dynamic(name: str) -> bool:
    """True when a dataset's classes, shape or sizes depend on the user's files (etl-hiragana, folder:)."""
    entry = get_entry(name)
    return bool(entry.options) or name not in list_datasets()


def dataset_info(name: str, data_dir=None, image_size=None, classes=None, strict=False) -> DatasetInfo:
    """What a dataset declares. For datasets built from the user's files, or with options given,
    the files are read (through the cache) so the classes, shape and sizes are the real ones."""
    entry = get_entry(name)
    if is_dynamic(name) and (data_dir or name not in list_datasets()) or image_size or classes:
        return load_splits(name, data_dir, image_size, classes, strict)[0]
    return entry.info


def is_available(name: str, data_dir=None) -> bool:
    """Whether `name` loads now without a network."""
    return bool(get_entry(name).available(str(data_dir) if data_dir else None))


__all__ = ["Dataset", "DatasetInfo", "load_data", "load_dataset", "load_splits", "dataset_options", "list_datasets",
           "list_families", "register_dataset", "register_family", "dataset_info", "is_available", "is_dynamic",
           "validation_split", "stratified_split", "channel_stats", "konbu_home", "fit_to_shape", "convert_channels",
           "fit_images"]
