"""`fit()`: train a zoo model on a dataset and write the run directory.

    import konbu
    run = konbu.fit(model="chollet-mnist", dataset="mnist-sample", epochs=5)
    run.evaluate()["accuracy"]
    run = konbu.fit(recipe="tf-experts", dataset="mnist-sample", steps=500)   # a tutorial, shortened
    runs = konbu.fit_recipe("symmetry", dataset="digits", epochs=3)            # {"zeros": Run, "tf": Run}
    run = konbu.fit(resume="runs/deep-mnist-...")                              # continue exactly
    run = konbu.fit(from_run="runs/deep-mnist-...", dataset="digits")          # transfer: from_run.py
    run = konbu.fit(epochs=5, nproc=2)                                         # 2 processes: launch.py

The shape of `_fit` is pytorch/examples' main(): prepare the data -> build the parts -> open the run
directory -> `for epoch: train_one_epoch; validate; keep the best; checkpoint` -> finish (test
evaluation, calibration, figures, report: finish.py). The data is one uint8 tensor on the training
device; each epoch shuffles it with one gather and slices batches from it, augmenting and
normalising on the device (a per-sample Python pipeline would be the largest single cost at this
size). The loop emits events; printing and logging are listeners.

Resume is exact: last.ckpt holds weights, optimizer, schedule, EMA, every RNG and, when taken
mid-epoch (--checkpoint-every, or Ctrl-C), the epoch's sample order and the steps done in it. A
Ctrl-C takes effect when the step in progress has finished (a second one stops at once), so the
checkpoint is a clean step boundary. After the last step (the test evaluation, calibration and
report: a few seconds) a first Ctrl-C lets the run finish; a second stops it, and a resume finishes
it. With --deterministic on a CPU an interrupted and resumed run
ends with the same bits as one that never stopped (tests/train/test_resume.py checks it).

Several processes (--nproc N, or torchrun): every rank runs this same function (world.py says
what differs); only rank 0 opens the run directory, listens, validates, checkpoints and finishes,
and every rank closes an epoch with rank 0's record, so the schedule and early stopping agree.

Stopping: early stopping (--patience) and the divergence guard (guard.py) end a run early; either
way the run is finished normally (test evaluation, figures, report) from the best weights, and
run.json's "stopped" says why: {"reason": "diverged" | "early_stopping", "step", "epoch",
"message", ...; diverged adds "detail", "lr", "suggested_lr"}.
"""

import math
import os
import re
import time
import warnings
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path

import torch

from .. import __version__
from ..atomic import one_writer, remove_leftovers
from ..device import compiled
from ..errors import ConfigError, RunDirectoryError, WriteError
from ..models import is_pretrained, model_spec, summary
from ..models.whiten import train_biases
from ..reporting import build_report
from ..runs import (CHECKPOINT_DIR, FIGURES_DIR, METRICS_CSV, METRICS_FILE, PROGRESS_FILE, REPORT_FILE, RUN_FILE,
                    TENSORBOARD_DIR, WEIGHTS_FILE, Run, create_run, mark_interrupted, mark_resumed, read_info,
                    read_metrics, save_weights, saved_config)
from . import events
from .checkpoint import checkpoint_path, load_checkpoint, read_state, save_checkpoint
from .config import TrainConfig
from .epoch import EpochProgress, ctrl_c_between_steps, epoch_order, epoch_record, held, train_one_epoch, validate
from .events import Event, History, MetricsLog, ProgressFile
from .finish import diverged_advice, early_stopping, finish_run
from .from_run import given_model, read_start, resumed_start
from .pretrained import pretrained_start
from .logs import CsvLog, TensorBoardLog
from .parts import build_parts, input_statistics, prepare_data, setup_machine
from .stopping import Monitor
from .world import World

# settings a resumed run may change: they decide speed and logging, not the numbers
RESUME_MAY_CHANGE = {"threads", "tensorboard"}


def default_run_dir(config: TrainConfig, model_name: str, stamp: str | None = None) -> Path:
    stamp = stamp or datetime.now().strftime("%Y%m%d-%H%M%S")
    prefix = f"{config.recipe}-{config.variant}" if config.variant else config.recipe or model_name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{prefix}-{config.dataset}-{stamp}")
    return Path("runs") / name


# ----------------------------------------------------------------------------- fit

