"""`konbu datasets`: what can be loaded, what is on disk, and what a dataset holds.

    konbu datasets                                   the table of every registered dataset
    konbu datasets info NAME                         counts per class, shape, mean/std, source, license
    konbu datasets show NAME --out grid.png          a grid of samples, one row per class
    konbu datasets info etl-hiragana --data-dir ~/ETL --classes all --image-size 32
    konbu datasets show folder:photos --out photos.png
    konbu datasets info folder:photos --strict-data      refuse the folder if any file is not an image
"""

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._app import command, console, group

DATA_DIR = typer.Option(None, "--data-dir", help="folder holding (or receiving) the dataset's files")
IMAGE_SIZE = typer.Option(None, "--image-size", help="square side in pixels (etl-hiragana, folder: default 28)")
CLASSES = typer.Option(None, "--classes", help="etl-hiragana: 71 (default) or all; any dataset: a subset, e.g. 0,1")
STRICT_DATA = typer.Option(False, "--strict-data", help="folder: refuse a folder with an unreadable image file "
                                                        "(default: skip such files with one warning)")


def _size(n: int) -> str:
    return f"{n:,}" if n else "—"   # 0: depends on the user's files (etl-hiragana)


def datasets(ctx: typer.Context, data_dir: Optional[Path] = DATA_DIR):
    """List every dataset konbu can load, and whether it is on disk now (offline)."""
    if ctx.invoked_subcommand:
        return
    from .. import data   # imported here: `konbu --help` must not load torch and the dataset registry

    table = Table(title="datasets", caption="also: folder:PATH (your images: one sub-folder per class, or a CSV)")
    for column in ("name", "classes", "image", "train", "test", "offline", "source"):
        table.add_column(column, justify="right" if column in ("classes", "train", "test") else "left",
                         no_wrap=column != "source")
    for name in data.list_datasets():
        info = data.dataset_info(name)
        available = data.is_available(name, data_dir)
        table.add_row(name, str(len(info.classes)), "×".join(map(str, info.image_shape)),
                      _size(info.split_sizes["train"]), _size(info.split_sizes["test"]),
                      "[green]yes[/]" if available else "[yellow]no[/]", info.source)
    console.print(table)


datasets_app = group("datasets", "List every dataset konbu can load, and whether it is on disk now (offline).",
                     callback=datasets)


@command("info", on=datasets_app)
def info(name: str = typer.Argument(..., help="dataset name (`konbu datasets`) or folder:PATH"),
         data_dir: Optional[Path] = DATA_DIR, image_size: Optional[int] = IMAGE_SIZE,
         classes: Optional[str] = CLASSES, strict_data: bool = STRICT_DATA):
    """Counts per class, image shape, mean/std, split sizes, source, license and citation."""
    import torch   # imported here, with the data: `konbu --help` must not load torch

    from .. import data

    train, test = data.load_data(name, data_dir, image_size, classes, strict=strict_data)
    meta = train.info
    console.print(f"[bold]{meta.name}[/]: {meta.description}", highlight=False)
    rows = [
        ("image shape", "×".join(map(str, meta.image_shape)) + " (C×H×W, uint8)"),
        ("splits", f"train {len(train):,}, test {len(test):,}"),
        ("classes", str(len(meta.classes))),
        ("mean / std", f"{', '.join(f'{m:.4f}' for m in train.mean)} / {', '.join(f'{s:.4f}' for s in train.std)}"
                       " (train split, per channel, in [0, 1])"),
        ("headline metric", meta.headline_metric.replace("_", " ")),
        ("source", meta.source), ("license", meta.license or "—"), ("citation", meta.citation or "—"),
    ]
    for key, value in rows:
        console.print(f"  [bold]{key:<16}[/] {value}", highlight=False, soft_wrap=True)
    train_counts = torch.bincount(train.labels, minlength=len(meta.classes)).tolist()
    test_counts = torch.bincount(test.labels, minlength=len(meta.classes)).tolist()
    table = Table(title="samples per class")
    for column in ("label", "class", *(["romaji"] if meta.aliases else []), "train", "test"):
        table.add_column(column, justify="right" if column in ("label", "train", "test") else "left")
    for label, name_ in enumerate(meta.classes):
        alias = [meta.aliases[label]] if meta.aliases else []
        table.add_row(str(label), str(name_), *alias, f"{train_counts[label]:,}", f"{test_counts[label]:,}")
    console.print(table)
    if min(train_counts) * 2 < max(train_counts):
        console.print(f"imbalanced: {min(train_counts):,} to {max(train_counts):,} train images per class; "
                      "balanced accuracy is the fairer figure", highlight=False)


@command("show", on=datasets_app)
def show(name: str = typer.Argument(..., help="dataset name (`konbu datasets`) or folder:PATH"),
         out: Path = typer.Option(Path("dataset.png"), "--out", help="PNG file to write"),
         split: str = typer.Option("train", "--split", help="train or test"),
         per_class: int = typer.Option(8, "--per-class", min=1, max=50, help="samples in each class's row"),
         max_classes: int = typer.Option(50, "--max-classes", min=1, help="rows at most (one per class)"),
         seed: int = typer.Option(0, "--seed", help="which samples: a different seed, different ones"),
         data_dir: Optional[Path] = DATA_DIR, image_size: Optional[int] = IMAGE_SIZE,
         classes: Optional[str] = CLASSES, strict_data: bool = STRICT_DATA):
    """A grid of samples, one row per class, labelled with the class names (kana as glyphs)."""
    from .. import data   # imported here: `konbu --help` must not load torch and the dataset registry
    from ..inspect.samples import plot_class_samples   # imported here: matplotlib is slow to import

    dataset = data.load_dataset(name, split, data_dir, image_size, classes, strict=strict_data)
    path = plot_class_samples(dataset, out, per_class=per_class, max_classes=max_classes, seed=seed)
    shown = min(max_classes, dataset.num_classes)
    note = f" (the first {shown} of {dataset.num_classes} classes; --max-classes for more)" \
        if shown < dataset.num_classes else ""
    console.print(f"wrote {path}: {per_class} {split} samples of each of {shown} classes{note}", highlight=False)
