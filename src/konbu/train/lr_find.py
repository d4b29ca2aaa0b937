"""`konbu lr-find`: sweep the learning rate exponentially over a few hundred steps and plot the loss.

    konbu lr-find --model deep-mnist --optimizer adam --out lr_find.png
    result = find_lr(model=model, images=x, labels=y, mean=m, std=s)   # on your own model
    result.suggestion                  # the rate where the smoothed loss falls fastest

The rate grows from `start` to `end` by a constant factor per step (Smith 2015, fastai's lr_find);
the sweep stops once a bias-corrected exponential average of the loss (beta 0.9) is four times its
minimum. For the plot and the suggestion the losses are smoothed with a *centred* moving average,
which does not lag behind the rate the way a running average does (over a 100-step sweep a beta
0.98 average trails by tens of steps, pushing the suggestion several times too high). The
suggestion is the **steepest descent** of the smoothed loss against log(lr), looked for before
its minimum: a rate where training still makes fast progress.
`min/10` (a tenth of the rate at the minimum, the older rule of thumb) is reported beside it.
The model's weights, its train/eval mode and the global RNG are as they were afterwards.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..device import autocast
from ..errors import ConfigError
from ..inference import normalise
from ..inspect.smoothing import centred_average
from .optim import make_optimizer

SMOOTHING = 0.9      # the running average's beta (the stopping rule only)
STOP_FACTOR = 4.0    # stop when the smoothed loss exceeds this many times its minimum


@dataclass
class LrFindResult:
    lrs: list             # the rate of each step
    losses: list          # raw loss of each step
    smoothed: list        # centred moving average of the losses
    suggestion: float     # steepest descent of the smoothed loss (what konbu suggests)
    min_over_10: float    # a tenth of the rate at the smoothed loss's minimum

    def to_dict(self):
        return {"suggestion": self.suggestion, "min_over_10": self.min_over_10, "lrs": self.lrs,
                "losses": self.losses, "smoothed": self.smoothed}


def suggest(lrs, smoothed):
    """(steepest-descent rate, min/10 rate) from a sweep's rates and smoothed losses."""
    lrs, smoothed = np.asarray(lrs, dtype=float), np.asarray(smoothed, dtype=float)
    lowest = int(np.argmin(smoothed))
    min_over_10 = float(lrs[lowest] / 10)
    if lowest < 2:
        return min_over_10, min_over_10
    slopes = np.gradient(smoothed[:lowest + 1], np.log10(lrs[:lowest + 1]))
    return float(lrs[int(np.argmin(slopes))]), min_over_10


def find_lr(model, images, labels, mean, std, optimizer: str = "adam", batch_size: int = 64, start: float = 1e-7,
            end: float = 10.0, steps: int = 100, device=None, precision: str = "fp32", momentum=None,
            weight_decay=None) -> LrFindResult:
    """Sweep on uint8 `images` [N, C, H, W] (batches drawn at random); the model is restored afterwards."""
    if not 0 < start < end:
        raise ConfigError(f"lr-find needs 0 < start < end, got start {start:g}, end {end:g}")
    if steps < 5:
        raise ConfigError(f"lr-find needs at least 5 steps, got {steps}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    saved = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    was_training = model.training
    sweep = make_optimizer(optimizer, model.parameters(), start, momentum, False, weight_decay)
    factor = (end / start) ** (1 / (steps - 1))
    lrs, losses = [], []
    average, best = 0.0, math.inf
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            model.train()
            for step in range(steps):
                lr = start * factor ** step
                for group in sweep.param_groups:
                    group["lr"] = lr
                index = torch.randint(0, images.shape[0], (batch_size,))
                x = normalise(images[index].to(device), mean, std)
                with autocast(device, precision):
                    output = model(x)
                loss = F.cross_entropy(output.float(), labels[index].to(device))
                sweep.zero_grad(set_to_none=True)
                loss.backward()
                sweep.step()
                value = loss.item()
                if not math.isfinite(value):
                    break
                average = SMOOTHING * average + (1 - SMOOTHING) * value
                corrected = average / (1 - SMOOTHING ** (step + 1))
                lrs.append(lr)
                losses.append(value)
                best = min(best, corrected)
                if step > 0 and corrected > STOP_FACTOR * best:
                    break
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
    if len(lrs) < 3:
        raise ConfigError(f"lr-find: the loss blew up within {len(lrs) + 1} steps of {start:g}; pass a lower --start")
    smoothed = centred_average(losses, max(3, steps // 20) | 1).tolist()
    suggestion, min_over_10 = suggest(lrs, smoothed)
    return LrFindResult(lrs, losses, smoothed, suggestion, min_over_10)


def plot_lr_find(result: LrFindResult, path) -> Path:
    """Loss against learning rate (log axis), raw and smoothed, with the suggestion marked."""
    from ..inspect.canvas import new_figure, save_figure   # the shared Agg figure + atomic PNG writer

    figure = new_figure(8, 4.5)
    ax = figure.subplots()
    ax.plot(result.lrs, result.losses, color="#1f77b4", linewidth=0.8, alpha=0.35, label="loss (each step)")
    ax.plot(result.lrs, result.smoothed, color="#1f77b4", linewidth=2.0, label="loss (smoothed)")
    ax.axvline(result.suggestion, color="#d62728", linestyle="--",
               label=f"suggested: {result.suggestion:.2g} (steepest descent)")
    ax.axvline(result.min_over_10, color="0.5", linestyle=":", label=f"min/10: {result.min_over_10:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title("Learning-rate finder: loss as the rate grows each step")
    top = max(result.smoothed[0], min(result.smoothed)) * 1.5
    ax.set_ylim(bottom=0, top=max(top, min(result.losses) * 1.1))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(figure, path)


def lr_find(config=None, out=None, start: float = 1e-7, end: float = 10.0, steps: int = 100, **overrides):
    """The CLI's lr-find: a TrainConfig's model, data and optimizer; writes the plot to `out`."""
    from ..data import dataset_options, load_data
    from ..models import build_model
    from .config import TrainConfig
    from .parts import input_statistics, setup_machine

    config = TrainConfig.from_overrides(**{**(config.to_dict() if config else {}), **overrides})
    device, precision, _ = setup_machine(config)   # as fit() does: the same device, precision and seeds
    train, _ = load_data(config.dataset, **dataset_options(config.to_dict()))
    model = build_model(config.model, train.image_shape, train.num_classes, config.init).to(device)
    mean, std = input_statistics(config, train)     # what the model would be trained on: --normalize too
    result = find_lr(model, train.images, train.labels, mean, std, config.optimizer, config.batch_size,
                     start, end, steps, device, precision, config.momentum, config.weight_decay)
    if out is not None:
        plot_lr_find(result, out)
    return result