def fit(config: TrainConfig | None = None, listeners=(), quiet: bool = False, resume=None, nproc: int | None = None,
        **overrides) -> Run | None:
    """Train as `config` (or TrainConfig fields given as keywords) says; returns the loaded Run.

    `resume=RUN_DIR` continues that run from its last.ckpt with its own settings (a setting given
    here that differs from the run's is a ConfigError). `from_run=RUN_DIR` starts from that run's
    model and weights (from_run.py); the model is the run's, so leave `model` out (None).
    `nproc=N` trains in N data-parallel processes on this machine (launch.py); under torchrun, every
    process calls fit() and only rank 0 returns the Run (the others None)."""
    given = {**(config.to_dict() if config else {}), **overrides}
    if resume is None:
        config = TrainConfig.from_overrides(**given_model(given))
    else:
        config = _resume_config(Path(resume), given)
    world = World.from_environment()
    if nproc is not None and nproc != 1:
        from .launch import launch
        return launch(config, nproc, world, resume=resume, listeners=listeners, quiet=quiet)
    run_dir = Path(resume or config.out or default_run_dir(config, _model_name(config)))
    # one konbu process writes a run directory; under torchrun, rank 0
    with one_writer(run_dir) if world.main else nullcontext(), _deterministic(config.deterministic):
        if resume is not None:
            if world.main:
                for folder in (run_dir, run_dir / FIGURES_DIR):
                    remove_leftovers(folder)     # temporary files of a process killed mid-write
            if read_info(run_dir).get("status") == "finished":
                return _report_again(run_dir) if world.main else None
        try:
            with warnings.catch_warnings():
                if not world.main:   # rank 0 says it once (a dataset's checksum, a flip on digits, ...)
                    warnings.simplefilter("ignore")
                return _fit(config, run_dir, resume is not None, listeners, quiet, world)
        finally:
            world.leave()


@contextmanager
def _deterministic(on: bool):
    """torch.use_deterministic_algorithms for the run's length, as it was afterwards; untouched when
    off (setting it at all imports torch's compiler: seconds on a small CPU)."""
    if not on:
        yield
        return
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_benchmark = torch.backends.cudnn.benchmark
    try:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.backends.cudnn.benchmark = was_benchmark


def _model_name(config: TrainConfig) -> str:
    """The model's name for the run directory: --from-run set `model` to its run's model's name already."""
    return config.model if config.from_run else model_spec(config.model)["name"]


def _report_again(run_dir: Path) -> Run:
    """--resume of a run that finished training but was stopped while writing its figures and report
    (run.json says "finished"; report.html is missing): write them, nothing else."""
    run = Run.load(run_dir)
    build_report(run)
    return run


def fit_recipe(recipe: str, listeners=(), quiet: bool = False, **overrides) -> dict:
    """Train a recipe as `konbu train --recipe NAME` does: {variant: Run} with one run per variant
    in OUT/<variant> for a recipe that compares variants (symmetry: zeros and tf), else {None: Run}.
    `overrides` are TrainConfig fields, as for fit()."""
    from .recipes import load_recipe

    loaded = load_recipe(recipe)
    if not loaded.variants or overrides.get("variant"):
        return {overrides.get("variant"): fit(listeners=listeners, quiet=quiet, recipe=recipe, **overrides)}
    out = overrides.get("out")
    parent = Path(out) if out else Path("runs") / f"{loaded.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return {name: fit(listeners=listeners, quiet=quiet, **{**overrides, "recipe": recipe, "variant": name,
                                                            "out": str(parent / name)})
            for name in loaded.variants}


