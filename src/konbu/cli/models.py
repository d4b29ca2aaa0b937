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
    backbones = Table(title="pretrained backbones (--model pretrained:NAME; ImageNet weights from torchvision)")
    for column in ("name", "blocks", "about"):
        backbones.add_column(column)
    for name, entry in models.BACKBONES.items():
        backbones.add_row(models.PRETRAINED + name, str(len(entry.blocks(_meta_trunk(name)))), Text(entry.description))
    console.print(backbones)
    console.print("timm:NAME: any timm CNN whose features are a chain of its layers (timm:resnet50d, "
                  "timm:efficientnet_b3, timm:convnext_nano, ...), its ImageNet weights from the Hugging Face Hub; "
                  "needs pip install 'konbu[timm]'", highlight=False)
    console.print("Train one: konbu train --model NAME; see its layers: konbu summary NAME", highlight=False)


def _meta_trunk(name):
    """A backbone built on the meta device: its blocks counted without memory or init time."""
    import torch

    from ..models.backbones import build_backbone
    with torch.device("meta"):
        return build_backbone(name)


@command()
def summary(model: str = typer.Argument(..., help="zoo name or a .yaml/.json layer spec"),
            dataset: Optional[str] = typer.Option(None, help="fit the model to this dataset's image shape and classes"),
            data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with the dataset's files"),
            image_size: Optional[int] = typer.Option(None, "--image-size", help="resize the dataset's images"),
            classes: Optional[str] = typer.Option(None, help="a subset of the dataset's classes"),
            init: str = typer.Option("default", help="weight init: default, tf, zeros, glorot (Keras's)"),
            fine_tune: bool = typer.Option(False, "--fine-tune", help="pretrained:NAME: trainable and frozen "
                                                                      "parameters in each stage"),
            unfreeze: str = typer.Option("all", help="--fine-tune: top:K blocks, or all, train in stage 2")):
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
    if fine_tune:
        from ..errors import ConfigError
        from ..train.config import TrainConfig
        from ..train.fine_tune import make_stages

        if not models.is_pretrained(model):
            raise ConfigError("--fine-tune: a pretrained backbone has stages; pass pretrained:NAME or timm:NAME")
        config = TrainConfig.from_overrides(model=model, fine_tune=True, unfreeze=unfreeze, epochs=2)
        for stage in make_stages(config, net).describe(net, last_epoch=None):
            console.print(f" Stage {stage['stage']} (backbone {stage['backbone']}): {stage['trainable']:,} trainable, "
                          f"{stage['frozen']:,} frozen", highlight=False)
            console.print(f"   frozen: {', '.join(stage['frozen_blocks']) or 'none'}; trained: "
                          f"{', '.join(stage['trained_blocks'] + ['the head'])}", highlight=False)
        console.print(" Blocks run from the input (bottom) to the output (top): top:K trains the K nearest the "
                      "output, whose features are the most specific to ImageNet; the frozen ones keep their "
                      "pretrained weights and BatchNorm statistics.", highlight=False)
