"""`konbu train`: fit a model and write its run directory."""

import shlex
from pathlib import Path
from typing import Optional

import typer

from ._app import command, command_names, console, err_console


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
    from ..train import fit

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
    available = command_names()
    console.print("next:\n" + "\n".join(f"  {line}" for name, line in next_steps.items() if name in available),
                  highlight=False)
