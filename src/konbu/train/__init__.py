"""Training: `fit()`, its config, optimizers, schedules, the event stream, checkpoints and resume,
the divergence guard, recipes and the learning-rate finder.

    from konbu.train import fit, fit_recipe, TrainConfig, list_recipes, lr_find

The loop (loop.py) reads top to bottom: parts.py prepares the machine, data and parts; epoch.py is
one epoch; finish.py evaluates, calibrates and reports.
"""

from .config import TrainConfig
from .events import Event
from .loop import fit, fit_recipe
from .lr_find import find_lr, lr_find
from .optim import OPTIMIZERS
from .recipes import list_recipes, load_recipe
from .schedule import SCHEDULES

__all__ = ["fit", "fit_recipe", "TrainConfig", "Event", "OPTIMIZERS", "SCHEDULES", "find_lr", "lr_find", "list_recipes",
           "load_recipe"]
