"""`fit()`: train a zoo model on a dataset and write the run directory.

    import konbu
    run = konbu.fit(model="chollet-mnist", dataset="mnist-sample", epochs=5)
    run.evaluate()["accuracy"]
    run = konbu.fit(recipe="tf-experts", dataset="mnist-sample", steps=500)   # a tutorial, shortened
    run = konbu.fit(resume="runs/deep-mnist-...")                              # continue exactly

The data is one uint8 tensor on the training device; each epoch shuffles it with one gather and
slices batches from it, augmenting and normalising on the device (a per-sample Python pipeline
would be the largest single cost at this size). The loop emits events; printing and logging are
listeners.

Resume is exact: last.ckpt holds weights, optimizer, schedule, EMA, every RNG and, when taken
mid-epoch (--checkpoint-every, or Ctrl-C), the epoch's sample order and the steps done in it. A
Ctrl-C takes effect when the step in progress has finished (a second one stops at once), so the
checkpoint is a clean step boundary. With --deterministic on a CPU an interrupted and resumed run
ends with the same bits as one that never stopped (tests/train/test_resume.py checks it).

Stopping: early stopping (--patience) and the divergence guard (guard.py) end a run early; either
way the run is finished normally (test evaluation, figures, report) from the best weights, and
run.json's "stopped" says why: {"reason": "diverged" | "early_stopping", "step", "epoch",
"message", ...; diverged adds "detail", "lr", "suggested_lr"}.
"""

import math
import os
import random
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .. import __version__, atomic
from ..data import load_dataset, validation_split
from ..device import pick_device, resolve_precision, set_threads
from ..errors import ConfigError, RunDirectoryError
from ..inspect import classification_metrics
from ..models import build_model, model_spec, summary
from ..reporting import build_report, calibrate_run
from ..runs import INITIAL_FILE, Run, read_json, read_metrics, save_initial_filters, save_weights
from .checkpoint import checkpoint_path, load_checkpoint, read_state, save_checkpoint
from .config import TrainConfig
from .ema import EMA
from .epoch import EpochProgress, Parts, ctrl_c_between_steps, epoch_order, train_one_epoch, validate
from .events import Event, History, MetricsLog
from .guard import DivergenceGuard
from .logs import CsvLog, TensorBoardLog
from .optim import make_optimizer
from .schedule import DropoutSchedule, make_schedule, piecewise_base_lr
from .stopping import Monitor

# settings a resumed run may change: they decide speed and logging, not the numbers
RESUME_MAY_CHANGE = {"threads", "tensorboard"}


