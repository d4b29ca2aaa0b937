"""Diagnose check for a recipe's run: the tutorial's reported accuracy against this run's, whether
the gap is more than the test set's noise, and the likeliest reason from the run's own record.

    import konbu
    run = konbu.fit(recipe="tf-beginners", dataset="mnist-sample", steps=100)
    konbu.diagnose(run, checks=["tutorial"])       # below-tutorial: 100 of 1,000 steps, mnist-sample

    konbu diagnose runs/tf-beginners-...

The reported figure is run.json's "reported" (copied from the recipe when the run started). The
noise is the binomial standard error of an accuracy measured on test_n images; the reasons compare
the run's settings with the recipe's: a shortened --steps/--epochs, another dataset (mnist-sample for
mnist), fewer training images, a divergence or early stop, and any other setting changed.

    .venv/bin/python -m pytest -q tests/diagnosis/test_tutorial.py
"""

import math
import shlex

from ..data import get_entry, list_datasets
from ..errors import KonbuError
from ..train.config import TrainConfig
from ..train.recipes import load_recipe
from . import BETTER, NOTE, Finding, check
from .commands import train_command

# A gap within 2 standard errors (95%) of the test accuracy is what another seed or another sample
# of test images gives; beyond it the run differs from the tutorial.
NOISE_SE = 2.0
# Settings that do not change what a run learns, or that the reasons cover on their own.
NOT_COMPARED = {"out", "device", "threads", "precision", "channels_last", "tensorboard", "checkpoint_every",
                "deterministic", "data_dir", "recipe", "variant", "dataset", "steps", "epochs", "strict_data"}


def _recipe_settings(config: dict) -> dict | None:
    """The settings the tutorial ran with, or None when the recipe is not on this machine (a run made
    from a .yaml recipe file and copied elsewhere)."""
    try:
        return load_recipe(config["recipe"]).settings_for(config.get("variant"))
    except KonbuError:
        return None


def _training_images(settings: dict) -> int | None:
    """How many training images the tutorial had: its dataset's train split less its validation share;
    None for a dataset whose size depends on the user's files (etl-hiragana, folder:)."""
    name = settings.get("dataset")
    if name not in list_datasets() or get_entry(name).options:
        return None
    train = get_entry(name).info.split_sizes.get("train")
    return round(train * (1 - settings.get("val_fraction", TrainConfig.val_fraction))) if train else None


def _reasons(ctx, settings: dict) -> list:
    """Why this run may fall short of the tutorial, likeliest first: [(a short phrase, its details)]."""
    config, reasons = ctx.config, []
    stopped = ctx.info.get("stopped") or {}
    if stopped.get("reason") == "diverged":
        reasons.append(("it diverged", f" at step {stopped.get('step', 0):,}; the weights from before it were kept"))
    elif stopped.get("reason") == "early_stopping":
        reasons.append(("early stopping ended it", f" at epoch {stopped.get('epoch')}"))
    last = ctx.epochs[-1] if ctx.epochs else {}
    if settings.get("steps") and last.get("step", 0) < settings["steps"]:
        reasons.append((f"it trained {last.get('step', 0):,} of the tutorial's {settings['steps']:,} steps", ""))
    elif not settings.get("steps") and settings.get("epochs") and (
            last.get("epoch", 0) < settings["epochs"] or config.get("steps")):
        reasons.append((f"it trained {last.get('epoch', 0)} of the tutorial's {settings['epochs']} epochs",
                        f" (stopped at step {last.get('step', 0):,} by --steps)" if config.get("steps") else ""))
    ours = (ctx.info.get("data") or {}).get("train")
    theirs = _training_images(settings)
    sizes = (f" ({ours:,} training images against {theirs:,})" if ours and theirs else "")
    if config.get("dataset") != settings.get("dataset"):
        reasons.append((f"it trained on {config.get('dataset')}, not {settings.get('dataset')}", sizes))
    elif ours and theirs and ours < 0.9 * theirs:   # a tenth fewer: a larger validation split or a class subset
        reasons.append(("it had fewer training images", sizes))
    changed = [f"{name.replace('_', '-')} {config.get(name)} (tutorial {settings.get(name)})"
               for name in sorted(settings) if name not in NOT_COMPARED and config.get(name) != settings[name]]
    if changed:
        reasons.append(("settings changed from the tutorial's", ": " + ", ".join(changed)))
    return reasons


def _recipe_command(config: dict) -> str:
    """`konbu train --recipe NAME` as the tutorial ran it (with the run's --data-dir, which only says
    where the same files are)."""
    words = ["konbu", "train", "--recipe", config["recipe"]]
    if config.get("variant"):
        words += ["--variant", config["variant"]]
    if config.get("data_dir"):
        words += ["--data-dir", config["data_dir"]]
    return " ".join(shlex.quote(str(word)) for word in words)


@check("tutorial")
def tutorial(ctx) -> list:
    config, final = ctx.config, ctx.info.get("final") or {}
    reported = (ctx.info.get("reported") or {}).get("accuracy")
    ours, n = final.get("test_accuracy"), final.get("test_n")
    if not config.get("recipe") or not isinstance(reported, (int, float)) or ours is None or not n:
        return []
    error = math.sqrt(reported * (1 - reported) / n)     # the binomial standard error of a test accuracy
    gap, noise = ours - reported, NOISE_SE * error
    where = (f"the tutorial reported {reported:.2%} ({(ctx.info.get('reported') or {}).get('note', '')}); this run "
             f"scored {ours:.2%} on {n:,} test images: {gap * 100:+.2f} points, against a noise of +-{noise * 100:.2f} "
             f"points ({NOISE_SE:g} standard errors on {n:,} images).")
    data = {"reported": reported, "accuracy": ours, "gap": gap, "standard_error": error, "test_n": n,
            "recipe": config["recipe"], "variant": config.get("variant")}
    settings = _recipe_settings(config)
    reasons = _reasons(ctx, settings) if settings is not None else []
    data["reasons"] = [short + detail for short, detail in reasons]
    name = config["recipe"] + (f" ({config['variant']})" if config.get("variant") else "")
    if abs(gap) <= noise:
        return [Finding(id="matches-tutorial", severity=NOTE,
                        title=f"this run reproduces the {name} tutorial's {reported:.2%} within the test set's noise",
                        evidence=where, next=[], data=data)]
    if gap > 0:
        because = f" It differs from the tutorial: {'; '.join(data['reasons'])}." if reasons else ""
        return [Finding(id="above-tutorial", severity=NOTE,
                        title=f"this run beats the {name} tutorial: {ours:.2%} against {reported:.2%}",
                        evidence=where + because, next=[], data=data)]
    if reasons:
        because = f" Likeliest first: {'; '.join(data['reasons'])}."
    elif settings is None:
        because = f" The recipe {config['recipe']} is not on this machine to compare settings with."
    else:
        because = " The run's settings are the tutorial's: the gap is the seed or the machine; try another seed."
    next_steps = [_recipe_command(config)]
    if settings is not None and not reasons:
        next_steps = [train_command(config, seed=(config.get("seed") or 0) + 1)]
    return [Finding(id="below-tutorial", severity=BETTER,
                    title=f"{gap * -100:.1f} points below the {name} tutorial's {reported:.2%}"
                          + (f": {reasons[0][0]}" if reasons else ""),
                    evidence=where + because, next=next_steps, data=data)]
