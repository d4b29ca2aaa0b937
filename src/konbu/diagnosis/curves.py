"""Diagnose checks on the training curves and the learning rate: overfitting, a run too short or a
model too small for its data, divergence, loss spikes, a slow start and a plateau.

    import konbu
    konbu.diagnose("runs/deep", checks=["overfitting", "too-short", "underfitting", "diverged",
                                        "loss-spikes", "slow-start", "plateau"])

    konbu diagnose runs/deep

Everything is read from metrics.jsonl (a record per step and per epoch), run.json's "stopped" (the
divergence guard's and early stopping's record) and the run's own settings, from which each next
command is built (`train_command`): no data is needed, so these checks work on a copied run too.

    .venv/bin/python -m pytest -q tests/diagnosis/test_curves.py
"""

import math
import statistics

import numpy as np

from ..errors import KonbuError
from ..models import build_model, get_model_entry, list_models
from ..train.optim import default_lr
from ..train.stopping import Monitor
from . import BETTER, NOTE, WRONG, Finding, check
from .commands import learning_rate, lr_find_command, train_command

# Validation loss is noisy from epoch to epoch (the healthy digits run: +-2% around its trend), so
# overfitting is judged on a 3-epoch moving average that rose for 3 epochs or more, by 5% over its
# minimum: two to three times that noise. "While training loss falls": 5% lower at the end than at
# the validation minimum (both rising is a learning-rate problem, not memorisation).
SMOOTH = 3
RISE_EPOCHS = 3
OVERFIT_RISE = 0.05
TRAIN_FALL = 0.05
PATIENCE = 5       # early stopping's suggested patience (Keras's examples use 3-10), less for a short rise

# "Still falling": both losses fitted by a line over the last epochs drop by more than 2% of their
# level per epoch: another run as long would take off a good part again. A finished cosine run
# ends flat (the healthy run: -0.1% per epoch).
TREND_EPOCHS = 5
STILL_FALLING = 0.02

# A model that fits less than 90% of its training images (and of the validation images) is fit too
# little: every zoo model passes 95% on MNIST-style training sets, the CIFAR ones 90% given time.
UNDERFIT_ACCURACY = 0.9
# Below twice chance (1/K) it learned next to nothing: something went wrong, not just could go better.
CHANCE_FACTOR = 2.0

# A spike is a batch loss 3x the median of the 50 steps before it (two epochs of the digits), that is
# also a quarter of the guessing loss ln K above it: one hard image in a batch moves the loss by
# ~ln(K)/batch, a forgetting model by a large part of ln K. Three such steps are a pattern.
SPIKE_WINDOW = 50
SPIKE_FACTOR = 3.0
SPIKE_SHARE_OF_GUESSING = 0.25
MIN_SPIKES = 3

# The first epoch (at least 10 steps, after any warm-up): the mean loss of its last fifth under 5%
# below that of its first fifth. A rate that trains takes the digits MLP from 2.3 to 1.0 in epoch 1.
SLOW_START_STEPS = 10
SLOW_DROP = 0.05

# A plateau: over the last quarter of the run (5 epochs at least, of 8 or more), at a constant rate,
# no new best validation accuracy by more than one image, and the training loss down by under 2%.
PLATEAU_MIN_EPOCHS = 8
PLATEAU_SHARE = 0.25
PLATEAU_TRAIN_FALL = 0.02
CONVERGED_ACCURACY = 0.999   # nothing is left to fit: a lower rate would not move the validation numbers

# A warm-up of about an epoch (100 to 1,000 steps) lets adam's moment estimates settle before the full rate.
WARMUP_RANGE = (100, 1000)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _validated(ctx) -> list:
    return [r for r in ctx.epochs if _finite(r.get("train_loss")) and _finite(r.get("val_loss"))]


def _validation(record: dict) -> str:
    return f", validation {record['val_accuracy']:.1%}" if "val_accuracy" in record else ""


def _diverged(ctx) -> bool:
    return (ctx.info.get("stopped") or {}).get("reason") == "diverged" or _first_nonfinite(ctx) is not None


def _first_nonfinite(ctx) -> dict | None:
    """The first step whose loss was NaN or infinite (a run with --guard 0 records them)."""
    return next((b for b in ctx.batches if not _finite(b.get("loss"))), None)


def _smooth(values: list) -> list:
    return [statistics.fmean(values[max(0, i - SMOOTH + 1):i + 1]) for i in range(len(values))]


