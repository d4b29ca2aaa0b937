"""Lookahead on an average of the weights (airbench's): every few steps the model is pulled back to a
slow running average of itself, which the average has just been pulled towards.

    lookahead = Lookahead(model, base=0.95, last_step=489)
    ... optimizer.step(); lookahead.update(model, step)     # every EVERY-th step: average and pull back
    lookahead.settle(model)                                  # an epoch's end: the model is the average

The average's decay rises with the run as base**EVERY * (step / last_step)**3: near 0 early (the
model moves freely: at 30% of the run the pull is 2% every five steps), 0.77 at the end (0.95 a
step), so the last epochs are averaged strongly. Unlike --ema, which keeps the average beside the
model for validation, the model itself trains on from the average, and its momentum buffers are
left as they are (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back"). BatchNorm's
running statistics are averaged with the weights, as airbench's state-dict average does.
"""

import torch

EVERY = 5        # steps between pulls (airbench's every_n_steps)
POWER = 3.0      # the decay's rise over the run (airbench's decay_pow)


def _floats(model: torch.nn.Module) -> dict:
    """The model's parameters and floating-point buffers by name: what is averaged (not a step count)."""
    named = dict(model.named_parameters())
    named.update((name, buffer) for name, buffer in model.named_buffers() if buffer.is_floating_point())
    return named


class Lookahead:
    def __init__(self, model: torch.nn.Module, base: float, last_step: int):
        self.base, self.last_step = base, last_step
        self.average = {name: tensor.detach().clone() for name, tensor in _floats(model).items()}

    def decay(self, step: int) -> float:
        """How much of the average is kept at `step` (1-based)."""
        return self.base ** EVERY * (min(step, self.last_step) / self.last_step) ** POWER

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int):
        """After optimizer step `step`: on every EVERY-th, move the average towards the model by
        1 - decay(step), then set the model to it."""
        if step % EVERY:
            return
        averages, current = self._pair(model)
        torch._foreach_lerp_(averages, current, 1.0 - self.decay(step))
        torch._foreach_copy_(current, averages)

    @torch.no_grad()
    def settle(self, model: torch.nn.Module):
        """At an epoch's end: the model takes the average (up to EVERY - 1 steps old), which is what
        is validated, saved and trained on from (airbench's update with decay 1)."""
        _, current = self._pair(model)
        torch._foreach_copy_(current, list(self.average.values()))

    def _pair(self, model):
        current = _floats(model)
        return list(self.average.values()), [current[name].detach() for name in self.average]

    def state_dict(self) -> dict:
        return {f"lookahead.{name}": tensor for name, tensor in self.average.items()}

    @torch.no_grad()
    def load_state_dict(self, tensors: dict):
        for name, average in self.average.items():
            average.copy_(tensors[f"lookahead.{name}"])
