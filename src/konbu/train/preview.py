"""See what an augmentation policy does before training with it: originals beside augmented copies.

    from konbu.train.preview import preview_augment
    preview_augment("mnist-sample", "digits,cutout=6,mixup=0.4", "grid.png", n=3, copies=4, seed=1)

    konbu augment preview mnist-sample --augment digits --out grid.png

Each row is one training image: the original first, then augmented copies, each titled with its
target (with mixup or cutmix, the two classes and their weights). The same seed draws the same
images and the same augmentations.
"""

import warnings
from pathlib import Path

import torch

from ..data import load_dataset
from ..inspect.grids import plot_image_grid
from .augment import make_augment
from .epoch import alternating_halves, mirror_half


def pick_examples(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of n images in a seeded random order, distinct classes first (one row per class)."""
    order = torch.randperm(labels.shape[0], generator=generator)
    seen, first, rest = set(), [], []
    for index in order.tolist():
        label = int(labels[index])
        (rest if label in seen else first).append(index)
        seen.add(label)
        if len(first) >= n:
            break
    return torch.tensor((first + rest)[:n], dtype=torch.long)


def target_title(target, classes) -> str:
    """'7' for a hard label; '7 62% / 1 38%' for a mixed one."""
    if target.ndim == 0:
        return str(classes[int(target)])
    weights, top = target.topk(min(2, target.shape[0]))
    if weights[1] < 0.005:
        return str(classes[int(top[0])])
    return " / ".join(f"{classes[int(c)]} {w:.0%}" for w, c in zip(weights.tolist(), top.tolist()))


def preview_augment(dataset: str, policy: str, out, n: int = 8, copies: int = 7, seed: int = 0, data_dir=None,
                    warn=warnings.warn) -> Path:
    """Draw `n` training images of `dataset`, each followed by `copies` augmentations under `policy`,
    into the PNG `out`; return its path. `warn(message)` hears the label-safety warnings (a flip of
    digits, ...)."""
    train = load_dataset(dataset, "train", data_dir)
    augmenter = make_augment(policy, train.info, warn=warn)
    generator = torch.Generator().manual_seed(seed)
    index = pick_examples(train.labels, n, generator)
    originals = train.images[index].float() / 255                                # (n, C, H, W)
    labels = train.labels[index]
    if augmenter is None:
        augmented, targets = originals.repeat(copies, 1, 1, 1), labels.repeat(copies)
    else:
        # copy-major order (all n images, then all n again ...): mixup/cutmix partners are then
        # mostly *other* images, as in a real shuffled batch, rather than copies of the same one
        copied = originals.repeat(copies, 1, 1, 1)
        if augmenter.policy.altflip:   # copy c as epoch c + 1 sees it: each image alternates
            halves = alternating_halves(len(index), seed)
            for copy in range(copies):
                mirror_half(copied[copy * len(index):(copy + 1) * len(index)], halves, copy + 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            augmented, targets = augmenter(copied, labels.repeat(copies), train.num_classes)
    rows, titles = [], []
    for row in range(index.shape[0]):
        rows.append(originals[row:row + 1])
        titles.append(f"original {train.classes[int(labels[row])]}")
        for copy in range(copies):
            k = copy * index.shape[0] + row
            rows.append(augmented[k:k + 1])
            titles.append(target_title(targets[k], train.classes))
    return plot_image_grid(torch.cat(rows), titles, out, columns=copies + 1,
                           title=f"{dataset}: --augment {augmenter or 'none'}")
