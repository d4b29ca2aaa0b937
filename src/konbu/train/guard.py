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
"""

import math
import statistics
from collections import deque

WINDOW = 100     # steps of history the median is taken over
SHORT = 5        # steps averaged for the current level (one spiky batch is not a divergence)


class DivergenceGuard:
    def __init__(self, factor: float, num_classes: int):
        self.factor = factor
        self.chance = math.log(max(num_classes, 2))
        self.first = None
        self.recent = deque(maxlen=WINDOW)
        self.short = deque(maxlen=SHORT)

    def check(self, loss: float) -> str | None:
        if not math.isfinite(loss):
            return f"the loss became {loss}"
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
            return (f"the loss rose to {level:.4g} (mean of the last {len(self.short)} steps), over {self.factor:g}x "
                    f"its recent median {reference:.4g} and worse than guessing (ln {round(math.exp(self.chance))} "
                    f"= {self.chance:.3g})")
        return None

    def state_dict(self):
        return {"first": self.first, "recent": list(self.recent), "short": list(self.short)}

    def load_state_dict(self, state):
        self.first = state["first"]
        self.recent = deque(state["recent"], maxlen=WINDOW)
        self.short = deque(state["short"], maxlen=SHORT)
