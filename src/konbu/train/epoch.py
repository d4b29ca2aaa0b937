"""One training step and one epoch: the inner loop of `fit()` (konbu.train.loop).

    loss = BatchLoss(mean, std, num_classes, device)          # built once by parts.build_parts
    progress = EpochProgress.begin(1, epoch_order(n, None), step=0, device=device)
    stop = train_one_epoch(model, optimizer, schedule, loss, images, labels, progress,
                           StepSettings(batch_size=64, last_step=1000), emit)
    val_loss, val_accuracy = validate(model, val, loss)

Batches are slices of the device-resident uint8 training set in this epoch's order; each is
augmented on the device (as [0, 1] floats) and normalised there. An EpochProgress holds every
counter of training — the step, the epoch's batch, images and seconds, the run's totals, the
running sums — so a mid-epoch checkpoint saves it whole and a resumed epoch continues exactly.
A Ctrl-C takes effect between steps (CtrlC), never inside an optimizer step.
"""

import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..device import autocast, runs_ahead
from ..inference import logits, normalise
from .events import Event
from .world import World

SYNC_EVERY = 50   # where the device runs ahead of the host: steps between reads of the guard and a Ctrl-C


def normalise_unit(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """float [0, 1] images -> (x - mean) / std; konbu.inference.normalise for already-scaled input
    (augmentation works on [0, 1] floats). mean/std: float32 [1, C, 1, 1] on x's device."""
    return torch.addcmul(-mean / std, x, 1.0 / std)


# ----------------------------------------------------------------------------- the loss of a batch

@dataclass
class BatchLoss:
    """How a uint8 batch becomes a loss: augment on [0, 1] floats, normalise, model, cross-entropy.
    Also what validation normalises with, so both see the same input."""

    mean: torch.Tensor                    # [1, C, 1, 1] float32 on the device: the model's input statistics
    std: torch.Tensor
    num_classes: int
    device: torch.device
    precision: str = "fp32"               # "bf16": autocast in the forward pass
    channels_last: bool = False
    augment: object | None = None         # augment.Augment or None
    class_weights: torch.Tensor | None = None
    label_smoothing: float = 0.0

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor):
        """(loss, logits) of uint8 images x (B, C, H, W) with labels y (B,)."""
        if self.augment is not None:
            x = x.float().div_(255)                                   # (B, C, H, W) in [0, 1]
            x, target = self.augment(x, y, self.num_classes)          # target: labels or (B, K) soft labels
            x = normalise_unit(x, self.mean, self.std)
        else:
            x, target = normalise(x, self.mean.flatten(), self.std.flatten()), y
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            output = model(x)
        loss = F.cross_entropy(output.float(), target, weight=self.class_weights,
                               label_smoothing=self.label_smoothing)
        return loss, output


@dataclass(frozen=True)
class StepSettings:
    """How each step is taken beyond the model, optimizer and loss; fixed for a run."""

    batch_size: int
    last_step: int                        # the run's total steps: its last epoch may end part-way
    clip_grad: float | None = None        # clip the global gradient norm to this
    checkpoint_every: int | None = None   # call `checkpoint` every this many steps


# ----------------------------------------------------------------------------- where training is

