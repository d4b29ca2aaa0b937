"""Training: `fit()`, its config, optimizers, schedules, the event stream, checkpoints and resume,
the divergence guard, recipes and the learning-rate finder.

    from konbu.train import fit, TrainConfig, list_recipes, lr_find
"""

from .config import TrainConfig
from .events import Event
from .loop import fit
from .lr_find import find_lr, lr_find
from .optim import OPTIMIZERS
from .recipes import list_recipes, load_recipe
from .schedule import SCHEDULES

__all__ = ["fit", "TrainConfig", "Event", "OPTIMIZERS", "SCHEDULES", "find_lr", "lr_find", "list_recipes",
           "load_recipe"]