def _relative_slope(values: list) -> float:
    """The least-squares slope per epoch, as a share of the values' mean."""
    slope = np.polyfit(np.arange(len(values)), np.asarray(values, dtype=float), 1)[0]
    return float(slope / max(abs(np.mean(values)), 1e-12))


def _longer(config: dict) -> dict:
    """Twice the run's length, in the unit it was given in."""
    return {"steps": 2 * config["steps"]} if config.get("steps") else {"epochs": 2 * (config.get("epochs") or 1)}


def _zoo(ctx) -> dict:
    """{name: (parameters, has dropout)} of the zoo models that build for the run's images and were
    written for as many channels (a grey-scale net for grey-scale data, a CIFAR net for photos)."""
    shape, classes = tuple(ctx.run.preprocess["image_shape"]), len(ctx.run.classes)
    sizes = {}
    for name in list_models():
        entry = get_model_entry(name)
        if entry.input_shape[0] != shape[0]:
            continue
        try:
            model = build_model(name, shape, classes)
        except KonbuError:          # too many conv/pool layers for small images (chollet-mnist on 8x8)
            continue
        sizes[name] = (sum(p.numel() for p in model.parameters()),
                       any(layer.get("type") == "dropout" for layer in entry.layers))
    return sizes


def _own_size(ctx) -> int:
    return (ctx.info.get("summary") or {}).get("total_params") or 0


def _larger_model(ctx) -> str | None:
    """The smallest zoo model with more parameters than the run's."""
    return min(((params, name) for name, (params, _) in _zoo(ctx).items() if params > _own_size(ctx)),
               default=(0, None))[1]


def _dropout_model(ctx) -> str | None:
    """A zoo model with dropout, the closest in size to the run's; None when the run's model has dropout."""
    if any(layer.get("type") == "dropout" for layer in ctx.run.spec.get("layers", [])):
        return None
    return min(((abs(math.log(params / max(_own_size(ctx), 1))), name) for name, (params, dropout) in _zoo(ctx).items()
                if dropout and name != ctx.config["model"]), default=(0, None))[1]


def _augmentation(ctx) -> str | None:
    """The policy to add: `digits` for MNIST-style handwriting of 16 pixels or more, `cifar` for
    colour images; None when the run augments already, or for small images (parts.augment_policy:
    at 8x8 a shift is under a pixel and resampling blurs the strokes)."""
    if ctx.info.get("augment") not in (None, "none"):
        return None
    channels, height, width = ctx.run.preprocess["image_shape"]
    handwriting = ctx.run.preprocess.get("ink") == "mnist" and min(height, width) >= 16
    return "digits" if handwriting else "cifar" if channels == 3 else None


def _would_stop(records: list, monitor: str, patience: int) -> tuple | None:
    """(epoch it would have stopped at, its best epoch) under early stopping, or None."""
    watcher = Monitor(monitor, patience)
    for record in records:
        watcher.update(record)
        if watcher.should_stop:
            return record["epoch"], watcher.best_epoch
    return None


def _finding(ctx, **fields) -> list:
    """[the Finding], with the run's training curves as its evidence figure when they were drawn."""
    drawn = (ctx.path / "figures" / "curves.png").is_file()
    return [Finding(figure="figures/curves.png" if drawn else None, **fields)]


