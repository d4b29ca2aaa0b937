"""Training: `fit()`, its config, optimizers, the event stream and checkpoints."""

from .config import TrainConfig
from .events import Event
from .loop import fit
from .optim import OPTIMIZERS

__all__ = ["fit", "TrainConfig", "Event", "OPTIMIZERS"]
