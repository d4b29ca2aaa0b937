"""`konbu evaluate` and `konbu predict`: read a run directory and use its model.

    konbu evaluate runs/deep --json
    konbu predict runs/deep a.png noise.png b.png --json

`konbu predict` answers every image, in order: an image it can't read gets its own
"path: error: reason" line (in --json, {"image": path, "error": reason}) and the others are
answered as usual; the exit code is then 1. Exit code 2 is for mistakes that stop everything
before any image is read: a bad run directory, an unknown option, a bad --reject-below or --top.
"""

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ._app import command, console, err_console


@command()
def evaluate(run: Path = typer.Argument(..., help="a run directory"),
             dataset: Optional[str] = typer.Option(None, help="dataset to evaluate on [default: the run's own]"),
             split: str = typer.Option("test", help="train or test"),
             data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
             tta: Optional[str] = typer.Option(None, help="test-time augmentation: none, flip, flip-shift "
                                                          "[default: the run's own --tta]"),
             as_json: bool = typer.Option(False, "--json", help="print one JSON object")):
    """Loss, accuracy, top-5, per-class precision/recall/F1, balanced accuracy; writes figures/confusion.png."""
    from ..runs import CALIBRATION_FILE, Run

    loaded = Run.load(run)
    metrics = loaded.evaluate(dataset, split=split, data_dir=data_dir, figures=True, tta=tta)
    if as_json:
        print(json.dumps(metrics))
        return
    console.print(f"[bold]{loaded.info.get('model')}[/] on {metrics['dataset']} ({metrics['split']}, "
                  f"{metrics['n']:,} images" + (f", test-time augmentation {metrics['tta']}" if "tta" in metrics
                                                 else "") + ")", highlight=False)
    line = f"accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}"
    if "top5_accuracy" in metrics:
        line += f"  top-5 {metrics['top5_accuracy']:.4f}"
    console.print(line + f"  balanced accuracy {metrics['balanced_accuracy']:.4f}", highlight=False)
    console.print(f"calibration: temperature {metrics['temperature']:.3g}  ECE {metrics['ece']:.2%} -> "
                  f"{metrics['calibrated_ece']:.2%}  loss {metrics['loss']:.4f} -> {metrics['calibrated_loss']:.4f}"
                  + ("" if (loaded.path / CALIBRATION_FILE).is_file()
                     else f"  (not calibrated: run `konbu show calibration {run}`)"), highlight=False)
    table = Table()
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in metrics["per_class"]:
        table.add_row(row["label"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                      str(row["support"]))
    console.print(table)
    console.print(f"confusion matrix: {metrics['confusion_figure']}", highlight=False)


def _predict_pretrained(model, images, top, weights, show_input, reject_below) -> list:
    from ..errors import ConfigError
    from ..models import is_pretrained
    from ..models.imagenet import classify

    if not is_pretrained(model):
        raise ConfigError(f"--model {model}: predict without a run takes pretrained:NAME or timm:NAME (konbu "
                          "models lists them); a model you trained is used through its run directory: "
                          "konbu predict RUN IMAGE")
    if show_input is not None or reject_below is not None:
        raise ConfigError("--show-input and --reject-below need a run (its training images and calibration); "
                          "leave them out with --model")
    return classify(model, images, top=top, weights_file=weights)


@command()
def predict(paths: List[Path] = typer.Argument(..., metavar="[RUN] IMAGES...",
                                              help="a run directory, then image files (PNG, JPEG, BMP, GIF, "
                                                   "TIFF, WebP); with --model, image files only"),
            model: Optional[str] = typer.Option(None, help="pretrained:NAME or timm:NAME: classify with the published "
                                                           "ImageNet classifier (top-5 of 1,000 classes), no run"),
            top: Optional[int] = typer.Option(None, help="how many classes to show (default: 3; 5 with --model)"),
            weights: Optional[Path] = typer.Option(None, help="--model: the whole classifier's weights from this "
                                                              ".safetensors or .pth file (default: torchvision's, "
                                                              "downloaded once)"),
            as_json: bool = typer.Option(False, "--json", help="print a JSON list, one object per image"),
            show_input: Optional[Path] = typer.Option(None, "--show-input",
                                                      help="save what the model saw beside training examples"),
            reject_below: Optional[float] = typer.Option(
                None, "--reject-below", metavar="P",
                help="answer 'unknown' (JSON label null) when the top probability is below P, e.g. 0.6")):
    """Classify your own images: top-K classes with calibrated percentages; exit code 1 when an
    image could not be read (each one says why; the others are answered)."""
    from ..errors import ConfigError
    from ..predict import describe, predict_files
    from ..runs import Run

    if model is not None:
        results = _predict_pretrained(model, paths, top, weights, show_input, reject_below)
    else:
        if len(paths) < 2:
            raise ConfigError("konbu predict RUN IMAGE...: give a run directory and at least one image (or "
                              "--model pretrained:NAME IMAGE... to use an ImageNet classifier without a run)")
        if weights is not None:
            raise ConfigError("--weights goes with --model pretrained:NAME or timm:NAME; a run has its own weights")
        results = predict_files(Run.load(paths[0]), paths[1:], top=3 if top is None else top, show_input=show_input,
                                reject_below=reject_below)
    if as_json:
        print(json.dumps(results))
    else:
        for result in results:
            # escaped: a file name or a reason may hold [brackets], which rich would read as markup
            console.print(f"[bold]{escape(result['image'])}[/]: {escape(describe(result))}", highlight=False,
                          soft_wrap=True)
            for p in result.get("predictions", []):
                console.print(f"  {p['label']:>10}  {100 * p['probability']:6.2f}%", highlight=False)
        if show_input and any(result.get("predictions") for result in results):
            console.print(f"input check: {show_input}", highlight=False)
    failed = sum("error" in result for result in results)
    if failed:
        err_console.print(f"[bold red]error:[/] {failed} of {len(results)} images could not be read "
                          "(each is named with its reason)", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
