"""Learning-rate and dropout schedules, stepped once per batch.

    --lr-schedule constant                      the base rate throughout
    --lr-schedule cosine                        half a cosine from the base rate to 0 over the run
    --lr-schedule step                          x0.1 every third of the run ("step:every=1000,gamma=0.5")
    --lr-schedule onecycle                      Smith's one-cycle, as torch's OneCycleLR ("onecycle:pct=0.3")
    --lr-schedule triangle                      airbench's: a straight rise from 0.2x the base rate to it over
                                                the first 23% of the run, a straight fall to 0.07x
                                                ("triangle:pct=0.23,start=0.2,end=0.07")
    --lr-schedule plateau                       x0.1 after 10 epochs without a better val_loss
                                                ("plateau:factor=0.5,patience=2,monitor=val_accuracy")
    --lr-schedule "0:1e-3,1000:1e-4,3000:1e-5"  piecewise: the rate from each step on (values are rates;
                                                the first boundary must be 0; --lr is not used)
    --lr-schedule "epoch:0:1e-3,5:1e-4"         piecewise with boundaries in epochs
    --warmup 500                                linear warm-up over the first 500 steps, in front of any

    --dropout-schedule "0:0.0,3000:0.7"         the drop rate of every nn.Dropout from each step on

Each learning-rate schedule is a pure function of the step (`lr_at(step)`), so the curve is easy to
test against its formula; only `plateau` has state (its reductions so far), saved in last.ckpt.
The warm-up multiplies the schedule by (step + 1) / warmup: the first step gets a small, non-zero
rate and step `warmup - 1` the full one. A piecewise schedule's boundaries stay where they are.
"""

import bisect
import math

import torch

from ..errors import ConfigError, UnknownNameError
from .config import MAX_LR, MONITORS
from .stopping import improved


# ----------------------------------------------------------------------------- parsing

def parse_piecewise(text: str, steps_per_epoch: int = 1, what: str = "--lr-schedule"):
    """"0:1e-3,1000:1e-4" -> ([0, 1000], [1e-3, 1e-4]); an "epoch:" prefix counts in epochs."""
    scale = 1
    body = text.strip()
    if body.startswith("epoch:"):
        scale, body = steps_per_epoch, body[len("epoch:"):]
    boundaries, values = [], []
    for part in body.split(","):
        try:
            boundary, value = part.split(":")
            boundaries.append(int(boundary) * scale)
            values.append(float(value))
        except ValueError:
            raise ConfigError(f"{what} {text!r}: expected STEP:VALUE pairs like \"0:1e-3,1000:1e-4\" "
                              f"(or \"epoch:0:1e-3,5:1e-4\"); could not read {part.strip()!r}") from None
    if boundaries[0] != 0 or boundaries != sorted(set(boundaries)):
        raise ConfigError(f"{what} {text!r}: the steps must start at 0 and increase")
    return boundaries, values


def is_piecewise(text: str) -> bool:
    text = text.strip()
    return text.startswith("epoch:") or text[:1].isdigit()


