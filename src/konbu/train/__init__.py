"""Training: `fit()`, its config, optimizers, schedules, the event stream, checkpoints and resume,
the divergence guard, recipes and the learning-rate finder.

    from konbu.train import fit, fit_recipe, TrainConfig, list_recipes, lr_find

The loop (loop.py) reads top to bottom: parts.py prepares the machine, data and parts; epoch.py is
one epoch; finish.py evaluates, calibrates and reports.

Only TrainConfig (config.py, no torch) is imported with the package; the other names load on first
use (PEP 562): `konbu train --help` reads TrainConfig's defaults and must not import torch.
"""

import importlib
import importlib.util

from .config import TrainConfig

# public name -> the submodule that defines it; imported by __getattr__ the first time it is read
_LAZY = {"Event": "events", "fit": "loop", "fit_recipe": "loop", "find_lr": "lr_find", "lr_find": "lr_find",
         "OPTIMIZERS": "optim", "SCHEDULES": "schedule", "list_recipes": "recipes", "load_recipe": "recipes"}

__all__ = ["fit", "fit_recipe", "TrainConfig", "Event", "OPTIMIZERS", "SCHEDULES", "find_lr", "lr_find", "list_recipes",
           "load_recipe"]


def __getattr__(name: str):
    if name not in _LAZY:
        # a submodule (`konbu.train.loop` after a bare `import konbu.train`), as when they were all imported
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # set after the import: importing the submodule lr_find binds `lr_find` here to the module, and the
    # function must win, as it did when this file imported it eagerly. (A caller that imports the
    # submodule konbu.train.lr_find before reading konbu.train.lr_find finds the module here; the
    # function is always `from konbu.train.lr_find import lr_find`.)
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
