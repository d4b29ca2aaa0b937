"""`fit()`: train a zoo model on a dataset and write the run directory.

    import konbu
    run = konbu.fit(model="chollet-mnist", dataset="mnist-sample", epochs=5)
    run.evaluate()["accuracy"]

The data is one uint8 tensor on the training device; each epoch shuffles it with one gather and
slices batches from it, normalising on the device (a per-sample Python pipeline would be the
largest single cost at this size). The loop emits events; printing and logging are listeners.
"""

import re
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import __version__, atomic
from ..data import load_dataset, validation_split
from ..device import autocast, pick_device, resolve_precision, set_threads
from ..errors import ConfigError
from ..inference import logits, normalise
from ..inspect import classification_metrics, plot_confusion, plot_curves, write_report
from ..models import build_model, model_spec, summary
from ..runs import Run, read_metrics, save_weights
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .events import Event, History, MetricsLog
from .optim import make_optimizer
from .schedule import make_schedule


def default_run_dir(config: TrainConfig, model_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{model_name}-{config.dataset}-{stamp}")
    return Path("runs") / name


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def train_one_epoch(model, optimizer, schedule, images, labels, mean, std, config, device, precision,
                    channels_last, epoch, step, emit):
    """One pass over the (device-resident, uint8) training set. Returns (epoch stats, batch records)."""
    model.train()
    n = images.shape[0]
    order = torch.randperm(n).to(device)                 # CPU generator: the same order on any device
    images, labels = images[order], labels[order]        # one gather per epoch, then cheap slices
    batches = (n + config.batch_size - 1) // config.batch_size
    losses, corrects, sizes, lrs = [], [], [], []
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for batch in range(1, batches + 1):
        start = (batch - 1) * config.batch_size
        x = normalise(images[start:start + config.batch_size], mean, std)   # (B, C, H, W) float32
        y = labels[start:start + config.batch_size]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            output = model(x)
        loss = F.cross_entropy(output.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lrs.append(optimizer.param_groups[0]["lr"])   # the rate this step used
        optimizer.step()
        schedule.step()
        step += 1
        batch_loss, batch_correct = loss.detach(), (output.argmax(1) == y).sum()
        losses.append(batch_loss)
        corrects.append(batch_correct)
        sizes.append(y.shape[0])
        loss_sum += batch_loss * y.shape[0]
        correct += batch_correct
        emit(Event("batch", dict(epoch=epoch, step=step, batch=batch, batches=batches, loss_sum=loss_sum,
                                 correct=correct, seen=start + y.shape[0])))
    # one device sync per epoch for the per-step curve, instead of one per step
    losses, corrects = torch.stack(losses).tolist(), torch.stack(corrects).tolist()
    first_step = step - batches + 1
    batch_records = [{"kind": "batch", "epoch": epoch, "step": first_step + i, "loss": round(loss, 6),
                      "accuracy": round(c / s, 6), "lr": lr}
                     for i, (loss, c, s, lr) in enumerate(zip(losses, corrects, sizes, lrs))]
    stats = {"train_loss": float(loss_sum) / n, "train_accuracy": float(correct) / n}
    return stats, batch_records, step


def validate(model, dataset, mean, std, device, precision, channels_last):
    """(loss, accuracy) of `model` on a held-out split."""
    output = logits(model, dataset.images, mean, std, device=device, precision=precision, channels_last=channels_last)
    return F.cross_entropy(output, dataset.labels).item(), (output.argmax(1) == dataset.labels).double().mean().item()


def fit(config: TrainConfig | None = None, listeners=(), quiet: bool = False, **overrides) -> Run:
    """Train as `config` (or TrainConfig fields given as keywords) says; returns the loaded Run."""
    config = TrainConfig.from_overrides(**{**(config.to_dict() if config else {}), **overrides})
    threads = set_threads(config.threads)
    device = pick_device(config.device)
    precision = resolve_precision(config.precision, device)
    torch.manual_seed(config.seed)

    # Prepare the data: train minus a seeded validation fraction; test is only read at the end
    full_train = load_dataset(config.dataset, "train", config.data_dir)
    test = load_dataset(config.dataset, "test", config.data_dir)
    if config.val_fraction > 0:
        train, val = validation_split(full_train, config.val_fraction, config.seed)
    else:
        train, val = full_train, None
    mean, std = train.mean, train.std

    # Build the model
    spec = model_spec(config.model)
    model = build_model(spec, train.image_shape, train.num_classes, config.init)
    model_summary = summary(model, train.image_shape, name=spec["name"])
    channels_last = config.channels_last and any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
    steps_per_epoch = (len(train) + config.batch_size - 1) // config.batch_size
    schedule = make_schedule(config.lr_schedule, optimizer, config.epochs * steps_per_epoch)

    # The run directory: refuse to write over a finished run (nothing is ever lost)
    run_dir = Path(config.out) if config.out else default_run_dir(config, spec["name"])
    if (run_dir / "run.json").exists():
        raise ConfigError(f"{run_dir} already holds a run; pass another --out (or remove that folder)")
    info = {
        "name": run_dir.name, "model": spec["name"], "model_source": spec["source"], "dataset": config.dataset,
        "config": config.to_dict(), "seed": config.seed, "device": str(device), "precision": precision,
        "threads": threads, "channels_last": channels_last,
        "versions": {"konbu": __version__, "torch": torch.__version__},
        "data": {"train": len(train), "validation": len(val) if val else 0, "test": len(test),
                 "dataset_source": train.info.source},
        "summary": model_summary.to_dict(), "status": "running", "started": _now(),
    }
    atomic.write_json(run_dir / "model.json", {**spec, "layers": model.spec, "init": config.init,
                                               "input_shape": list(train.image_shape), "num_classes": train.num_classes})
    atomic.write_json(run_dir / "preprocess.json", {
        "image_shape": list(train.image_shape), "channels": train.image_shape[0], "mean": list(mean),
        "std": list(std), "classes": list(train.classes), "ink": train.info.ink, "ink_box": train.info.ink_box,
        "polarity": "light-on-dark" if train.info.ink == "mnist" else "as-is"})
    atomic.write_json(run_dir / "run.json", info)

    history = History()
    listeners = [history, MetricsLog(run_dir / "metrics.jsonl")] + ([] if quiet else [_printer()]) + list(listeners)

    def emit(event):
        for listener in listeners:
            listener(event)

    emit(Event("start", dict(config=config.to_dict(), device=str(device), precision=precision, n_train=len(train),
                             n_val=len(val) if val else 0, epochs=config.epochs, run_dir=str(run_dir),
                             steps_per_epoch=steps_per_epoch)))

    # Train
    images, labels = train.images.to(device), train.labels.to(device)
    began, step, best_accuracy, best_epoch = time.perf_counter(), 0, -1.0, 0
    for epoch in range(1, config.epochs + 1):
        epoch_began = time.perf_counter()
        stats, batch_records, step = train_one_epoch(model, optimizer, schedule, images, labels, mean, std, config,
                                                     device, precision, channels_last, epoch, step, emit)
        train_seconds = time.perf_counter() - epoch_began
        record = {"kind": "epoch", "epoch": epoch, "step": step, **stats}
        if val is not None:
            record["val_loss"], record["val_accuracy"] = validate(model, val, mean, std, device, precision,
                                                                  channels_last)
        record["seconds"] = round(time.perf_counter() - epoch_began, 4)
        record["images_per_second"] = round(len(train) / train_seconds, 1)  # training pass only
        emit(Event("epoch", dict(record=record, batch_records=batch_records)))
        # best by validation accuracy; without validation, the latest epoch is the best we know
        score = record.get("val_accuracy", epoch)
        if score > best_accuracy:
            best_accuracy, best_epoch = score, epoch
            save_weights(run_dir / "weights.safetensors", model)
        save_checkpoint(run_dir / "last.ckpt", model, optimizer, schedule,
                        {"epoch": epoch, "step": step, "best_epoch": best_epoch, "best_score": best_accuracy,
                         "config": config.to_dict()})
    seconds = time.perf_counter() - began

    # Evaluate the best weights on the untouched test split; write figures and the report
    run = Run.load(run_dir)
    test_logits = run.logits(test.images)
    test_metrics = classification_metrics(test_logits, test.labels, list(test.classes))
    last = history.epochs[-1]
    final = {"train_loss": last["train_loss"], "train_accuracy": last["train_accuracy"],
             "test_loss": test_metrics["loss"], "test_accuracy": test_metrics["accuracy"], "test_n": test_metrics["n"]}
    best = history.epochs[best_epoch - 1]
    if val is not None:
        final.update(val_loss=best["val_loss"], val_accuracy=best["val_accuracy"])
    if "top5_accuracy" in test_metrics:
        final["test_top5_accuracy"] = test_metrics["top5_accuracy"]
    plot_curves(read_metrics(run_dir / "metrics.jsonl"), run_dir / "figures" / "curves.png")
    plot_confusion(torch.tensor(test_metrics["confusion"]), list(test.classes), run_dir / "figures" / "confusion.png")
    info.update(status="finished", finished=_now(), seconds=round(seconds, 3), best_epoch=best_epoch, final=final,
                images_per_second=round(len(train) * config.epochs / sum(r["seconds"] for r in history.epochs), 1))
    atomic.write_json(run_dir / "run.json", info)
    run.info = info   # the Run loaded above already holds the best weights; only run.json changed
    write_report(run_dir)
    emit(Event("end", dict(final=final, best_epoch=best_epoch, seconds=seconds, run_dir=str(run_dir))))
    return run


def _printer():
    from .progress import ProgressPrinter  # rich is only needed when printing
    return ProgressPrinter()