def _resume_config(run_dir: Path, given: dict):
    """The run's own config, with the few settings that may change; ConfigError if it can't be resumed."""
    if not (run_dir / RUN_FILE).is_file():
        raise RunDirectoryError(f"--resume {run_dir}: no run.json there; pass a run directory `konbu train` wrote")
    info = read_info(run_dir)
    if info.get("status") == "finished" and (run_dir / REPORT_FILE).is_file():
        raise ConfigError(f"--resume {run_dir}: that run finished ({info.get('finished', 'earlier')}); nothing to "
                          "resume. To train longer, start a new run with more --epochs and another --out")
    if not (checkpoint_path(run_dir / CHECKPOINT_DIR) / "state.json").is_file():
        raise ConfigError(f"--resume {run_dir}: it has no last.ckpt yet (one is written after each epoch, every "
                          "--checkpoint-every steps and on Ctrl-C); start it again instead")
    saved = saved_config(info)
    given = {k: v for k, v in given.items() if v is not None}
    if "out" in given and Path(given["out"]) != run_dir:
        raise ConfigError(f"--resume writes into {run_dir} itself; leave out --out")
    differ = [f"{k} {saved.get(k)!r} (run) vs {v!r} (given)" for k, v in given.items()
              if k not in RESUME_MAY_CHANGE | {"out"} and saved.get(k) != v]
    if differ:
        raise ConfigError(f"--resume continues a run with its own settings, but these differ: {'; '.join(differ)}. "
                          "Drop them, or start a new run to change them")
    if "epoch_done" not in read_state(run_dir / CHECKPOINT_DIR):
        raise ConfigError(f"--resume {run_dir}: its last.ckpt was written by an older konbu without the state an "
                          "exact resume needs; start the run again")
    return TrainConfig.from_overrides(**{**saved, **{k: v for k, v in given.items() if k in RESUME_MAY_CHANGE},
                                         "out": str(run_dir)})


