"""One training step and one epoch: the inner loop of `fit()` (konbu.train.loop).

    parts = Parts(model, optimizer, schedule, ...)            # built by loop.build_parts
    progress = EpochProgress.begin(epoch, epoch_order(n, None), step, device)
    stop = train_one_epoch(parts, images, labels, progress, emit, last_step)

Batches are slices of the device-resident uint8 training set in this epoch's order; each is
augmented on the device (as [0, 1] floats) and normalised there. An EpochProgress holds everything
a mid-epoch checkpoint needs (the order, the steps done, the running sums), so a resumed epoch
continues exactly. A Ctrl-C takes effect between steps (CtrlC), never inside an optimizer step.
"""

import math
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..device import autocast
from ..inference import logits, normalise
from .config import TrainConfig
from .ema import EMA
from .events import Event
from .guard import DivergenceGuard
from .schedule import DropoutSchedule


def normalise_unit(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """float [0, 1] images -> (x - mean) / std; konbu.inference.normalise for already-scaled input
    (augmentation works on [0, 1] floats). mean/std: float32 [1, C, 1, 1] on x's device."""
    return torch.addcmul(-mean / std, x, 1.0 / std)


# ----------------------------------------------------------------------------- one step, one epoch

@dataclass
class Parts:
    """Everything a training step uses, built once by fit()."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: object                      # schedule.Schedule
    config: TrainConfig
    device: torch.device
    precision: str
    channels_last: bool
    mean: torch.Tensor                    # [1, C, 1, 1] float32 on the device
    std: torch.Tensor
    num_classes: int
    dropout: DropoutSchedule | None = None
    ema: EMA | None = None
    guard: DivergenceGuard | None = None
    class_weights: torch.Tensor | None = None
    augment: object | None = None         # augment.Augment or None
    ctrl_c: "CtrlC | None" = None         # a Ctrl-C waits for the end of the step in progress


@dataclass
class EpochProgress:
    """Where training is inside an epoch: what a mid-epoch checkpoint saves and a resume restores."""

    epoch: int
    order: torch.Tensor                   # CPU int64 [N]: this epoch's sample order (a randperm)
    step: int                             # optimizer steps done in the whole run
    loss_sum: torch.Tensor                # 0-d, on the device: sum of per-image losses this epoch
    correct: torch.Tensor                 # 0-d, on the device
    batch: int = 0                        # batches done in this epoch
    seen: int = 0                         # images seen this epoch
    seconds: float = 0.0                  # training time spent in this epoch before a resume
    closed: bool = False                  # validated, logged, schedule and best-epoch updated
    records: list = field(default_factory=list)  # steps done before a resume, as dicts
    pending: list = field(default_factory=list)  # (step, loss, correct, size, lr), device tensors unsynced

    @classmethod
    def begin(cls, epoch, order, step, device):
        return cls(epoch, order, step, torch.zeros((), device=device),
                   torch.zeros((), device=device, dtype=torch.long))

    def batch_records(self) -> list:
        """The epoch's steps as metrics.jsonl records (one device sync for all pending steps)."""
        if self.pending:
            losses = torch.stack([p[1] for p in self.pending]).tolist()
            corrects = torch.stack([p[2] for p in self.pending]).tolist()
            self.records += [{"kind": "batch", "epoch": self.epoch, "step": step, "loss": round(loss, 6),
                              "accuracy": round(c / size, 6), "lr": lr}
                             for (step, _, _, size, lr), loss, c in zip(self.pending, losses, corrects)]
            self.pending = []
        return self.records


class CtrlC:
    """SIGINT handler for the training loop: the first Ctrl-C is remembered and acted on when the step
    in progress has finished (so last.ckpt is a clean step boundary and a resume is exact, not a step
    half-applied); a second Ctrl-C stops at once."""

    def __init__(self):
        self.pressed = False

    def __call__(self, signum, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True


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


def epoch_order(n: int, sample_weights: torch.Tensor | None) -> torch.Tensor:
    """This epoch's order, from the CPU generator (the same order on any device)."""
    if sample_weights is not None:   # balanced sampling: each class as often, drawn with replacement
        return torch.multinomial(sample_weights, n, replacement=True)
    return torch.randperm(n)


def forward(parts: Parts, x: torch.Tensor, y: torch.Tensor):
    """(loss, logits) of one uint8 batch: augment on [0, 1] floats, normalise, model, cross-entropy."""
    if parts.augment is not None:
        x = x.float().div_(255)                                    # (B, C, H, W) in [0, 1]
        x, target = parts.augment(x, y, parts.num_classes)         # target: labels or (B, K) soft labels
        x = normalise_unit(x, parts.mean, parts.std)
    else:
        x, target = normalise(x, parts.mean.flatten(), parts.std.flatten()), y
    if parts.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(parts.device, parts.precision):
        output = parts.model(x)
    loss = F.cross_entropy(output.float(), target, weight=parts.class_weights,
                           label_smoothing=parts.config.label_smoothing)
    return loss, output


def train_one_epoch(parts: Parts, images, labels, progress: EpochProgress, emit, last_step: int, checkpoint=None):
    """Continue epoch `progress.epoch` from batch `progress.batch` (0: its start), updating `progress`
    after every step. Returns None, or a dict saying why training must stop (divergence)."""
    model, optimizer, config = parts.model, parts.optimizer, parts.config
    model.train()
    order = progress.order.to(parts.device)
    images, labels = images[order], labels[order]        # one gather per epoch, then cheap slices
    batches = math.ceil(images.shape[0] / config.batch_size)
    for batch in range(progress.batch + 1, batches + 1):
        if progress.step >= last_step:
            break
        start = (batch - 1) * config.batch_size
        x, y = images[start:start + config.batch_size], labels[start:start + config.batch_size]
        if parts.dropout is not None:
            parts.dropout.apply(model, progress.step)
        loss, output = forward(parts, x, y)
        lr = optimizer.param_groups[0]["lr"]                       # the rate this step uses
        if parts.guard is not None:
            reason = parts.guard.check(loss.item())                # checked before the step: a bad step is never taken
            if reason:
                return {"reason": "diverged", "detail": reason, "step": progress.step + 1, "epoch": progress.epoch,
                        "lr": lr}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad, foreach=True)
        optimizer.step()
        parts.schedule.step()
        progress.step += 1
        if parts.ema is not None:
            parts.ema.update(model, progress.step)
        batch_loss, batch_correct = loss.detach(), (output.argmax(1) == y).sum()
        progress.loss_sum += batch_loss * y.shape[0]
        progress.correct += batch_correct
        progress.pending.append((progress.step, batch_loss, batch_correct, y.shape[0], lr))
        progress.batch, progress.seen = batch, progress.seen + y.shape[0]
        emit(Event("batch", dict(epoch=progress.epoch, step=progress.step, batch=batch, batches=batches,
                                 loss_sum=progress.loss_sum, correct=progress.correct, seen=progress.seen, lr=lr)))
        if checkpoint is not None and config.checkpoint_every and progress.step % config.checkpoint_every == 0:
            checkpoint()
        if parts.ctrl_c is not None and parts.ctrl_c.pressed:
            raise KeyboardInterrupt   # the step is complete: fit saves it, and a resume starts at the next
    return None


def validate(model, dataset, mean, std, device, precision, channels_last):
    """(loss, accuracy) of `model` on a held-out split."""
    output = logits(model, dataset.images, mean, std, device=device, precision=precision, channels_last=channels_last)
    return F.cross_entropy(output, dataset.labels).item(), (output.argmax(1) == dataset.labels).double().mean().item()