@check("overfitting")
def overfitting(ctx) -> list:
    records = _validated(ctx)
    if len(records) < SMOOTH + RISE_EPOCHS or _diverged(ctx):
        return []
    val, train = _smooth([r["val_loss"] for r in records]), _smooth([r["train_loss"] for r in records])
    low = int(np.argmin(val))
    rise, fell = val[-1] / val[low] - 1, 1 - train[-1] / train[low]
    if len(records) - 1 - low < RISE_EPOCHS or rise < OVERFIT_RISE or fell < TRAIN_FALL:
        return []
    best, last, config = min(records, key=lambda r: r["val_loss"]), records[-1], ctx.config
    gap = last["train_accuracy"] - last["val_accuracy"]
    policy, dropout_model = _augmentation(ctx), _dropout_model(ctx)
    next_steps = ([train_command(config, augment=policy)] if policy else []) + (
        [train_command(config, model=dropout_model)] if dropout_model else [])
    if not config.get("weight_decay"):
        # adam's own weight decay is an L2 term its step size scales away; adamw decays the weights
        # directly (Keras's 0.004 by default). 0.0005 is the usual rate for sgd (config.py).
        next_steps.append(train_command(config, optimizer="adamw") if config.get("optimizer") == "adam"
                          else train_command(config, weight_decay=0.0005))
    patience = max(2, min(PATIENCE, len(records) - 1 - low))
    own = config.get("monitor") if str(config.get("monitor")).startswith("val_") else "val_loss"
    # the run's own monitor first (one flag to add); val_loss, which did turn, when that one never stalls
    stop, monitor = next(((stop, name) for name in dict.fromkeys([own, "val_loss"])
                          if (stop := _would_stop(records, name, patience))), (None, None))
    stopping = ""
    if stop and (config.get("patience") is None or config["patience"] > patience):
        next_steps.append(train_command(config, **({} if monitor == config.get("monitor") else {"monitor": monitor}),
                                        patience=patience))
        stopping = (f" Early stopping on {monitor} with patience {patience} would have stopped at epoch {stop[0]} "
                    f"of {last['epoch']}, keeping epoch {stop[1]}.")
    kept = ("the saved weights are the last epoch's (--keep-last)" if config.get("restore_best") is False
            else f"the saved weights are epoch {ctx.info.get('weights_epoch')}'s, the best by {config.get('monitor')}")
    return _finding(
        ctx, id="overfitting",
        # the last epoch's weights are the overfitted ones only with --keep-last; otherwise the best are kept
        severity=WRONG if config.get("restore_best") is False else BETTER,
        title=f"overfitting from epoch {best['epoch']}: validation loss rose while training loss fell",
        evidence=(f"validation loss {best['val_loss']:.4g} at epoch {best['epoch']} (its minimum), "
                  f"{last['val_loss']:.4g} at epoch {last['epoch']} ({rise:+.0%} on a {SMOOTH}-epoch average), "
                  f"while training loss fell {fell:.0%} to {last['train_loss']:.4g}. At the end, training accuracy "
                  f"{last['train_accuracy']:.1%} against validation {last['val_accuracy']:.1%}: a gap of "
                  f"{gap * 100:.1f} points; {kept}.{stopping}"),
        next=next_steps,
        data={"best_epoch": best["epoch"], "val_loss_min": best["val_loss"], "val_loss_end": last["val_loss"],
              "rise": rise, "train_loss_fall": fell, "train_accuracy": last["train_accuracy"],
              "val_accuracy": last["val_accuracy"], "accuracy_gap": gap, "patience": patience, "monitor": monitor,
              "would_stop_at": stop[0] if stop else None, "augment": policy, "dropout_model": dropout_model},
    )


@check("too-short")
def too_short(ctx) -> list:
    records = [r for r in ctx.epochs if _finite(r.get("train_loss"))]
    if len(records) < SMOOTH or ctx.info.get("stopped") or _diverged(ctx):
        return []
    tail = records[-TREND_EPOCHS:]
    slopes = {"train_loss": _relative_slope([r["train_loss"] for r in tail])}
    if all(_finite(r.get("val_loss")) for r in tail):
        slopes["val_loss"] = _relative_slope([r["val_loss"] for r in tail])
    if any(slope > -STILL_FALLING for slope in slopes.values()):
        return []
    config = ctx.config
    longer = _longer(config)
    (unit, count), = longer.items()
    falling = " and ".join(f"{name.replace('_', ' ')} by {-slope:.0%}" for name, slope in slopes.items())
    return _finding(
        ctx, id="too-short", severity=BETTER,
        title="the run stopped while still learning: the losses were still falling at the end",
        evidence=(f"over the last {len(tail)} epochs, {falling} of their level per epoch; the run ended after "
                  f"{records[-1]['epoch']} epochs ({records[-1]['step']:,} steps) with training accuracy "
                  f"{records[-1]['train_accuracy']:.1%}{_validation(records[-1])}."),
        next=[train_command(config, **longer)],
        data={"slopes": slopes, "epochs": records[-1]["epoch"], "steps": records[-1]["step"], unit: count},
    )