def _fit(config: TrainConfig, run_dir: Path, resume: bool, listeners, quiet, world: World) -> Run | None:
    device, precision, threads = setup_machine(config, world)

    # With --from-run: that run's model, input and weights (a resume reads its own files instead)
    start = None
    if config.from_run:
        start = resumed_start(run_dir) if resume else read_start(config.from_run)
    elif is_pretrained(config.model):   # a backbone's input and weights; a resume has them in its own files
        start = resumed_start(run_dir) if resume else pretrained_start(config)

    # Prepare the data: one load; train minus a seeded validation fraction; test is read at the end
    train, val, test = prepare_data(config, start)

    # Build the model, its optimizer, schedules and loss, and the judge of the best epoch
    parts = build_parts(config, train, device, precision, start)
    monitor = _monitor(config, has_validation=val is not None)
    last_epoch = config.last_epoch(math.ceil(len(train) / config.batch_size))

    # From here to the end, Ctrl-C is caught: from the moment run.json says "running", a press is
    # remembered and acted on after the next complete step, so the run is marked interrupted and
    # not left "running" with no process training it (a stop just after a resume began did that)
    with ctrl_c_between_steps() as ctrl_c:
        # Open the run directory: a new run (never over an old one), or the run being resumed
        def new_order():   # every rank trains in rank 0's order
            return world.broadcast(epoch_order(len(train), parts.sample_weights), device)

        info = None
        if resume:
            state, tensors = load_checkpoint(run_dir / CHECKPOINT_DIR, parts.model, parts.optimizer, parts.schedule,
                                             ema=parts.ema, lookahead=parts.lookahead)
            monitor.load_state_dict(state["monitor"])
            if parts.guard is not None and state.get("guard"):
                parts.guard.load_state_dict(state["guard"])
            progress = EpochProgress.restore(state, tensors, device, new_order)
            previous = [r for r in read_metrics(run_dir) if r.get("epoch", 0) < progress.epoch]
            if world.main:
                info = mark_resumed(run_dir, read_info(run_dir), progress.step, progress.epoch, _stored(config))
        else:
            if world.main:
                described = _describe(config, parts, train, val, test, threads, device, precision, start, world)
                info = create_run(run_dir, *described, parts.evaluated)
            progress, previous = EpochProgress.begin(1, new_order(), device), []
        world.seed(config.seed, progress.step)   # each rank its own augmentation and dropout draws

        history = History()
        live = events.LIVE_INTERVAL          # read now, not at import: a test may set it to 0
        listeners = ([history, MetricsLog(run_dir / METRICS_FILE, live), ProgressFile(run_dir / PROGRESS_FILE, live),
                      CsvLog(run_dir / METRICS_CSV)]
                     + ([TensorBoardLog(run_dir / TENSORBOARD_DIR)] if config.tensorboard else [])
                     + ([] if quiet else [_printer()]) + list(listeners)) if world.main else [history]

        def emit(event):
            for listener in listeners:
                listener(event)

        def checkpoint(done=False):
            if not world.main:
                return
            state, tensors = progress.state(done)
            state.update(best_epoch=monitor.best_epoch, best_score=monitor.best, monitor=monitor.state_dict(),
                         guard=parts.guard.state_dict() if parts.guard else None, config=config.to_dict())
            save_checkpoint(run_dir / CHECKPOINT_DIR, parts.model, parts.optimizer, parts.schedule, state,
                            ema=parts.ema, tensors=tensors, lookahead=parts.lookahead)

        def interrupted():   # run.json says so and the listeners hear it; the caller re-raises
            if world.main:
                mark_interrupted(run_dir, info, progress.step)
            emit(Event("interrupted", dict(step=progress.step, epoch=progress.epoch, run_dir=str(run_dir))))

        emit(Event("start", dict(config=config.to_dict(), device=str(device), precision=precision, n_train=len(train),
                                 n_val=len(val) if val else 0, epochs=last_epoch, total_steps=parts.settings.last_step,
                                 run_dir=str(run_dir), steps_per_epoch=math.ceil(len(train) / config.batch_size),
                                 step=progress.step, previous=previous, processes=world.size)))

        # Train: each epoch, then validate, keep the best weights, checkpoint
        images, labels = train.images.to(device), train.labels.to(device)
        stop = None

        def wrapped():
            """What a step calls: the model, or DDP around it, compiled with --compile. Built again
            whenever what trains changes, since DDP reduces the gradients of what trained when built."""
            return compiled(world.wrap(parts.model), config.compile)

        trained = wrapped()
        try:
            for epoch in range(progress.epoch, last_epoch + 1):
                if parts.stages is not None and parts.stages.enter(epoch):   # --fine-tune: freeze or unfreeze
                    trained = wrapped()
                    emit(Event("stage", parts.stages.describe(parts.model, last_epoch)[parts.stages.stage(epoch) - 1]))
                bias_epochs = config.whiten_bias_epochs   # airbench: the whitening bias trains, then is frozen
                if bias_epochs is not None and train_biases(parts.model, epoch <= bias_epochs):
                    trained = wrapped()
                stop = train_one_epoch(parts.model, parts.optimizer, parts.schedule, parts.loss, images, labels,
                                       progress, parts.settings, emit, ema=parts.ema, guard=parts.guard,
                                       dropout=parts.dropout, checkpoint=checkpoint, ctrl_c=ctrl_c, world=world,
                                       trained=trained, lookahead=parts.lookahead, flip_halves=parts.flip_halves)
                if progress.seen == 0:           # diverged on the epoch's first step: nothing to record
                    break
                if parts.lookahead is not None and stop is None:
                    parts.lookahead.settle(parts.model)   # the epoch ends on the average: validated, saved
                record = batch_records = None
                if world.main:                   # validation on rank 0; every rank closes the epoch with its record
                    validated = time.perf_counter()
                    validation = validate(parts.evaluated, val, parts.loss) if val is not None else None
                    batch_records = progress.batch_records()
                    record = epoch_record(progress, batch_records, validation,
                                          progress.seconds + time.perf_counter() - validated)
                    if parts.stages is not None:
                        record["stage"] = parts.stages.stage(epoch)
                record = world.broadcast_object(record)
                diverged = stop is not None      # the epoch took the bad steps: it is recorded, never the best
                with held(ctrl_c):               # closing the epoch is all or nothing: a Ctrl-C waits for its end
                    emit(Event("epoch", dict(record=record, batch_records=batch_records)))
                    parts.schedule.epoch_end(record)
                    if not diverged and monitor.update(record) and world.main:
                        save_weights(run_dir / WEIGHTS_FILE, parts.evaluated)
                    if not diverged and monitor.should_stop:
                        stop = early_stopping(monitor, config, record)
                    if not diverged:             # a diverged state is no place to resume from
                        checkpoint(done=True)
                    if diverged or stop is not None or epoch == last_epoch:
                        break
                    progress = progress.following(new_order())
        except WriteError as error:              # disk full, folder gone read-only: what was written is whole
            raise WriteError(f"{error}. Training stopped at step {progress.step}; once it can write again, "
                             f"`konbu train --resume {run_dir}` continues from the last complete checkpoint") from None
        except KeyboardInterrupt:
            if stop is None:                     # last.ckpt: the steps done so far; resume continues from there
                checkpoint()
            interrupted()
            raise
        if not world.main:                       # rank 0 alone evaluates, calibrates and reports
            return None

        # Finish: keep the chosen weights, evaluate them on the untouched test split, calibrate, report.
        # Still under the Ctrl-C handler: a first Ctrl-C now (or the web app's stop) lets these few
        # seconds end and the run finish; a second stops them, and a resume finishes the run again.
        try:
            run = _finish(run_dir, info, config, parts, monitor, history, progress, stop, test, val, device, emit)
        except KeyboardInterrupt:
            interrupted()
            raise
    emit(Event("end", dict(final=run.info["final"], best_epoch=monitor.best_epoch, seconds=progress.total_seconds,
                           run_dir=str(run_dir), info=run.info)))
    return run


