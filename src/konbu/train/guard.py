"""The divergence guard: stop a run whose loss has blown up, before it wastes hours.

    guard = DivergenceGuard(factor=10, num_classes=10)
    reason = guard.check(loss.item())    # None, or why training should stop

A hiragana learner watched accuracy collapse to 2% (chance for 71 classes) around step 15,000 of a
20,000-step run. The guard fires when
  - the loss is NaN or infinite, or
  - the mean of the last 5 losses is more than `factor` times its reference AND above the loss of
    guessing uniformly (ln K): worse than knowing nothing. The reference is the median of the last
    100 losses, capped by the first loss of the run (or ln K if larger), so a run that explodes in
    its first few steps is caught before its median has grown with it.
The "worse than guessing" half keeps one hard batch late in a good run (loss 0.6 against a median
of 0.05) from stopping it. The loop checks before the optimizer step, so the bad step is never taken.

On a GPU, reading the loss before every step (`loss.item()`) would make the host wait for the GPU
each step. DeviceGuard applies the same rule on the device instead, to the same decisions, and hands
the optimizer a flag that skips the step there (optimizer `skip`); the loop learns the verdict at a
host sync every few steps (epoch.SYNC_EVERY), at checkpoints and at the epoch's end, and every step
after the firing one was skipped, so it is as if the run had stopped there. make_guard picks it
where the device runs ahead of the host (device.runs_ahead) and the optimizer can skip (SGD, Adam,
AdamW).
"""

import math
import statistics
from collections import deque
from typing import NamedTuple

import torch

from ..device import runs_ahead

WINDOW = 100     # steps of history the median is taken over
SHORT = 5        # steps averaged for the current level (one spiky batch is not a divergence)


def _reason(loss, level, reference, factor, chance, short) -> str:
    if not math.isfinite(loss):
        return f"the loss became {loss}"
    return (f"the loss rose to {level:.4g} (mean of the last {short} steps), over {factor:g}x "
            f"its recent median {reference:.4g} and worse than guessing (ln {round(math.exp(chance))} "
            f"= {chance:.3g})")


def make_guard(factor: float, num_classes: int, device: torch.device, optimizer):
    """The guard for a run: DeviceGuard on a device that runs ahead of the host (a GPU) when the
    optimizer can skip a step there, else DivergenceGuard; None when `factor` is 0 (off)."""
    if not factor:
        return None
    if runs_ahead(device) and optimizer.can_skip:
        return DeviceGuard(factor, num_classes, device)
    return DivergenceGuard(factor, num_classes)


class DivergenceGuard:
    on_device = False

    def __init__(self, factor: float, num_classes: int):
        self.factor = factor
        self.chance = math.log(max(num_classes, 2))
        self.first = None
        self.recent = deque(maxlen=WINDOW)
        self.short = deque(maxlen=SHORT)

    def check(self, loss: float) -> str | None:
        if not math.isfinite(loss):
            return _reason(loss, None, None, self.factor, self.chance, 0)
        if self.first is None:
            self.first = loss
        history = list(self.recent)
        self.recent.append(loss)
        self.short.append(loss)
        if not history:
            return None
        reference = min(statistics.median(history), max(self.first, self.chance))
        level = sum(self.short) / len(self.short)
        if level > self.factor * reference and level > self.chance:
            return _reason(loss, level, reference, self.factor, self.chance, len(self.short))
        return None

    def state_dict(self):
        return {"first": self.first, "recent": list(self.recent), "short": list(self.short)}

    def load_state_dict(self, state):
        self.first = state["first"]
        self.recent = deque(state["recent"], maxlen=WINDOW)
        self.short = deque(state["short"], maxlen=SHORT)


class Fired(NamedTuple):
    step: int       # the step whose loss fired the guard: it and every later step were skipped
    reason: str