@check("underfitting")
def underfitting(ctx) -> list:
    if not ctx.epochs or _diverged(ctx):
        return []
    last = ctx.epochs[-1]
    accuracy = max(last.get("train_accuracy", 0.0), last.get("val_accuracy", 0.0))
    if accuracy >= UNDERFIT_ACCURACY:
        return []
    config, classes = ctx.config, len(ctx.run.classes)
    lr, default = learning_rate(config), default_lr(config.get("optimizer", "adam"))
    if lr < default / 10:     # a rate this low is the cause: a longer run or a larger model at it would crawl too
        next_steps = [train_command(config, lr=default)]
    else:
        larger = _larger_model(ctx)
        next_steps = ([] if ctx.info.get("stopped") else [train_command(config, **_longer(config))]) + (
            [train_command(config, model=larger)] if larger else [])
    next_steps.append(lr_find_command(config))
    nothing = accuracy < CHANCE_FACTOR / classes
    return _finding(
        ctx, id="underfitting", severity=WRONG if nothing else BETTER,
        title=("the model learned next to nothing" if nothing else "the model fits its own training images poorly")
              + f": {last['train_accuracy']:.0%} training accuracy",
        evidence=(f"after epoch {last['epoch']} (step {last['step']:,}): training accuracy {last['train_accuracy']:.1%}"
                  f"{_validation(last)} (chance: {1 / classes:.1%}); {config.get('model')} "
                  f"has {_own_size(ctx):,} parameters, trained at lr {lr:g} ({config.get('optimizer')}'s default "
                  f"{default:g})."),
        next=next_steps,
        data={"train_accuracy": last["train_accuracy"], "val_accuracy": last.get("val_accuracy"),
              "threshold": UNDERFIT_ACCURACY, "chance": 1 / classes, "lr": lr, "default_lr": default,
              "parameters": _own_size(ctx)},
    )


@check("diverged")
def diverged(ctx) -> list:
    stopped, config = ctx.info.get("stopped") or {}, ctx.config
    if stopped.get("reason") == "diverged":
        step, epoch, lr, detail = stopped["step"], stopped["epoch"], stopped["lr"], stopped.get("detail", "")
    else:
        bad = _first_nonfinite(ctx)
        if bad is None:
            return []
        step, epoch, lr, detail = bad["step"], bad["epoch"], bad["lr"], f"the loss became {bad['loss']}"
    suggested = stopped.get("suggested_lr") or float(f"{lr / 10:.1g}")
    per_epoch = sum(1 for b in ctx.batches if b.get("epoch") == epoch) or 1
    warmup = min(max(per_epoch, WARMUP_RANGE[0]), WARMUP_RANGE[1])
    return _finding(
        ctx, id="diverged", severity=WRONG,
        title=f"training diverged at step {step:,}: the learning rate {lr:.3g} is too high",
        evidence=(f"at step {step:,} (epoch {epoch}), learning rate {lr:.3g}: {detail}. "
                  + ("The divergence guard stopped the run; the best weights before it were kept."
                     if stopped.get("reason") == "diverged" else "The guard was off (--guard 0): the run went on.")),
        next=[train_command(config, lr=suggested), train_command(config, warmup=warmup),
              train_command(config, clip_grad=1.0), lr_find_command(config)],
        data={"step": step, "epoch": epoch, "lr": lr, "suggested_lr": suggested, "warmup": warmup, "detail": detail},
    )


@check("loss-spikes")
def loss_spikes(ctx) -> list:
    batches = [b for b in ctx.batches if _finite(b.get("loss"))]
    if len(batches) <= SPIKE_WINDOW or _diverged(ctx):
        return []
    losses = np.array([b["loss"] for b in batches])
    # medians[i] is the median of the SPIKE_WINDOW losses before step i + SPIKE_WINDOW
    medians = np.median(np.lib.stride_tricks.sliding_window_view(losses[:-1], SPIKE_WINDOW), axis=1)
    later = losses[SPIKE_WINDOW:]
    guessing = math.log(max(len(ctx.run.classes), 2))
    spiked = np.flatnonzero((later > SPIKE_FACTOR * medians) & (later - medians > SPIKE_SHARE_OF_GUESSING * guessing))
    if len(spiked) < MIN_SPIKES:
        return []
    worst = int(spiked[np.argmax(later[spiked] / medians[spiked])])
    steps = [batches[i + SPIKE_WINDOW]["step"] for i in spiked]
    batch, config, median = batches[worst + SPIKE_WINDOW], ctx.config, float(medians[worst])
    lr = batch["lr"]
    # a third of the rate: below the edge the spikes show; a schedule that decays it, for a constant one
    next_steps = [train_command(config, lr=float(f"{lr / 3:.1g}")), train_command(config, clip_grad=1.0)] + (
        [train_command(config, lr_schedule="cosine")] if config.get("lr_schedule") == "constant" else [])
    evidence = (f"{len(steps)} of {len(later):,} steps had a loss over {SPIKE_FACTOR:g}x the median of the "
                f"{SPIKE_WINDOW} steps before them; the worst, step {batch['step']:,}, {batch['loss']:.3g} against a "
                f"median of {median:.3g}, at learning rate {lr:.3g}.")
    return _finding(ctx, id="loss-spikes", severity=BETTER, evidence=evidence, next=next_steps,
                    title=f"the training loss spiked {len(steps)} times: the learning rate is near its limit",
                    data={"spikes": len(steps), "steps": len(later), "spike_steps": steps, "worst_step": batch["step"],
                          "worst_loss": batch["loss"], "median": median, "lr": lr})