def _finish(run_dir, info, config, parts, monitor, history, progress, stop, test, val, device, emit) -> Run:
    """Keep the chosen weights, record why training stopped, then finish_run (test evaluation,
    calibration, figures, report)."""
    weights_epoch = monitor.best_epoch
    if stop is not None and stop["reason"] == "diverged":
        stop.update(diverged_advice(stop, monitor.best_epoch))
    elif not config.restore_best and history.epochs:
        save_weights(run_dir / WEIGHTS_FILE, parts.evaluated)   # Keras's restore_best_weights=False
        weights_epoch = history.epochs[-1]["epoch"]
    if stop is not None:
        info["stopped"] = stop
        emit(Event("stop", dict(stop)))
    seconds, images_seen = progress.total_seconds, progress.total_images
    return finish_run(run_dir, info, test, val, history.epochs, weights_epoch, device, best_epoch=monitor.best_epoch,
                      seconds=round(seconds, 3), images_per_second=round(images_seen / seconds, 1) if seconds else None)


def _monitor(config: TrainConfig, has_validation: bool) -> Monitor:
    """What "best" means (weights.safetensors) and what early stopping watches."""
    name = config.monitor
    if not has_validation and name.startswith("val_"):
        if config.patience is not None:
            raise ConfigError(f"early stopping watches {name}, but --val-fraction is 0; hold out a "
                              "validation split or pass --monitor train_loss")
        name = "latest"   # without validation, the latest epoch is the best we know
    return Monitor(name, config.patience, config.min_delta)


def _stored(config: TrainConfig) -> dict:
    """The config as run.json stores it: the dataset name is kept once, at run.json's top level."""
    return {key: value for key, value in config.to_dict().items() if key != "dataset"}


def _describe(config: TrainConfig, parts, train, val, test, threads, device, precision, start, world):
    """(run.json's first contents, model.json, preprocess.json) of a new run."""
    info = {
        "model": parts.spec["name"], "model_source": parts.spec["source"], "dataset": config.dataset,
        "config": _stored(config), "seed": config.seed, "device": str(device), "precision": precision,
        "threads": threads, "processes": world.size, "channels_last": parts.loss.channels_last,
        "augment": parts.augment_policy,
        "versions": {"konbu": __version__, "torch": torch.__version__},
        "data": {"train": len(train), "validation": len(val) if val else 0, "test": len(test),
                 "dataset_source": train.info.source},
        "summary": summary(parts.model, train.image_shape, name=parts.spec["name"]).to_dict(),
    }
    if parts.from_run:
        info["from_run"] = parts.from_run
    elif start is not None and start.record:
        info["pretrained"] = start.record
    if parts.stages is not None:
        info["fine_tune"] = {"freeze_epochs": config.freeze_epochs, "unfreeze": config.unfreeze,
                             "backbone_lr_ratio": config.backbone_lr_ratio,
                             "stages": parts.stages.describe(parts.model, config.last_epoch(
                                 math.ceil(len(train) / config.batch_size)))}
    if config.recipe:
        from .recipes import load_recipe
        info["recipe"] = config.recipe + (f" ({config.variant})" if config.variant else "")
        info["reported"] = load_recipe(config.recipe).reported_for(config.variant)
    model = {**parts.spec, "layers": parts.model.spec, "init": config.init, "input_shape": list(train.image_shape),
             "num_classes": train.num_classes}
    mean, std = input_statistics(config, train, start)
    preprocess = {"image_shape": list(train.image_shape), "channels": train.image_shape[0], "mean": list(mean),
                  "std": list(std), "classes": list(train.classes), "ink": train.info.ink,
                  "ink_box": train.info.ink_box, "polarity": "light-on-dark" if train.info.ink == "mnist" else "as-is"}
    if "pretrained" in info:   # the backbone's own metadata, for a photo's resize and crop
        preprocess["backbone"] = {key: info["pretrained"][key] for key in
                                  ("arch", "input_size", "resize_size", "interpolation")}
    return info, model, preprocess


def _printer():
    from .progress import ProgressPrinter  # rich is only needed when printing
    return ProgressPrinter()
