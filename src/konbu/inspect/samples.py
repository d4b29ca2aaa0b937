"""A dataset at a glance: a few samples of each class, one row per class, the class name in front.

    from konbu.inspect.samples import plot_class_samples
    plot_class_samples(load_dataset("kmnist", "train"), "kmnist.png", per_class=8)

Kana class names are drawn as glyphs with a CJK font (romaji without one): see konbu.inspect.fonts.
"""

import numpy as np
import torch

from .grids import plot_image_grid


def class_samples(labels: torch.Tensor, num_classes: int, per_class: int, seed: int = 0) -> list:
    """Per class, up to `per_class` sample indices chosen by a seeded shuffle (legacy RandomState:
    the same picks on every numpy)."""
    rng = np.random.RandomState(seed)
    labels = labels.numpy()
    picks = []
    for label in range(num_classes):
        index = np.flatnonzero(labels == label)
        rng.shuffle(index)
        picks.append(index[:per_class].tolist())
    return picks


def plot_class_samples(dataset, path, per_class: int = 8, max_classes: int = 50, seed: int = 0):
    """Write the grid to `path`; returns the path. Classes without samples in this split show blank."""
    num_classes = min(dataset.num_classes, max_classes)
    picks = class_samples(dataset.labels, num_classes, per_class, seed)
    blank = torch.zeros(dataset.images.shape[1:], dtype=torch.uint8)
    cells = []
    for index in picks:
        cells += [dataset.images[i] for i in index] + [blank] * (per_class - len(index))
    labels = [str(name) for name in dataset.classes[:num_classes]]
    title = f"{dataset.name} ({dataset.split}): {per_class} per class"
    return plot_image_grid(torch.stack(cells), None, path, columns=per_class, title=title, row_labels=labels)
