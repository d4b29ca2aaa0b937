"""`konbu augment ...`: see what an augmentation policy does before training with it.

    konbu augment preview mnist-sample --augment digits --out grid.png
    konbu augment preview mnist-sample --augment "rotate=30,shear=0.3,cutout=8" --out grid.png --n 6 --seed 1

Each row is one training image: the original first, then augmented copies, each titled with its
target (with mixup or cutmix, the two classes and their weights).
"""

from pathlib import Path
from typing import Optional

import typer

from ..train.policies import POLICY_HELP   # not train.augment: `konbu augment preview --help` must not load torch
from ._app import command, console, group

augment_app = group("augment", "Preview augmentation policies on a dataset's images.")


@command("preview", on=augment_app)
def preview(dataset: str = typer.Argument(..., help="dataset name (konbu datasets lists them)"),
            augment: str = typer.Option(..., "--augment", help=POLICY_HELP),
            out: Path = typer.Option(Path("augment.png"), "--out", help="PNG to write"),
            n: int = typer.Option(8, "--n", min=1, max=64, help="how many images (rows)"),
            copies: int = typer.Option(7, "--copies", min=1, max=32, help="augmented copies per image"),
            seed: int = typer.Option(0, "--seed", help="picks the images and the augmentations"),
            data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with file-based datasets")):
    """Draw originals beside augmented copies: each row an image, then `--copies` augmentations of it."""
    from ..train.preview import preview_augment

    # a label-safety warning (flipped digits) prints as one `warning:` line (cli/_app.py)
    path = preview_augment(dataset, augment, out, n=n, copies=copies, seed=seed, data_dir=data_dir)
    console.print(f"wrote {path}", highlight=False)