class DeviceGuard:
    """DivergenceGuard's rule kept on the device: no host sync per step.

        skip = guard.watch(loss, step)     # 0-d float32 on the device: 1.0 from the firing step on
        optimizer.step(skip=skip)
        fired = guard.verdict()            # one host sync: None, or Fired(step, reason)

    The losses are float64 on the device, as Python floats are on the host, so the median and the
    comparisons are DivergenceGuard's (the short mean adds in ring order, which may round the last
    bit otherwise). The host counts the losses it has handed over, so which ring slots hold losses,
    and where the median's middle is, needs no sync; nothing here copies from the host either (a
    copy from pageable host memory would wait for the GPU as a sync does)."""

    on_device = True

    def __init__(self, factor: float, num_classes: int, device):
        self.factor = factor
        self.chance = math.log(max(num_classes, 2))
        self.count = 0                     # losses watched (host); ring slot of the next: count % size
        self.recent = torch.zeros(WINDOW, dtype=torch.float64, device=device)
        self.short = torch.zeros(SHORT, dtype=torch.float64, device=device)
        self.first = torch.zeros((), dtype=torch.float64, device=device)
        self.fired = torch.zeros((), dtype=torch.float32, device=device)     # latched: the optimizer's skip
        self.at = torch.zeros((), dtype=torch.int64, device=device)          # the step it fired at
        self.detail = torch.zeros(4, dtype=torch.float64, device=device)     # loss, level, reference, n then
        self.known = None                  # Fired, once a verdict has read it

    def watch(self, loss: torch.Tensor, step: int) -> torch.Tensor:
        """Take step `step`'s loss (0-d, on the device); the optimizer's skip flag for this step."""
        loss = loss.detach().reshape(()).double()
        history = min(self.count, WINDOW)   # the losses before this one: the ring's first `history` slots
        bad = ~torch.isfinite(loss)
        if history:
            ordered = self.recent[:history].sort().values
            half = history // 2
            median = ordered[half] if history % 2 else (ordered[half - 1] + ordered[half]) / 2
            reference = torch.minimum(median, self.first.clamp(min=self.chance))
        else:
            self.first.copy_(loss)
        self.recent[self.count % WINDOW] = loss
        self.short[self.count % SHORT] = loss
        self.count += 1
        short = min(self.count, SHORT)
        if history:
            level = self.short[:short].sum() / short
            bad |= (level > self.factor * reference) & (level > self.chance)
        else:
            level = reference = loss
        newly = bad & (self.fired == 0)
        self.at.copy_(torch.where(newly, step, self.at))
        detail = torch.stack([loss, level, reference, loss.new_full((), short)])
        self.detail.copy_(torch.where(newly, detail, self.detail))
        self.fired.copy_(torch.maximum(self.fired, bad.float()))
        return self.fired

    def verdict(self) -> Fired | None:
        """Whether the rule has fired (one host sync until it has; then the answer it read)."""
        if self.known is None:
            fired, at, *detail = torch.cat([self.fired.double().view(1), self.at.double().view(1),
                                            self.detail]).tolist()
            if fired:
                loss, level, reference, short = detail
                self.known = Fired(int(at), _reason(loss, level, reference, self.factor, self.chance, int(short)))
        return self.known

    def state_dict(self):
        """DivergenceGuard's layout (oldest loss first), so a checkpoint resumes under either guard."""
        def oldest_first(ring, size):
            values = ring.tolist()[:min(self.count, size)]
            cut = self.count % size if self.count >= size else 0
            return values[cut:] + values[:cut]
        first = self.first.item() if self.count else None
        return {"first": first, "recent": oldest_first(self.recent, WINDOW), "short": oldest_first(self.short, SHORT)}

    def load_state_dict(self, state):
        """Continue from a state_dict of either guard: its losses go in the slots they would hold."""
        recent, short = state["recent"], state["short"]
        self.count = len(recent)   # its losses so far, as far as the ring positions need
        for ring, values, size in ((self.recent, recent, WINDOW), (self.short, short, SHORT)):
            ring.zero_()
            for age, value in enumerate(reversed(values)):        # newest first: slot count - 1, count - 2, ...
                ring[(self.count - 1 - age) % size] = value
        self.first.fill_(state["first"] if state["first"] is not None else 0.0)
        self.fired.zero_()
        self.known = None
