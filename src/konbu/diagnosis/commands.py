"""The next commands a finding suggests, built from the run's own settings so they are real
`konbu train` / `konbu lr-find` lines a user can paste.

    train_command(ctx.config, epochs=40, augment="digits")
    # 'konbu train --model mlp --dataset digits --epochs 40 --augment digits'
"""

import shlex

from ..train.config import TrainConfig
from ..train.optim import default_lr

# Settings that say where and how fast a run ran, not what it learned: left out of a repeat command.
MACHINERY = {"out", "device", "threads", "precision", "channels_last", "tensorboard", "checkpoint_every",
             "deterministic"}
# Boolean fields whose False flag is not `--no-NAME`.
FALSE_FLAGS = {"restore_best": "--keep-last"}


def train_command(config: dict, **changes) -> str:
    """`konbu train ...` repeating the run whose TrainConfig fields are `config`, with `changes`
    (field=value) applied: the recipe (or model and dataset), then the flags that differ from the
    defaults (or from the recipe's settings), then the changes, always written out (`--init default`
    says what to change even where it is the default)."""
    fields = TrainConfig.__dataclass_fields__
    settings = {name: value for name, value in {**config, **changes}.items() if name in fields}
    base = TrainConfig.from_overrides(recipe=settings.get("recipe"), variant=settings.get("variant")).to_dict()
    first = ("recipe", "variant") if settings.get("recipe") else ("model", "dataset")
    words = ["konbu", "train"]
    for name in first:
        if settings.get(name) is not None:
            words += [f"--{name}", str(settings[name])]
    kept = [name for name in settings if name not in changes and settings[name] != base.get(name)]
    for name in kept + [name for name in changes if name in settings]:
        value = settings[name]
        if name in MACHINERY or name in first or value is None:
            continue
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            words.append(flag if value else FALSE_FLAGS.get(name, f"--no-{name.replace('_', '-')}"))
        else:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return " ".join(shlex.quote(word) for word in words)


def lr_find_command(config: dict) -> str:
    """`konbu lr-find` for the run's model, data and optimizer."""
    words = ["konbu", "lr-find", "--model", str(config.get("model")), "--dataset", str(config.get("dataset")),
             "--optimizer", str(config.get("optimizer", "adam"))]
    if config.get("data_dir"):
        words += ["--data-dir", str(config["data_dir"])]
    return " ".join(shlex.quote(word) for word in words)


def learning_rate(config: dict) -> float:
    """The rate the run trained with: --lr, else its optimizer's default."""
    return config.get("lr") or default_lr(config.get("optimizer", "adam"))
