"""`konbu augment ...`: see what an augmentation policy does before training with it.

    konbu augment preview mnist-sample --augment digits --out grid.png
    konbu augment preview mnist-sample --augment "rotate=30,shear=0.3,cutout=8" --out grid.png --n 6 --seed 1

Each row is one training image: the original first, then augmented copies, each titled with its
target (with mixup or cutmix, the two classes and their weights).
"""

from pathlib import Path
from typing import Optional

import torch
import typer

from ..data import load_dataset
from ..inspect.grids import plot_image_grid
from ..train.augment import POLICY_HELP, make_augment
from ._app import command, console, err_console, group

augment_app = group("augment", "Preview augmentation policies on a dataset's images.")


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


def _target_title(target, classes) -> str:
    """'7' for a hard label; '7 62% / 1 38%' for a mixed one."""
    if target.ndim == 0:
        return str(classes[int(target)])
    weights, top = target.topk(min(2, target.shape[0]))
    if weights[1] < 0.005:
        return str(classes[int(top[0])])
    return " / ".join(f"{classes[int(c)]} {w:.0%}" for w, c in zip(weights.tolist(), top.tolist()))


@command("preview", on=augment_app)
def preview(dataset: str = typer.Argument(..., help="dataset name (konbu datasets lists them)"),
            augment: str = typer.Option(..., "--augment", help=POLICY_HELP),
            out: Path = typer.Option(Path("augment.png"), "--out", help="PNG to write"),
            n: int = typer.Option(8, "--n", min=1, max=64, help="how many images (rows)"),
            copies: int = typer.Option(7, "--copies", min=1, max=32, help="augmented copies per image"),
            seed: int = typer.Option(0, "--seed", help="picks the images and the augmentations"),
            data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with file-based datasets")):
    """Draw originals beside augmented copies: each row an image, then `--copies` augmentations of it."""
    train = load_dataset(dataset, "train", data_dir)
    augmenter = make_augment(augment, train.info,
                             warn=lambda message: err_console.print(f"[yellow]warning:[/] {message}", highlight=False,
                                                                        soft_wrap=True))
    generator = torch.Generator().manual_seed(seed)
    index = pick_examples(train.labels, n, generator)
    originals = train.images[index].float() / 255                                # (n, C, H, W)
    labels = train.labels[index]
    if augmenter is None:
        augmented, targets = originals.repeat(copies, 1, 1, 1), labels.repeat(copies)
    else:
        # copy-major order (all n images, then all n again ...): mixup/cutmix partners are then
        # mostly *other* images, as in a real shuffled batch, rather than copies of the same one
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            augmented, targets = augmenter(originals.repeat(copies, 1, 1, 1), labels.repeat(copies), train.num_classes)
    rows, titles = [], []
    for row in range(index.shape[0]):
        rows.append(originals[row:row + 1])
        titles.append(f"original {train.classes[int(labels[row])]}")
        for copy in range(copies):
            k = copy * index.shape[0] + row
            rows.append(augmented[k:k + 1])
            titles.append(_target_title(targets[k], train.classes))
    path = plot_image_grid(torch.cat(rows), titles, out, columns=copies + 1,
                           title=f"{dataset}: --augment {augmenter or 'none'}")
    console.print(f"wrote {path}", highlight=False)