def default_run_dir(config: TrainConfig, model_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    prefix = f"{config.recipe}-{config.variant}" if config.variant else config.recipe or model_name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{prefix}-{config.dataset}-{stamp}")
    return Path("runs") / name


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- fit

def fit(config: TrainConfig | None = None, listeners=(), quiet: bool = False, resume=None, **overrides) -> Run:
    """Train as `config` (or TrainConfig fields given as keywords) says; returns the loaded Run.

    `resume=RUN_DIR` continues that run from its last.ckpt with its own settings (a setting given
    here that differs from the run's is a ConfigError)."""
    given = {**(config.to_dict() if config else {}), **overrides}
    config = _resume_config(Path(resume), given) if resume is not None else TrainConfig.from_overrides(**given)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_benchmark = torch.backends.cudnn.benchmark
    try:
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # cuBLAS needs it to be deterministic
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        return _fit(config, resume, listeners, quiet)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.backends.cudnn.benchmark = was_benchmark


def _resume_config(run_dir: Path, given: dict):
    """The run's own config, with the few settings that may change; ConfigError if it can't be resumed."""
    if not (run_dir / "run.json").is_file():
        raise RunDirectoryError(f"--resume {run_dir}: no run.json there; pass a run directory `konbu train` wrote")
    info = read_json(run_dir / "run.json")
    if info.get("status") == "finished":
        raise ConfigError(f"--resume {run_dir}: that run finished ({info.get('finished', 'earlier')}); nothing to "
                          "resume. To train longer, start a new run with more --epochs and another --out")
    if not (checkpoint_path(run_dir / "last.ckpt") / "state.json").is_file():
        raise ConfigError(f"--resume {run_dir}: it has no last.ckpt yet (one is written after each epoch, every "
                          "--checkpoint-every steps and on Ctrl-C); start it again instead")
    saved = info["config"]
    given = {k: v for k, v in given.items() if v is not None}
    if "out" in given and Path(given["out"]) != run_dir:
        raise ConfigError(f"--resume writes into {run_dir} itself; leave out --out")
    differ = [f"{k} {saved.get(k)!r} (run) vs {v!r} (given)" for k, v in given.items()
              if k not in RESUME_MAY_CHANGE | {"out"} and saved.get(k) != v]
    if differ:
        raise ConfigError(f"--resume continues a run with its own settings, but these differ: {'; '.join(differ)}. "
                          "Drop them, or start a new run to change them")
    if "epoch_done" not in read_state(run_dir / "last.ckpt"):
        raise ConfigError(f"--resume {run_dir}: its last.ckpt was written by an older konbu without the state an "
                          "exact resume needs; start the run again")
    return TrainConfig.from_overrides(**{**saved, **{k: v for k, v in given.items() if k in RESUME_MAY_CHANGE},
                                         "out": str(run_dir)})


def prepare_data(config: TrainConfig):
    """(train, validation or None, test). image_size/classes go to load_dataset only when set."""
    options = {name: getattr(config, name) for name in ("image_size", "classes") if getattr(config, name) is not None}
    full_train = load_dataset(config.dataset, "train", config.data_dir, **options)
    test = load_dataset(config.dataset, "test", config.data_dir, **options)
    if config.val_fraction > 0:
        train, val = validation_split(full_train, config.val_fraction, config.seed)
    else:
        train, val = full_train, None
    if config.normalize == "unit":   # x / 255: the mean/std the model sees and preprocess.json records
        channels = train.image_shape[0]
        for split in (train, val, test):
            if split is not None:
                split.mean, split.std = (0.0,) * channels, (1.0,) * channels
    return train, val, test


def augment_policy(policy: str | None, train) -> str | None:
    """`auto` (the default): `digits` for MNIST-style handwriting of 16 pixels or more, else none. At
    8x8 (sklearn's digits) a 10% shift is under a pixel and every resampling blurs the strokes; photos
    and other scripts need their own policy (--augment cifar, ...), which a user picks knowingly."""
    if policy != "auto":
        return policy
    return "digits" if train.info.ink == "mnist" and min(train.image_shape[1:]) >= 16 else None


def build_parts(config: TrainConfig, train, device, precision):
    """(Parts, model spec, per-sample weights for balanced sampling or None): the model on the device,
    its optimizer, schedules, EMA, guard, loss weights and augmentation, as `config` says."""
    num_classes = train.num_classes
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = config.total_steps(steps_per_epoch)
    spec = model_spec(config.model)
    model = build_model(spec, train.image_shape, num_classes, config.init)
    channels_last = config.channels_last and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    first_rate = piecewise_base_lr(config.lr_schedule)
    if first_rate is not None and config.lr is not None and config.lr != first_rate:
        raise ConfigError(f"--lr {config.lr:g} and --lr-schedule {config.lr_schedule!r} disagree: a piecewise "
                          "schedule gives the rates itself; drop --lr")
    optimizer = make_optimizer(config.optimizer, model.parameters(), first_rate or config.lr, config.momentum,
                               config.nesterov, config.weight_decay)
    schedule = make_schedule(config.lr_schedule, optimizer, total_steps, steps_per_epoch, config.warmup)
    dropout = DropoutSchedule(config.dropout_schedule, steps_per_epoch) if config.dropout_schedule else None
    if dropout is not None and not any(isinstance(m, torch.nn.Dropout) for m in model.modules()):
        raise ConfigError(f"--dropout-schedule: {spec['name']} has no dropout layer to schedule")
    counts = torch.bincount(train.labels, minlength=num_classes).clamp(min=1).double()
    class_weights = None
    if config.class_weights == "balanced":   # sklearn's "balanced": n / (K * count)
        class_weights = (len(train) / (num_classes * counts)).float().to(device)
    sample_weights = (1.0 / counts)[train.labels] if config.sampler == "balanced" else None
    augment = None
    policy = augment_policy(config.augment, train)
    if policy is not None:
        from .augment import make_augment
        augment = make_augment(policy, train.info)
    parts = Parts(model, optimizer, schedule, config, device, precision, channels_last,
                  torch.tensor(train.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                  torch.tensor(train.std, dtype=torch.float32, device=device).view(1, -1, 1, 1), num_classes,
                  dropout=dropout, ema=EMA(model, config.ema) if config.ema else None,
                  guard=DivergenceGuard(config.guard, num_classes) if config.guard else None,
                  class_weights=class_weights, augment=augment)
    return parts, spec, sample_weights


def _start_run(run_dir: Path, config: TrainConfig, spec, model_summary, parts: Parts, train, val, test, threads):
    """Write model.json and preprocess.json of a new run; return its run.json contents."""
    info = {
        "name": run_dir.name, "model": spec["name"], "model_source": spec["source"], "dataset": config.dataset,
        "config": config.to_dict(), "seed": config.seed, "device": str(parts.device), "precision": parts.precision,
        "threads": threads, "channels_last": parts.channels_last, "augment": augment_policy(config.augment, train),
        "versions": {"konbu": __version__, "torch": torch.__version__},
        "data": {"train": len(train), "validation": len(val) if val else 0, "test": len(test),
                 "dataset_source": train.info.source},
        "summary": model_summary.to_dict(), "status": "running", "started": _now(),
    }
    if config.recipe:
        from .recipes import load_recipe
        info["recipe"] = config.recipe + (f" ({config.variant})" if config.variant else "")
        info["reported"] = load_recipe(config.recipe).reported_for(config.variant)
    atomic.write_json(run_dir / "model.json", {**spec, "layers": parts.model.spec, "init": config.init,
                                               "input_shape": list(train.image_shape),
                                               "num_classes": train.num_classes})
    atomic.write_json(run_dir / "preprocess.json", {
        "image_shape": list(train.image_shape), "channels": train.image_shape[0], "mean": list(train.mean),
        "std": list(train.std), "classes": list(train.classes), "ink": train.info.ink, "ink_box": train.info.ink_box,
        "polarity": "light-on-dark" if train.info.ink == "mnist" else "as-is"})
    return info


def _fit(config: TrainConfig, resume, listeners, quiet) -> Run:
    threads = set_threads(config.threads)
    device = pick_device(config.device)
    precision = resolve_precision(config.precision, device)
    torch.manual_seed(config.seed)       # also seeds every CUDA device
    np.random.seed(config.seed)
    random.seed(config.seed)

    # Prepare the data: train minus a seeded validation fraction; test is only read at the end
    train, val, test = prepare_data(config)
    mean, std = train.mean, train.std
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = config.total_steps(steps_per_epoch)
    last_epoch = config.last_epoch(steps_per_epoch)

    # Build the model, its optimizer and schedules
    parts, spec, sample_weights = build_parts(config, train, device, precision)
    model, optimizer, schedule, channels_last = parts.model, parts.optimizer, parts.schedule, parts.channels_last
    model_summary = summary(model, train.image_shape, name=spec["name"])
    monitor_name = config.monitor
    if val is None and monitor_name.startswith("val_"):
        if config.patience is not None:
            raise ConfigError(f"early stopping watches {monitor_name}, but --val-fraction is 0; hold out a "
                              "validation split or pass --monitor train_loss")
        monitor_name = "latest"   # without validation, the latest epoch is the best we know
    monitor = Monitor(monitor_name, config.patience, config.min_delta)
    evaluated = parts.ema.module if parts.ema else model      # what is validated and saved

    # The run directory: refuse to write over a run (nothing is ever lost); a resume continues it
    run_dir = Path(resume) if resume else (Path(config.out) if config.out else default_run_dir(config, spec["name"]))
    progress, previous, step = None, [], 0
    if resume:
        info = read_json(run_dir / "run.json")
        state, tensors = load_checkpoint(run_dir / "last.ckpt", model, optimizer, schedule, ema=parts.ema)
        step = state["step"]
        monitor.load_state_dict(state["monitor"])
        if parts.guard is not None and state.get("guard"):
            parts.guard.load_state_dict(state["guard"])
        first_epoch = state["epoch"] + 1 if state["epoch_done"] else state["epoch"]
        if not state["epoch_done"]:
            progress = EpochProgress(state["epoch"], tensors["order"], step, tensors["loss_sum"].to(device),
                                     tensors["correct"].to(device), batch=state["batch"], seen=state["seen"],
                                     seconds=state["epoch_seconds"], records=state["records"])
        previous = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("epoch", 0) < first_epoch]
        info.setdefault("resumed", []).append({"step": step, "epoch": first_epoch, "time": _now()})
        info.update(status="running", config=config.to_dict())
        trained_seconds, images_seen = state.get("seconds", 0.0), state.get("images", 0)
    else:
        if (run_dir / "run.json").exists():
            raise ConfigError(f"{run_dir} already holds a run; pass another --out, remove that folder, "
                              f"or continue it with --resume {run_dir}")
        first_epoch, trained_seconds, images_seen = 1, 0.0, 0
        info = _start_run(run_dir, config, spec, model_summary, parts, train, val, test, threads)
        # until an epoch beats them, the initial weights are the best we have: a run stopped in its
        # first epoch (divergence, Ctrl-C) is still a loadable run
        save_weights(run_dir / "weights.safetensors", evaluated)
        save_initial_filters(run_dir / INITIAL_FILE, model)
    atomic.write_json(run_dir / "run.json", info)

    history = History()
    listeners = ([history, MetricsLog(run_dir / "metrics.jsonl"), CsvLog(run_dir / "metrics.csv")]
                 + ([TensorBoardLog(run_dir / "tensorboard")] if config.tensorboard else [])
                 + ([] if quiet else [_printer()]) + list(listeners))

    def emit(event):
        for listener in listeners:
            listener(event)

    def save_last(progress: EpochProgress, done: bool):
        tensors = {} if done else {"order": progress.order, "loss_sum": progress.loss_sum, "correct": progress.correct}
        state = {"epoch": progress.epoch, "batch": progress.batch, "epoch_done": done, "step": progress.step,
                 "seen": progress.seen, "epoch_seconds": progress.seconds + (time.perf_counter() - epoch_began),
                 "records": [] if done else progress.batch_records(), "best_epoch": monitor.best_epoch,
                 "best_score": monitor.best, "monitor": monitor.state_dict(),
                 "guard": parts.guard.state_dict() if parts.guard else None,
                 "seconds": trained_seconds + time.perf_counter() - epoch_began,
                 "images": images_seen + progress.seen - seen_before, "config": config.to_dict()}
        save_checkpoint(run_dir / "last.ckpt", model, optimizer, schedule, state, ema=parts.ema, tensors=tensors)

    emit(Event("start", dict(config=config.to_dict(), device=str(device), precision=precision, n_train=len(train),
                             n_val=len(val) if val else 0, epochs=last_epoch, total_steps=total_steps,
                             run_dir=str(run_dir), steps_per_epoch=steps_per_epoch, step=step, previous=previous)))

    # Train
    images, labels = train.images.to(device), train.labels.to(device)
    stop, epoch_began, seen_before = None, time.perf_counter(), 0
    with ctrl_c_between_steps() as ctrl_c:
        parts.ctrl_c = ctrl_c
        try:
            for epoch in range(first_epoch, last_epoch + 1):
                if progress is None or progress.epoch != epoch:
                    progress = EpochProgress.begin(epoch, epoch_order(len(train), sample_weights), step, device)
                epoch_began, seen_before = time.perf_counter(), progress.seen
                stop = train_one_epoch(parts, images, labels, progress, emit, total_steps,
                                       checkpoint=lambda: save_last(progress, done=False))
                step = progress.step
                train_seconds = time.perf_counter() - epoch_began
                if progress.seen == 0:           # diverged on the epoch's first step: nothing to record
                    break
                record = {"kind": "epoch", "epoch": epoch, "step": step,
                          "train_loss": float(progress.loss_sum) / progress.seen,
                          "train_accuracy": float(progress.correct) / progress.seen}
                if val is not None:
                    record["val_loss"], record["val_accuracy"] = validate(evaluated, val, mean, std, device,
                                                                          precision, channels_last)
                record["lr"] = progress.batch_records()[-1]["lr"]
                record["seconds"] = round(progress.seconds + time.perf_counter() - epoch_began, 4)
                # the training pass only (validation excluded)
                record["images_per_second"] = round((progress.seen - seen_before) / train_seconds, 1)
                trained_seconds += train_seconds
                images_seen, seen_before = images_seen + progress.seen - seen_before, progress.seen
                emit(Event("epoch", dict(record=record, batch_records=progress.batch_records())))
                schedule.epoch_end(record)
                # an epoch that ended in divergence took the bad steps: it may be recorded, never be the best
                if (stop is None or stop["reason"] != "diverged") and monitor.update(record):
                    save_weights(run_dir / "weights.safetensors", evaluated)
                if stop is None and monitor.should_stop:
                    stop = {"reason": "early_stopping", "step": step, "epoch": epoch, "monitor": monitor.name,
                            "best": monitor.best, "best_epoch": monitor.best_epoch,
                            "message": f"early stopping: {monitor.name} has not improved by more than "
                                       f"{config.min_delta:g} for {config.patience} epochs (best "
                                       f"{monitor.best:.4f} at epoch {monitor.best_epoch})"}
                progress.closed = True   # its updates are made: from here an interrupt saves the epoch as done
                if stop is None or stop["reason"] != "diverged":   # a diverged state is no place to resume from
                    epoch_began = time.perf_counter()
                    progress.seconds = 0.0
                    save_last(progress, done=True)
                if stop is not None:
                    break
        except KeyboardInterrupt:
            if progress is not None and not (stop and stop["reason"] == "diverged"):
                save_last(progress, done=progress.closed)
            at = step if progress is None else progress.step
            info.update(status="interrupted", interrupted={"step": at, "time": _now()})
            atomic.write_json(run_dir / "run.json", info)
            emit(Event("interrupted", dict(step=at, run_dir=str(run_dir))))
            raise

    weights_epoch = monitor.best_epoch
    if stop is not None and stop["reason"] == "diverged":
        lr = stop["lr"]
        stop.update(suggested_lr=float(f"{lr / 10:.1g}"),
                    message=f"training diverged at step {stop['step']}: {stop['detail']}. The best weights "
                            f"(epoch {monitor.best_epoch or 'none: the initial weights'}) are kept. The learning "
                            f"rate was {lr:.3g}: try --lr {lr / 10:.1g}, a warm-up (--warmup), --clip-grad 1, "
                            f"or `konbu lr-find` to pick one")
        model.load_state_dict(load_file(run_dir / "weights.safetensors", device=str(device)))   # restore the best
    elif not config.restore_best and history.epochs:
        save_weights(run_dir / "weights.safetensors", evaluated)   # Keras's restore_best_weights=False
        weights_epoch = history.epochs[-1]["epoch"]
    if stop is not None:
        info["stopped"] = stop
        emit(Event("stop", dict(stop)))
    info.update(best_epoch=monitor.best_epoch, weights_epoch=weights_epoch, seconds=round(trained_seconds, 3),
                images_per_second=round(images_seen / trained_seconds, 1) if trained_seconds else None)

    # Evaluate the saved weights on the untouched test split, calibrate the percentages on the
    # validation split, then draw every figure and write the report (konbu.reporting).
    run = Run.load(run_dir)
    test_logits = run.logits(test.images)
    test_metrics = classification_metrics(test_logits, test.labels, list(test.classes))
    final = {"test_loss": test_metrics["loss"], "test_accuracy": test_metrics["accuracy"], "test_n": test_metrics["n"]}
    if history.epochs:
        last = history.epochs[-1]
        final = {"train_loss": last["train_loss"], "train_accuracy": last["train_accuracy"], **final}
    chosen = [r for r in history.epochs if r["epoch"] == weights_epoch]
    if val is not None and chosen:
        final.update(val_loss=chosen[0]["val_loss"], val_accuracy=chosen[0]["val_accuracy"])
    if "top5_accuracy" in test_metrics:
        final["test_top5_accuracy"] = test_metrics["top5_accuracy"]
    if train.info.headline_metric != "accuracy":   # k49: imbalanced, judged by balanced accuracy
        final[f"test_{train.info.headline_metric}"] = test_metrics[train.info.headline_metric]
    info.update(status="finished", finished=_now(), final=final)
    if val is not None:
        calibration = calibrate_run(run, val)
        info["calibration"] = {key: calibration[key] for key in ("temperature", "ece_before", "ece_after")}
    atomic.write_json(run_dir / "run.json", info)
    run.info = info   # the Run loaded above already holds the saved weights; only run.json changed
    build_report(run, test, test_logits=test_logits)
    emit(Event("end", dict(final=final, best_epoch=monitor.best_epoch, seconds=trained_seconds, run_dir=str(run_dir),
                           info=info)))
    return run


def _printer():
    from .progress import ProgressPrinter  # rich is only needed when printing
    return ProgressPrinter()
