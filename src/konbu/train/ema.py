"""An exponential moving average (EMA) of a model's weights.

    ema = EMA(model, decay=0.999)
    ... optimizer.step(); ema.update(model, step)
    validate(ema.module)          # the average is what konbu validates and saves when --ema is on

The average of the last ~1/(1 - decay) steps' weights usually generalises a little better than the
last weights and smooths out the noise of a high learning rate. Early on the decay is capped at
(1 + step) / (10 + step), as TensorFlow's ExponentialMovingAverage does with num_updates, so the
average is not dominated by the random initial weights in a short run. Buffers (BatchNorm's running
statistics) are copied, not averaged.
"""

import copy

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int):
        """Fold in the weights after optimizer step number `step` (1-based)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        averages = list(self.module.parameters())
        torch._foreach_lerp_(averages, [p.detach() for p in model.parameters()], 1.0 - decay)
        for average, buffer in zip(self.module.buffers(), model.buffers()):
            average.copy_(buffer)