@dataclass
class EpochProgress:
    """Where training is: the run's step and totals, and inside this epoch its order, batch, images,
    seconds and running sums. What a mid-epoch checkpoint saves and a resume restores; the one place
    training time and images are counted (the training pass only, so images/s is the model's speed)."""

    epoch: int
    order: torch.Tensor                   # CPU int64 [N]: this epoch's sample order (a randperm)
    step: int                             # optimizer steps done in the whole run
    loss_sum: torch.Tensor                # 0-d, on the device: sum of per-image losses this epoch
    correct: torch.Tensor                 # 0-d, on the device
    batch: int = 0                        # batches done in this epoch
    seen: int = 0                         # images trained on this epoch
    seconds: float = 0.0                  # training seconds of this epoch (across a resume)
    earlier_seconds: float = 0.0          # training seconds of the run's earlier epochs
    earlier_images: int = 0               # images of the run's earlier epochs
    records: list = field(default_factory=list)  # steps done before a resume, as dicts
    pending: list = field(default_factory=list)  # (step, loss, correct, size, lr), device tensors unsynced

    @classmethod
    def begin(cls, epoch, order, device, step=0, seconds=0.0, images=0):
        """A fresh epoch, after `step` steps, `seconds` and `images` of earlier training."""
        return cls(epoch, order, step, torch.zeros((), device=device),
                   torch.zeros((), device=device, dtype=torch.long), earlier_seconds=seconds, earlier_images=images)

    def following(self, order) -> "EpochProgress":
        """The next epoch's progress, carrying the step and the run's totals."""
        return EpochProgress.begin(self.epoch + 1, order, self.loss_sum.device, self.step, self.total_seconds,
                                   self.total_images)

    @property
    def total_seconds(self) -> float:
        return self.earlier_seconds + self.seconds

    @property
    def total_images(self) -> int:
        return self.earlier_images + self.seen

    def rewind(self, step: int) -> float:
        """Forget step `step` and the later steps of this epoch (a DeviceGuard skipped them: their
        losses and counts were never added to the sums); returns the learning rate `step` had."""
        lr = next(p[4] for p in self.pending if p[0] == step)
        dropped = [p for p in self.pending if p[0] >= step]
        self.pending = [p for p in self.pending if p[0] < step]
        self.step, self.batch = step - 1, self.batch - len(dropped)
        self.seen -= sum(p[3] for p in dropped)
        return lr

    def batch_records(self) -> list:
        """The epoch's steps so far as metrics.jsonl records (one device sync for the pending steps)."""
        if not self.pending:
            return list(self.records)
        losses = torch.stack([p[1] for p in self.pending]).tolist()
        corrects = torch.stack([p[2] for p in self.pending]).tolist()
        return self.records + [{"kind": "batch", "epoch": self.epoch, "step": step, "loss": round(loss, 6),
                                "accuracy": round(c / size, 6), "lr": lr}
                               for (step, _, _, size, lr), loss, c in zip(self.pending, losses, corrects)]

    def state(self, done: bool) -> tuple[dict, dict]:
        """(state.json fields, tensors) for last.ckpt. `done`: the epoch is closed (validated, logged,
        best weights kept), so a resume starts the next one; otherwise it continues this one."""
        state = {"epoch": self.epoch, "epoch_done": done, "step": self.step, "seconds": self.total_seconds,
                 "images": self.total_images}
        if done:
            return state, {}
        state.update(batch=self.batch, seen=self.seen, epoch_seconds=self.seconds, records=self.batch_records())
        return state, {"order": self.order, "loss_sum": self.loss_sum, "correct": self.correct}

    @classmethod
    def restore(cls, state: dict, tensors: dict, device, new_order) -> "EpochProgress":
        """The progress a checkpoint's `state` describes: the unfinished epoch itself, or (after a
        closed epoch) the next one, in the order `new_order()` draws. It is called only then: a
        draw would move the random generators an exact resume restores."""
        if state["epoch_done"]:
            return cls.begin(state["epoch"] + 1, new_order(), device, state["step"], state["seconds"], state["images"])
        return cls(state["epoch"], tensors["order"], state["step"], tensors["loss_sum"].to(device),
                   tensors["correct"].to(device), batch=state["batch"], seen=state["seen"],
                   seconds=state["epoch_seconds"], earlier_seconds=state["seconds"] - state["epoch_seconds"],
                   earlier_images=state["images"] - state["seen"], records=state["records"])


# ----------------------------------------------------------------------------- Ctrl-C between steps

