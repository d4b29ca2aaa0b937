"""The `konbu` command line: parses, calls the Python API, prints. No logic of its own.

    konbu datasets                      what can be loaded, and what is on disk now
    konbu models                        the zoo, with each model's source
    konbu summary chollet-mnist         a Keras-style table
    konbu train                         chollet-mnist on the embedded MNIST sample
    konbu evaluate RUN --json
    konbu predict RUN digit.jpg --top 3

A user mistake (a KonbuError) prints one or two lines and exits 2, never a traceback.
"""

import functools
import os
import json
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import data, models
from .errors import KonbuError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="konbu: train, inspect and use CNN image classifiers (the tutorials' models, by name).")
console = Console()
if not console.is_terminal and "COLUMNS" not in os.environ:
    console.width = 140  # piped or captured output: rich would assume 80 columns and wrap the tables
err_console = Console(stderr=True)


def reports_errors(command):
    """A KonbuError becomes its message on stderr and exit code 2."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KonbuError as error:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return wrapper


def command(name=None):
    def register(function):
        return app.command(name)(reports_errors(function))
    return register


@command()
def datasets(data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder to look in for file-based datasets")):
    """List every dataset konbu can load, and whether it is on disk now (offline)."""
    table = Table(title="datasets")
    for column in ("name", "classes", "image", "train", "test", "offline", "source"):
        table.add_column(column, justify="right" if column in ("classes", "train", "test") else "left",
                         no_wrap=column != "source")
    for name in data.list_datasets():
        info = data.dataset_info(name)
        available = data.is_available(name, data_dir)
        table.add_row(name, str(len(info.classes)), "×".join(map(str, info.image_shape)),
                      f"{info.split_sizes['train']:,}", f"{info.split_sizes['test']:,}",
                      "[green]yes[/]" if available else "[yellow]no[/]", info.source)
    console.print(table)


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
            init: str = typer.Option("default", help="weight init: default, tf, zeros")):
    """Print a Keras-style summary: layers, output shapes, params and mult-adds."""
    if dataset:
        info = data.dataset_info(dataset)
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


@command()
def train(
    model: str = typer.Option("chollet-mnist", help="zoo name (konbu models) or a .yaml/.json layer spec"),
    dataset: str = typer.Option("mnist-sample", help="dataset name (konbu datasets)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with the dataset's files"),
    epochs: Optional[int] = typer.Option(None, help="passes over the training set [default: 20]"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="images per step [default: 64]"),
    optimizer: Optional[str] = typer.Option(None, help="sgd, adam or rmsprop [default: adam]"),
    lr: Optional[float] = typer.Option(None, help="learning rate [default: the optimizer's Keras default]"),
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="constant or cosine [default: cosine]"),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="part of train held out [default: 0.1]"),
    seed: Optional[int] = typer.Option(None, help="random seed [default: 0]"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or mps [default: auto]"),
    threads: Optional[int] = typer.Option(None, help="CPU threads [default: one per core]"),
    init: Optional[str] = typer.Option(None, help="weight init: default, tf, zeros"),
    precision: Optional[str] = typer.Option(None, help="auto, fp32 or bf16 [default: auto]"),
    out: Optional[Path] = typer.Option(None, help="run directory [default: runs/<model>-<dataset>-<time>]"),
):
    """Train a model and write its run directory (weights, metrics, curves, report.html)."""
    from .train import fit

    try:
        run = fit(model=model, dataset=dataset, data_dir=str(data_dir) if data_dir else None, epochs=epochs,
                  batch_size=batch_size, optimizer=optimizer, lr=lr, lr_schedule=lr_schedule,
                  val_fraction=val_fraction, seed=seed, device=device, threads=threads, init=init,
                  precision=precision, out=str(out) if out else None)
    except KeyboardInterrupt:
        err_console.print("interrupted: the run directory holds the last finished epoch (last.ckpt)")
        raise typer.Exit(130) from None
    final = run.info["final"]
    console.print(f"\n[bold]run directory:[/] {run.path}", highlight=False)
    line = f"test accuracy {final['test_accuracy']:.4f}  test loss {final['test_loss']:.4f}"
    if "val_accuracy" in final:
        line += f"  (best validation accuracy {final['val_accuracy']:.4f} at epoch {run.info['best_epoch']})"
    console.print(line + f"  in {run.info['seconds']:.1f} s", highlight=False)
    console.print("report: " + str(run.path / "report.html"), highlight=False)
    path = shlex.quote(str(run.path))
    next_steps = {"evaluate": f"konbu evaluate {path}", "predict": f"konbu predict {path} your_digit.png --top 3",
                  "serve": f"konbu serve {path}"}
    available = {c.name or c.callback.__name__ for c in app.registered_commands}
    console.print("next:\n" + "\n".join(f"  {line}" for name, line in next_steps.items() if name in available),
                  highlight=False)


@command()
def evaluate(run: Path = typer.Argument(..., help="a run directory"),
             dataset: Optional[str] = typer.Option(None, help="dataset to evaluate on [default: the run's own]"),
             split: str = typer.Option("test", help="train or test"),
             data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
             as_json: bool = typer.Option(False, "--json", help="print one JSON object")):
    """Loss, accuracy, top-5, per-class precision/recall/F1, balanced accuracy; writes figures/confusion.png."""
    from .runs import Run

    loaded = Run.load(run)
    metrics = loaded.evaluate(dataset, split=split, data_dir=data_dir, figures=True)
    if as_json:
        print(json.dumps(metrics))
        return
    console.print(f"[bold]{loaded.info.get('model')}[/] on {metrics['dataset']} ({metrics['split']}, "
                  f"{metrics['n']:,} images)", highlight=False)
    line = f"accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}"
    if "top5_accuracy" in metrics:
        line += f"  top-5 {metrics['top5_accuracy']:.4f}"
    console.print(line + f"  balanced accuracy {metrics['balanced_accuracy']:.4f}", highlight=False)
    table = Table()
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in metrics["per_class"]:
        table.add_row(row["label"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                      str(row["support"]))
    console.print(table)
    console.print(f"confusion matrix: {metrics['confusion_figure']}", highlight=False)


@command()
def predict(run: Path = typer.Argument(..., help="a run directory"),
            images: List[Path] = typer.Argument(..., help="image files (PNG, JPEG, BMP, GIF, TIFF, WebP)"),
            top: int = typer.Option(3, help="how many classes to show"),
            as_json: bool = typer.Option(False, "--json", help="print a JSON list, one object per image"),
            show_input: Optional[Path] = typer.Option(None, "--show-input",
                                                      help="save what the model saw beside training examples")):
    """Classify your own images: top-K classes with percentages."""
    from .predict import predict_files
    from .runs import Run

    loaded = Run.load(run)
    results = predict_files(loaded, images, top=top, show_input=show_input)
    if as_json:
        print(json.dumps(results))
        return
    for result in results:
        console.print(f"[bold]{result['image']}[/]", highlight=False)
        for p in result["predictions"]:
            console.print(f"  {p['label']:>10}  {100 * p['probability']:6.2f}%", highlight=False)
    if show_input:
        console.print(f"input check: {show_input}", highlight=False)


def main():
    app(prog_name="konbu")


if __name__ == "__main__":
    sys.exit(main())
