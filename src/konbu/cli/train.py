"""`konbu train`: fit a model and write its run directory; `konbu lr-find`: pick a learning rate.

    konbu train                                          chollet-mnist on the embedded MNIST sample
    konbu train --recipe tf-experts --dataset mnist-sample --steps 500
    konbu train --lr-schedule "0:1e-3,1000:1e-4,3000:1e-5" --dropout-schedule "0:0.0,3000:0.5" --model deep-mnist
    konbu train --resume runs/deep-mnist-...             continue exactly where it stopped
    konbu train --from-run runs/chollet-mnist-... --dataset kmnist    transfer a run's weights to new data
    konbu train --model pretrained:resnet18 --dataset cifar10 --image-size 64 --fine-tune --epochs 6
    konbu lr-find --model deep-mnist --out lr_find.png
"""

import shlex
from pathlib import Path
from typing import Optional

import typer

from ..train.config import TrainConfig   # no torch: konbu.train loads fit() and the loop on first use
from ._app import command, command_names, console

DEFAULTS = TrainConfig()   # the help texts' defaults come from here, never restated


def _options(values: dict) -> dict:
    """Flags as TrainConfig fields: paths as strings, None (not given) kept as None."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}


def _default(name: str) -> str:
    """'(default: X)' from TrainConfig itself, so a help text never restates a default."""
    return f"(default: {getattr(DEFAULTS, name)})"


@command()
def train(
    model: Optional[str] = typer.Option(None, help=f"zoo name (konbu models), pretrained:NAME or timm:NAME (an "
                                                   f"ImageNet backbone with a new head) or a .yaml/.json layer spec "
                                                   f"{_default('model')}"),
    dataset: Optional[str] = typer.Option(None, help=f"dataset name (konbu datasets) {_default('dataset')}"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with the dataset's files"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="resize images to this side"),
    classes: Optional[str] = typer.Option(None, "--classes", help="a subset of the dataset's classes"),
    strict_data: Optional[bool] = typer.Option(None, "--strict-data/--no-strict-data",
                                               help="folder: refuse a folder with an unreadable image file "
                                                    "(default: skip such files with one warning)"),
    recipe: Optional[str] = typer.Option(None, help="a tutorial's settings by name (konbu recipes); flags override"),
    variant: Optional[str] = typer.Option(None, help="one variant of a recipe that has several (symmetry: zeros, tf)"),
    from_run: Optional[Path] = typer.Option(None, "--from-run",
                                            help="start from this run's model and weights (transfer learning); "
                                                 "the data is brought to its input size and channels, the head "
                                                 "replaced when the class count differs"),
    weights: Optional[Path] = typer.Option(None, help="pretrained:NAME: the backbone's weights from this "
                                                      ".safetensors or .pth state dict (default: torchvision's "
                                                      "published ImageNet weights, downloaded once)"),
    fine_tune: Optional[bool] = typer.Option(None, "--fine-tune/--no-fine-tune",
                                             help="pretrained:NAME: train the head on a frozen backbone for "
                                                  "--freeze-epochs, then unfreeze it (--unfreeze)"),
    freeze_epochs: Optional[int] = typer.Option(None, "--freeze-epochs",
                                                help=f"--fine-tune: the first epochs, of --epochs, with the "
                                                     f"backbone frozen {_default('freeze_epochs')}"),
    unfreeze: Optional[str] = typer.Option(None, help=f"--fine-tune: top:K blocks of the backbone, or all, train "
                                                      f"after the frozen epochs {_default('unfreeze')}"),
    backbone_lr_ratio: Optional[float] = typer.Option(None, "--backbone-lr-ratio",
                                                      help=f"the backbone's learning rate as a fraction of the "
                                                           f"head's {_default('backbone_lr_ratio')}"),
    resume: Optional[Path] = typer.Option(None, help="continue this run directory from its last.ckpt"),
    epochs: Optional[int] = typer.Option(None, help=f"passes over the training set {_default('epochs')}"),
    steps: Optional[int] = typer.Option(None, help="stop after this many batches (overrides --epochs)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=f"images per step {_default('batch_size')}"),
    optimizer: Optional[str] = typer.Option(None, help=f"sgd, adam, adamw, rmsprop or adadelta "
                                                       f"{_default('optimizer')}"),
    lr: Optional[float] = typer.Option(None, help="learning rate; the peak of a one-cycle (default: 0.005 with the "
                                                  "default adam one-cycle; with another --optimizer or "
                                                  "--lr-schedule, that optimizer's Keras default)"),
    momentum: Optional[float] = typer.Option(None, help="momentum for sgd/rmsprop (default: 0)"),
    nesterov: Optional[bool] = typer.Option(None, "--nesterov/--no-nesterov", help="Nesterov momentum (sgd)"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="(default: adamw 0.004, others 0)"),
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule",
                                              help="constant, cosine, step, onecycle, triangle, plateau, or piecewise "
                                                   f"\"0:1e-3,1000:1e-4\" (\"epoch:0:1e-3,5:1e-4\") "
                                                   f"{_default('lr_schedule')}"),
    warmup: Optional[int] = typer.Option(None, help=f"steps of linear learning-rate warm-up {_default('warmup')}"),
    dropout_schedule: Optional[str] = typer.Option(None, "--dropout-schedule",
                                                   help="drop rate by step, \"0:0.0,3000:0.7,10000:0.9\""),
    label_smoothing: Optional[float] = typer.Option(None, "--label-smoothing", help=_default("label_smoothing")),
    ema: Optional[float] = typer.Option(None, help="keep a moving average of the weights with this decay (0.999)"),
    whiten_bias_epochs: Optional[int] = typer.Option(None, "--whiten-bias-epochs",
                                                     help="a whitening layer's bias trains this many epochs, then "
                                                          "freezes (airbench's 3; default: throughout)"),
    lookahead: Optional[float] = typer.Option(None, help="every 5 steps pull the weights back to their average, "
                                                         "its decay rising to this per step (airbench's 0.95)"),
    norm_bias_lr_scale: Optional[float] = typer.Option(None, "--norm-bias-lr-scale",
                                                       help="BatchNorm biases train at this multiple of the rate "
                                                            f"(airbench's 64) {_default('norm_bias_lr_scale')}"),
    tta: Optional[str] = typer.Option(None, help="test-time augmentation of the final test evaluation: none, flip, "
                                                 f"flip-shift (airbench's) {_default('tta')}"),
    class_weights: Optional[str] = typer.Option(None, "--class-weights", help="balanced: weight rare classes up"),
    sampler: Optional[str] = typer.Option(None, help=f"shuffle, or balanced (classes drawn equally often) "
                                                     f"{_default('sampler')}"),
    clip_grad: Optional[float] = typer.Option(None, "--clip-grad", help="clip the gradient norm to this"),
    augment: Optional[str] = typer.Option(None, help="augmentation policy: digits, cifar, none, or e.g. "
                                                     "\"rotate=10,shift=0.1\" (konbu augment preview) (default: "
                                                     "auto: digits on MNIST-style handwriting, else none)"),
    init: Optional[str] = typer.Option(None, help=f"weight init: default, tf, zeros, glorot (Keras's) {_default('init')}"),
    normalize: Optional[str] = typer.Option(None, help="standard (dataset mean/std) or unit (pixels / 255, as the TF "
                                                       f"tutorials) {_default('normalize')}"),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction",
                                                 help=f"part of train held out {_default('val_fraction')}"),
    monitor: Optional[str] = typer.Option(None, help="what 'best' means: val_accuracy, val_loss, train_loss, "
                                                     f"train_accuracy {_default('monitor')}"),
    patience: Optional[int] = typer.Option(None, help="early stopping: epochs without improvement (default: off)"),
    min_delta: Optional[float] = typer.Option(None, "--min-delta", help="smallest change that counts as improvement"),
    restore_best: Optional[bool] = typer.Option(None, "--restore-best/--keep-last",
                                                help="save the best epoch's weights (default) or the last's"),
    guard: Optional[float] = typer.Option(None, help=f"divergence guard factor; 0 switches it off {_default('guard')}"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every",
                                                   help="also write last.ckpt every N steps"),
    seed: Optional[int] = typer.Option(None, help=f"random seed {_default('seed')}"),
    deterministic: Optional[bool] = typer.Option(None, "--deterministic/--no-deterministic",
                                                 help="bit-repeatable kernels (may be slower on GPU)"),
    device: Optional[str] = typer.Option(None, help=f"auto, cpu, cuda or mps {_default('device')}"),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default: one per core; with --nproc, the cores "
                                                     "shared among the processes)"),
    nproc: Optional[int] = typer.Option(None, help="train in this many data-parallel processes on this machine, "
                                                   "the same global --batch-size split among them (several "
                                                   "machines: torchrun, see the README)"),
    precision: Optional[str] = typer.Option(None, help=f"auto, fp32 or bf16 {_default('precision')}"),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last",
                                                 help="NHWC conv kernels, faster on CPU and tensor cores "
                                                      "(default: on)"),
    compile: Optional[str] = typer.Option(None, help="torch.compile the model: none, default, reduce-overhead (CUDA "
                                                     "graphs on a GPU), max-autotune (default: none)"),
    tensorboard: Optional[bool] = typer.Option(None, "--tensorboard/--no-tensorboard",
                                               help="also write TensorBoard logs to RUN/tensorboard"),
    out: Optional[Path] = typer.Option(None, help="run directory (default: runs/<model>-<dataset>-<time>)"),
):
    """Train a model and write its run directory (weights, metrics, curves, report.html)."""
    # every flag but --resume, by name: the signature above is the one list of the training settings
    settings = _options({name: value for name, value in locals().items() if name not in ("resume", "nproc")})
    from ..train import fit, fit_recipe

    try:
        if resume is not None:
            run = fit(resume=str(resume), nproc=nproc, **settings)
        else:
            runs = fit_recipe(nproc=nproc, **settings) if recipe else {None: fit(nproc=nproc, **settings)}
            if len(runs) > 1:   # a comparison recipe: one run per variant, in out/<variant>
                if None not in runs.values():
                    _print_comparison(list(runs.values()))
                return
            run = next(iter(runs.values()))
    except KeyboardInterrupt:   # fit saved last.ckpt at the current step and printed how to resume
        raise typer.Exit(130) from None
    if run is not None:         # under torchrun, rank 0 prints the result; the other ranks return None
        _print_result(run)


def _reported_line(info):
    reported = info.get("reported")
    if not reported:
        return None
    own = info["final"]["test_accuracy"]
    figure = f"{reported['accuracy']:.2%}" if reported.get("accuracy") is not None else "no figure"
    return f"recipe {info['recipe']}: the tutorial reported {figure} ({reported.get('note', '')}); this run {own:.2%}"


def _print_result(run):
    from ..runs import REPORT_FILE

    info, final = run.info, run.info["final"]
    console.print(f"\n[bold]run directory:[/] {run.path}", highlight=False)
    line = f"test accuracy {final['test_accuracy']:.4f}  test loss {final['test_loss']:.4f}"
    if "val_accuracy" in final:
        line += f"  (validation accuracy {final['val_accuracy']:.4f} at epoch {info['weights_epoch']})"
    console.print(line + f"  in {info['seconds']:.1f} s", highlight=False)
    if info.get("stopped"):
        console.print(f"stopped: {info['stopped']['message']}", highlight=False)
    reported = _reported_line(info)
    if reported:
        console.print(reported, highlight=False)
    console.print("report: " + str(run.path / REPORT_FILE), highlight=False)
    path = shlex.quote(str(run.path))
    next_steps = {"evaluate": f"konbu evaluate {path}", "predict": f"konbu predict {path} your_digit.png --top 3",
                  "show": f"konbu show mistakes {path}   (also: filters, activations RUN IMAGE, gradcam RUN IMAGE)",
                  "serve": f"konbu serve --runs {shlex.quote(str(run.path.parent))}   (draw, look inside, "
                           "compare, train: in the browser)"}
    available = command_names()
    console.print("next:\n" + "\n".join(f"  {line}" for name, line in next_steps.items() if name in available),
                  highlight=False)


def _print_comparison(runs):
    from rich.table import Table

    table = Table(title=f"recipe {runs[0].info['config']['recipe']}: side by side")
    for column in ("variant", "test accuracy", "reported", "run directory"):
        table.add_column(column)
    for run in runs:
        reported = run.info.get("reported", {})
        table.add_row(run.info["config"]["variant"], f"{run.info['final']['test_accuracy']:.2%}",
                      reported.get("note", ""), str(run.path))
    console.print(table)


@command("lr-find")
def lr_find(
    model: Optional[str] = typer.Option(None, help="zoo name or spec file (default: chollet-mnist)"),
    dataset: Optional[str] = typer.Option(None, help="dataset name (default: mnist-sample)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with the dataset's files"),
    recipe: Optional[str] = typer.Option(None, help="take model, data and optimizer from a recipe"),
    optimizer: Optional[str] = typer.Option(None, help="sgd, adam, adamw, rmsprop or adadelta (default: adam)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="images per step (default: 64)"),
    init: Optional[str] = typer.Option(None, help="weight init: default, tf, zeros, glorot (Keras's)"),
    start: float = typer.Option(1e-7, help="first learning rate of the sweep"),
    end: float = typer.Option(10.0, help="last learning rate of the sweep"),
    steps: int = typer.Option(100, help="steps of the sweep"),
    seed: Optional[int] = typer.Option(None, help="random seed (default: 0)"),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default: one per core)"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or mps (default: auto)"),
    out: Path = typer.Option(Path("lr_find.png"), help="where to write the loss-vs-lr plot"),
):
    """Sweep the learning rate exponentially, plot loss against it, and suggest one."""
    from ..train.lr_find import lr_find as find

    result = find(out=out, start=start, end=end, steps=steps,
                  **_options(dict(model=model, dataset=dataset, data_dir=data_dir, recipe=recipe, optimizer=optimizer,
                                  batch_size=batch_size, init=init, seed=seed, threads=threads, device=device)))
    console.print(f"swept {len(result.lrs)} steps from {result.lrs[0]:.2g} to {result.lrs[-1]:.2g}", highlight=False)
    console.print(f"[bold]suggested learning rate: {result.suggestion:.2g}[/] (steepest descent of the smoothed "
                  f"loss; a tenth of the minimum's rate: {result.min_over_10:.2g})", highlight=False)
    console.print(f"plot: {out}", highlight=False)
    console.print(f"next:\n  konbu train --lr {result.suggestion:.2g}" + (f" --model {model}" if model else ""),
                  highlight=False)