class CtrlC:
    """SIGINT handler for the training loop: the first Ctrl-C is remembered and acted on when the step
    in progress has finished (so last.ckpt is a clean step boundary and a resume is exact, not a step
    half-applied); a second Ctrl-C stops at once, except while an epoch is closed (`held()`)."""

    def __init__(self):
        self.pressed = False
        self.holding = False

    def __call__(self, signum, frame):
        if self.pressed and not self.holding:
            raise KeyboardInterrupt
        self.pressed = True

    @contextmanager
    def held(self):
        """Close an epoch all or nothing: a Ctrl-C during the block (tens of milliseconds: logging,
        the best weights, last.ckpt) is remembered like a first one, and stops the run when the next
        step is complete. Raising at the block's end instead would stop between the epoch's close and
        the next one's start, a state last.ckpt does not describe."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False


@contextmanager
def ctrl_c_between_steps():
    """Install CtrlC while training (main thread only: elsewhere signals can't be caught, yield None)."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    handler = CtrlC()
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield handler
    finally:
        signal.signal(signal.SIGINT, previous)


def held(ctrl_c: CtrlC | None):
    return ctrl_c.held() if ctrl_c is not None else nullcontext()


# ----------------------------------------------------------------------------- one epoch

def epoch_order(n: int, sample_weights: torch.Tensor | None) -> torch.Tensor:
    """This epoch's order, from the CPU generator (the same order on any device)."""
    if sample_weights is not None:   # balanced sampling: each class as often, drawn with replacement
        return torch.multinomial(sample_weights, n, replacement=True)
    return torch.randperm(n)


def alternating_halves(n: int, seed: int) -> torch.Tensor:
    """The augmentation's altflip: which of `n` training images are mirrored in odd epochs (a seeded
    random half, drawn from its own generator so the run's random streams stay as they were); the
    others are mirrored in even epochs."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5


def mirror_half(images: torch.Tensor, halves: torch.Tensor, epoch: int) -> torch.Tensor:
    """uint8 images [N, C, H, W] (this epoch's gathered copy, changed in place) with the half that
    `halves` [N] (bool, in the same order) marks mirrored left-right in odd epochs, the other half in
    even ones: airbench's alternating flips. Every image is seen both ways in any two consecutive
    epochs, where random flips leave a quarter of them the same way round twice."""
    mirrored = halves if epoch % 2 == 1 else ~halves
    images[mirrored] = images[mirrored].flip(3)
    return images


def train_one_epoch(model, optimizer, schedule, loss_of, images, labels, progress: EpochProgress,
                    settings: StepSettings, emit, ema=None, guard=None, dropout=None, checkpoint=None, ctrl_c=None,
                    world: World = World(), trained=None, lookahead=None, flip_halves=None):
    """Continue epoch `progress.epoch` from batch `progress.batch` (0: its start), updating `progress`
    after every step. Returns None, or a dict saying why training must stop (divergence).

    `loss_of`: a BatchLoss; `ema`, `guard`, `dropout`, `lookahead`: the run's EMA, DivergenceGuard,
    DropoutSchedule and Lookahead, or None; `flip_halves`: bool per training image on its device,
    with the augmentation's altflip (see mirror_half); `checkpoint()` is called every
    `settings.checkpoint_every` steps.
    `world`: the processes training together (world.py); `trained`: what the step calls, `model` or
    DDP around it (default `model`). `progress` counts the global batch on every rank."""
    started = time.perf_counter()
    trained = model if trained is None else trained
    model.train()
    order = progress.order.to(images.device)
    images, labels = images[order], labels[order]        # one gather per epoch, then cheap slices
    if flip_halves is not None:
        images = mirror_half(images, flip_halves[order], progress.epoch)
    size = settings.batch_size
    batches = math.ceil(images.shape[0] / size)
    on_device = guard is not None and guard.on_device
    ahead = runs_ahead(images.device)                   # a GPU: the host queues steps without waiting

    def fired():
        """DeviceGuard: why to stop, if its verdict (one host sync) says it fired, with the steps it
        skipped forgotten; else None. Called at the same steps on every rank."""
        verdict = guard.verdict()
        if verdict is None:
            return None
        lr = progress.rewind(verdict.step)
        return {"reason": "diverged", "detail": verdict.reason, "step": verdict.step, "epoch": progress.epoch, "lr": lr}

    def records():   # a live metrics.jsonl never shows a step the guard skipped (progress is left as it is)
        kept = progress.batch_records()
        verdict = guard.verdict() if on_device else None
        return kept if verdict is None else [record for record in kept if record["step"] < verdict.step]

    for batch in range(progress.batch + 1, batches + 1):
        if progress.step >= settings.last_step:
            break
        step = progress.step + 1                                   # the step this batch takes
        due = checkpoint is not None and settings.checkpoint_every and step % settings.checkpoint_every == 0
        # where a device runs ahead of the host, what needs a host sync is read at these steps only
        reading = not ahead or due or batch == batches or step >= settings.last_step or step % SYNC_EVERY == 0
        batch_labels = labels[(batch - 1) * size:batch * size]
        x, y, share = world.shard(images[(batch - 1) * size:batch * size], batch_labels)
        if dropout is not None:
            dropout.apply(model, progress.step)
        loss, output = loss_of(trained, x, y)
        lr = optimizer.param_groups[0]["lr"]                       # the rate this step uses
        totals = world.step_totals(loss, output, y, share, ctrl_c is not None and ctrl_c.pressed, len(batch_labels))
        optimizer.zero_grad(set_to_none=True)
        (loss * share if share != 1.0 else loss).backward()
        batch_loss, batch_correct, seen, pressed = totals.get(read_pressed=reading)
        skip = None
        if on_device:                                              # decided on the device, read every few steps
            skip = guard.watch(batch_loss, step)
        elif guard is not None:
            reason = guard.check(batch_loss.item())                # checked before the step: a bad step is never taken
            if reason:
                return {"reason": "diverged", "detail": reason, "step": step, "epoch": progress.epoch,
                        "lr": lr}
        if settings.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad, foreach=True)
        optimizer.step(skip=skip)
        schedule.step()
        progress.step += 1
        if lookahead is not None:
            lookahead.update(model, progress.step)
        if ema is not None:
            ema.update(model, progress.step)
        loss_sum, correct = batch_loss * seen, batch_correct
        if skip is not None:                                       # a skipped step adds nothing (its loss may be NaN)
            loss_sum, correct = torch.where(skip > 0, 0.0, loss_sum), torch.where(skip > 0, 0, correct)
        progress.loss_sum += loss_sum
        progress.correct += correct
        progress.pending.append((progress.step, batch_loss, batch_correct, seen, lr))
        now = time.perf_counter()
        progress.batch, progress.seen = batch, progress.seen + seen
        progress.seconds, started = progress.seconds + now - started, now
        emit(Event("batch", dict(epoch=progress.epoch, step=progress.step, batch=batch, batches=batches,
                                 loss_sum=progress.loss_sum, correct=progress.correct, seen=progress.seen, lr=lr,
                                 records=records,   # a function: the device sync only if called
                                 seconds=progress.total_seconds, images=progress.total_images)))
        stopping = pressed or (not world.distributed and ctrl_c is not None and ctrl_c.pressed)
        if on_device and (reading or stopping):
            stop = fired()
            if stop is not None:      # never checkpointed: a diverged state is no place to resume from
                return stop
        if due:
            checkpoint()
        # a Ctrl-C on any rank stops every rank after the same step (world.step_totals carries it)
        if stopping:
            raise KeyboardInterrupt   # the step is complete: fit saves it, and a resume starts at the next
    return None


def validate(model, dataset, loss_of: BatchLoss):
    """(loss, accuracy) of `model` on a held-out split, normalised as `loss_of` normalises training."""
    output = logits(model, dataset.images, loss_of.mean, loss_of.std, device=loss_of.device,
                    precision=loss_of.precision, channels_last=loss_of.channels_last)
    return F.cross_entropy(output, dataset.labels).item(), (output.argmax(1) == dataset.labels).double().mean().item()


def epoch_record(progress: EpochProgress, batch_records: list, validation: tuple | None, seconds: float) -> dict:
    """The epoch's metrics.jsonl record: `batch_records` its steps (progress.batch_records()),
    `validation` (loss, accuracy) or None, `seconds` its wall time (training and validation)."""
    record = {"kind": "epoch", "epoch": progress.epoch, "step": progress.step,
              "train_loss": float(progress.loss_sum) / progress.seen,
              "train_accuracy": float(progress.correct) / progress.seen}
    if validation is not None:
        record["val_loss"], record["val_accuracy"] = validation
    record["lr"] = batch_records[-1]["lr"]
    record["seconds"] = round(seconds, 4)
    record["images_per_second"] = round(progress.seen / progress.seconds, 1)   # the training pass only
    return record
