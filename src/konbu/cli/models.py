"""`konbu models` and `konbu summary`: the zoo and Keras-style tables."""

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from ._app import command, console


@command("models")
def list_zoo():
    """List the model zoo: each tutorial's architecture, its parameter count, what it is and its source."""
    from .. import models   # imported here: `konbu --help` must not load torch

    # description and source share a cell (source dimmed below): side by side they overflow 140 columns
    table = Table(title="models", show_lines=True)
    for column in ("name", "input", "params", "description / source"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for name in models.list_models():
        entry = models.get_model_entry(name)
        input_shape, num_classes = models.default_input(name)
        params = sum(p.numel() for p in models.build_model(name, input_shape, num_classes).parameters())
        # Text, not a markup string: a "[...]" in a description or source is shown as written
        about = Text(entry.source, "dim")
        if entry.description:
            about = Text.assemble(entry.description, "\n", about)
        table.add_row(name, "×".join(map(str, input_shape)), f"{params:,}", about)
    console.print(table)
    console.print("Train one: konbu train --model NAME; see its layers: konbu summary NAME", highlight=False)


@command()
def summary(model: str = typer.Argument(..., help="zoo name or a .yaml/.json layer spec"),
            dataset: Optional[str] = typer.Option(None, help="fit the model to this dataset's image shape and classes"),
            data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with the dataset's files"),
            image_size: Optional[int] = typer.Option(None, "--image-size", help="resize the dataset's images"),
            classes: Optional[str] = typer.Option(None, help="a subset of the dataset's classes"),
            init: str = typer.Option("default", help="weight init: default, tf, zeros")):
    """Print a Keras-style summary: layers, output shapes, params and mult-adds."""
    from .. import data, models   # imported here: `konbu --help` must not load torch

    image_shape = class_count = None
    if dataset:
        info = data.dataset_info(dataset, data_dir, image_size, classes)
        image_shape, class_count = info.image_shape, len(info.classes)
    input_shape, num_classes = models.default_input(model, image_shape, class_count)
    net = models.build_model(model, input_shape, num_classes, init)
    result = models.summary(net, input_shape)
    console.print(result.table())
    console.print(result.totals_text(), highlight=False)