def _options(text: str, allowed: dict, name: str) -> dict:
    """"step:every=1000,gamma=0.5" -> {"every": 1000.0, "gamma": 0.5} over `allowed`'s defaults."""
    options = dict(allowed)
    _, _, body = text.partition(":")
    for part in filter(None, body.split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in allowed:
            raise ConfigError(f"--lr-schedule {name} takes {', '.join(allowed) or 'no options'}; got {key!r}")
        try:
            options[key] = value.strip() if isinstance(allowed[key], str) else float(value)
        except ValueError:
            raise ConfigError(f"--lr-schedule {name}: {key} must be a number, got {value!r}") from None
        if key in OPTION_RANGES:
            low, high, low_open, high_open, what = OPTION_RANGES[key]
            number = options[key]
            # `not (in range)`: NaN compares false with everything, so it is refused here too
            if not ((low < number if low_open else low <= number) and (number < high if high_open else number <= high)):
                bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
                raise ConfigError(f"--lr-schedule {name}: {key}={value.strip()} is out of range; expected {what} "
                                  f"in {bounds}")
    return options


# option -> (low, high, low open, high open, what it is): the values each schedule can work with. A
# step decay `every` below 1 step, a one-cycle rise taking the whole run or a zero divisor would
# divide by zero when the rate is computed; a factor above 1 would grow the rate instead.
OPTION_RANGES = {
    "min": (0.0, 1.0, False, False, "a fraction of the base rate"),
    "every": (0.0, 1e9, False, False, "steps between decays (0: a third of the run)"),
    "every_epochs": (0.0, 1e6, False, False, "epochs between decays (0: use every)"),
    "gamma": (0.0, 1.0, True, False, "a factor"),
    "pct": (0.0, 1.0, True, True, "the fraction of the run spent rising"),
    "div": (1.0, 1e9, False, False, "base rate / starting rate"),
    "final_div": (1.0, 1e12, False, False, "starting rate / final rate"),
    "factor": (0.0, 1.0, True, True, "a factor"),
    "start": (0.0, 1.0, False, False, "a fraction of the base rate"),
    "end": (0.0, 1.0, False, False, "a fraction of the base rate"),
    "patience": (0.0, 1e6, False, False, "epochs"),
    "min_delta": (0.0, 1e6, False, False, "a change of the monitored value"),
    "min_lr": (0.0, MAX_LR, False, False, "a learning rate"),
}


# ----------------------------------------------------------------------------- the schedules
# Each builder: (base_lr, total_steps, steps_per_epoch, options) -> rate(step). Options and defaults:

def _constant(base, total, per_epoch, options):
    return lambda step: base


def _cosine(base, total, per_epoch, options):
    low = base * options["min"]   # a fraction of the base rate to end on (0: SGDR's eta_min = 0)
    return lambda step: low + (base - low) * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def _step(base, total, per_epoch, options):
    # every: steps between decays (default: a third of the run, so the run ends at base * gamma^2);
    # at least 1, as a fraction of a step (every=0.5, or every_epochs on tiny epochs) would round to 0
    every = max(int(options["every"] or options["every_epochs"] * per_epoch or total // 3), 1)
    return lambda step: base * options["gamma"] ** (step // every)


def _onecycle(base, total, per_epoch, options):
    """torch.optim.lr_scheduler.OneCycleLR (two phases, cosine annealing) with max_lr = base."""
    initial, peak = base / options["div"], base
    final = initial / options["final_div"]
    rise_end = options["pct"] * total - 1

    def rate(step):
        step = min(step, total)
        if step <= rise_end:
            start_step, end_step, start, end = 0.0, rise_end, initial, peak
        else:
            start_step, end_step, start, end = rise_end, total - 1, peak, final
        # a phase of zero length (pct * total == 1: the rise ends at step 0) is already at its end
        pct = (step - start_step) / (end_step - start_step) if end_step > start_step else 1.0
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return rate


def _triangle(base, total, per_epoch, options):
    """Straight lines from base * start to base at step pct * total, then towards base * end at the run's end
    (step total; as airbench's np.interp(step, [0, pct * total, total], [start, 1, end]))."""
    peak = options["pct"] * total
    start, end = base * options["start"], base * options["end"]

    def rate(step):
        step = min(step, total)
        if step < peak:
            return start + (base - start) * step / peak
        return base + (end - base) * (step - peak) / max(total - peak, 1)
    return rate


def _plateau(base, total, per_epoch, options):
    return lambda step: base   # the reductions are state: see Schedule.epoch_end


# name -> (builder, options and their defaults)
SCHEDULES = {
    "constant": (_constant, {}),
    "cosine": (_cosine, {"min": 0.0}),
    "step": (_step, {"every": 0.0, "every_epochs": 0.0, "gamma": 0.1}),
    "onecycle": (_onecycle, {"pct": 0.3, "div": 25.0, "final_div": 1e4}),
    "triangle": (_triangle, {"pct": 0.23, "start": 0.2, "end": 0.07}),   # airbench94's
    # Keras ReduceLROnPlateau's defaults; patience counts epochs (validation happens once an epoch)
    "plateau": (_plateau, {"factor": 0.1, "patience": 10.0, "min_delta": 1e-4, "min_lr": 0.0,
                           "monitor": "val_loss"}),
}


class Schedule:
    """Sets the optimizer's learning rate before every step; `lr_at(step)` is the whole curve."""

    def __init__(self, optimizer, rate, warmup: int = 0, plateau: dict | None = None):
        self.optimizer = optimizer
        self.rate = rate
        self.warmup = warmup
        self.plateau = plateau        # options of a plateau schedule, else None
        self.steps = 0                # optimizer steps taken so far
        self.scale = 1.0              # plateau: product of the reductions so far
        self.best = None              # plateau: best monitored value seen
        self.bad_epochs = 0           # plateau: epochs since it improved
        self._apply()

    def lr_at(self, step: int) -> float:
        lr = self.rate(step) * self.scale
        if step < self.warmup:
            lr *= (step + 1) / self.warmup
        if self.plateau:
            lr = max(lr, self.plateau["min_lr"])
        return lr

    def _apply(self):
        for group in self.optimizer.param_groups:   # "lr_scale": a pretrained backbone's smaller share
            group["lr"] = self.lr_at(self.steps) * group.get("lr_scale", 1.0)

    def step(self):
        self.steps += 1
        self._apply()

    def epoch_end(self, record: dict):
        """plateau: reduce the rate after `patience` epochs without improvement (Keras's rule)."""
        if not self.plateau:
            return
        name = self.plateau["monitor"]
        if name not in record:       # no validation split: watch the training metric instead
            name = name.replace("val_", "train_")
        value = record[name]
        if improved(name, value, self.best, self.plateau["min_delta"]):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.plateau["patience"]:
            self.scale *= self.plateau["factor"]
            self.bad_epochs = 0
            self._apply()

    def state_dict(self):
        return {"steps": self.steps, "scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        self.steps, self.scale, self.best, self.bad_epochs = (state["steps"], state["scale"], state["best"],
                                                              state["bad_epochs"])
        self._apply()


def make_schedule(spec: str, optimizer, total_steps: int, steps_per_epoch: int = 1, warmup: int = 0,
                  base_lr: float | None = None) -> Schedule:
    """A Schedule from its text (see the module docstring); `base_lr` defaults to the optimizer's lr."""
    base = optimizer.param_groups[0]["lr"] if base_lr is None else base_lr
    total = max(total_steps, 1)
    plateau = None
    if is_piecewise(spec):
        boundaries, values = piecewise_rates(spec, steps_per_epoch)

        def rate(step):
            return values[bisect.bisect_right(boundaries, step) - 1]
    else:
        name = spec.split(":", 1)[0].strip()
        if name not in SCHEDULES:
            raise UnknownNameError(f"unknown learning-rate schedule {name!r}; expected one of "
                                   f"{', '.join(SCHEDULES)}, or a piecewise \"0:1e-3,1000:1e-4\"")
        builder, defaults = SCHEDULES[name]
        options = _options(spec, defaults, name)
        if name == "plateau":
            if options["monitor"] not in MONITORS:
                raise ConfigError(f"--lr-schedule plateau: monitor must be one of {', '.join(MONITORS)}")
            plateau = options
        rate = builder(base, total, steps_per_epoch, options)
    return Schedule(optimizer, rate, warmup, plateau)


def make_staged_schedule(spec: str, optimizer, first_steps: int, total_steps: int, steps_per_epoch: int = 1,
                         warmup: int = 0) -> Schedule:
    """One Schedule that runs `spec` over steps [0, first_steps) and again, from its start, over the
    rest (--fine-tune's two stages each get a whole curve); warm-up only at the very start."""
    base = optimizer.param_groups[0]["lr"]   # read once: building a Schedule sets the groups' rates
    first = make_schedule(spec, optimizer, first_steps, steps_per_epoch, warmup, base_lr=base)
    second = make_schedule(spec, optimizer, total_steps - first_steps, steps_per_epoch, base_lr=base)
    one, two = first.rate, second.rate
    first.rate = lambda step: one(step) if step < first_steps else two(step - first_steps)
    first._apply()
    return first


def piecewise_rates(spec: str, steps_per_epoch: int = 1):
    """A piecewise learning-rate schedule's (boundaries, rates), every rate checked to be usable."""
    boundaries, values = parse_piecewise(spec, steps_per_epoch)
    if not all(0 < v <= MAX_LR for v in values):   # written so that NaN fails it too
        raise ConfigError(f"--lr-schedule {spec!r}: every learning rate must be positive and at most {MAX_LR:g}")
    return boundaries, values


def piecewise_base_lr(spec: str):
    """The first rate of a piecewise schedule (what the optimizer starts with), else None."""
    return piecewise_rates(spec)[1][0] if is_piecewise(spec) else None


class DropoutSchedule:
    """Piecewise drop rate by step: `apply(model, step)` sets p of every nn.Dropout in the model."""

    def __init__(self, spec: str, steps_per_epoch: int = 1):
        self.boundaries, self.rates = parse_piecewise(spec, steps_per_epoch, "--dropout-schedule")
        if not all(0.0 <= r < 1.0 for r in self.rates):
            raise ConfigError(f"--dropout-schedule {spec!r}: drop rates must be in [0, 1)")

    def rate_at(self, step: int) -> float:
        return self.rates[bisect.bisect_right(self.boundaries, step) - 1]

    def apply(self, model: torch.nn.Module, step: int):
        rate = self.rate_at(step)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = rate