@check("slow-start")
def slow_start(ctx) -> list:
    config = ctx.config
    # all-zero weights stay still whatever the rate: the symmetry check (weights.py) says why
    if _diverged(ctx) or config.get("init") == "zeros":
        return []
    batches = [b for b in ctx.batches if b["step"] > (config.get("warmup") or 0) and _finite(b.get("loss"))]
    if len(batches) < SLOW_START_STEPS:
        return []
    first = [b for b in batches if b["epoch"] == batches[0]["epoch"]]
    window = first if len(first) >= SLOW_START_STEPS else batches[:2 * SLOW_START_STEPS]
    fifth = max(2, len(window) // 5)
    head = statistics.fmean(b["loss"] for b in window[:fifth])
    tail = statistics.fmean(b["loss"] for b in window[-fifth:])
    drop = 1 - tail / head
    if drop >= SLOW_DROP:
        return []
    lr, default = learning_rate(config), default_lr(config.get("optimizer", "adam"))
    suggested = max(float(f"{lr * 10:.1g}"), default)
    return _finding(
        ctx, id="slow-start", severity=BETTER,
        title=f"the loss barely moved in the first {len(window)} steps: the learning rate {lr:g} looks too low",
        evidence=(f"mean loss {head:.4g} over steps {window[0]['step']}-{window[fifth - 1]['step']}, {tail:.4g} over "
                  f"steps {window[-fifth]['step']}-{window[-1]['step']} (down {drop:.1%}), at learning rate {lr:g} "
                  f"({config.get('optimizer')}'s default is {default:g})."),
        next=[train_command(config, lr=suggested), lr_find_command(config)],
        data={"loss_first": head, "loss_last": tail, "drop": drop, "steps": len(window), "lr": lr,
              "suggested_lr": suggested},
    )


@check("plateau")
def plateau(ctx) -> list:
    records = [r for r in _validated(ctx) if _finite(r.get("val_accuracy"))]
    if len(records) < PLATEAU_MIN_EPOCHS or _diverged(ctx):
        return []
    width = max(5, math.ceil(PLATEAU_SHARE * len(records)))
    before, tail = records[:-width], records[-width:]
    rates = {r["lr"] for r in tail}
    one_image = 1 / max((ctx.info.get("data") or {}).get("validation") or 1, 1)
    train_fall = 1 - tail[-1]["train_loss"] / tail[0]["train_loss"]
    if (len(rates) > 1 or max(r["val_accuracy"] for r in tail) > max(r["val_accuracy"] for r in before) + one_image
            or train_fall >= PLATEAU_TRAIN_FALL or tail[-1]["train_accuracy"] >= CONVERGED_ACCURACY):
        return []
    config, lr = ctx.config, tail[-1]["lr"]
    best = max(records, key=lambda r: r["val_accuracy"])
    spread = max(r["val_accuracy"] for r in tail) - min(r["val_accuracy"] for r in tail)
    return _finding(
        ctx, id="plateau", severity=BETTER if config.get("lr_schedule") == "constant" else NOTE,
        title=f"a plateau: no progress in the last {width} epochs at a constant learning rate {lr:.3g}",
        evidence=(f"validation accuracy last improved at epoch {best['epoch']} ({best['val_accuracy']:.1%}); over "
                  f"epochs {tail[0]['epoch']}-{tail[-1]['epoch']} it stayed within {spread:.1%} and the training loss "
                  f"fell {train_fall:.1%}, all at learning rate {lr:.3g}. A lower rate lets the weights settle "
                  f"into the minimum they are circling."),
        next=[train_command(config, lr_schedule=schedule) for schedule in ("cosine", "plateau")
              if schedule != config.get("lr_schedule")] + [lr_find_command(config)],
        data={"epochs": width, "lr": lr, "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
              "train_loss_fall": train_fall},
    )
