"""`konbu models` and `konbu summary`: the zoo and Keras-style tables."""

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .. import data, models
from ._app import command, console


@command("models")
def list_zoo():
    """List the model zoo: each tutorial's architecture, its parameter count and its source."""
    table = Table(title="models")
    for column in ("name", "input", "params", "source"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for name in models.list_models():
        entry = models.get_model_entry(name)
        net = models.build_model(name, entry.input_shape, entry.num_classes)
        params = sum(p.numel() for p in net.parameters())
        table.add_row(name, "×".join(map(str, entry.input_shape)), f"{params:,}", entry.source)
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
    if dataset:
        info = data.dataset_info(dataset, data_dir, image_size, classes)
        input_shape, num_classes = info.image_shape, len(info.classes)
    elif models.is_spec_path(model):
        input_shape, num_classes = (1, 28, 28), 10
    else:
        entry = models.get_model_entry(model)
        input_shape, num_classes = entry.input_shape, entry.num_classes
    net = models.build_model(model, input_shape, num_classes, init)
    result = models.summary(net, input_shape)
    console.print(result.table())
    console.print(result.totals_text(), highlight=False)
