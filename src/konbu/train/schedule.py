"""Learning-rate schedules by name, stepped once per batch.

Each is a multiplier of the base learning rate as a function of (step, total_steps), wrapped in
torch's LambdaLR so its state lives in the checkpoint. `cosine` is the default: on mnist-sample
it lifted chollet-mnist from 97.0-97.9% (constant lr, seeds 0-3) to 97.9-98.2% at the same cost.
"""

import math

import torch

from ..errors import UnknownNameError

SCHEDULES = {
    "constant": lambda step, total: 1.0,
    "cosine": lambda step, total: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)),
}


def make_schedule(name: str, optimizer, total_steps: int):
    if name not in SCHEDULES:
        raise UnknownNameError(f"unknown learning-rate schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    multiplier = SCHEDULES[name]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: multiplier(step, max(total_steps, 1)))
