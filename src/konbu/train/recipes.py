"""Recipes: the tutorials' experiments as named settings files, reproducible with one command.

    konbu recipes                                    each recipe, its settings and the figure its tutorial reported
    konbu train --recipe tf-experts                  the tutorial's settings; explicit flags win:
    konbu train --recipe tf-experts --steps 2000 --dataset mnist-sample
    konbu train --recipe symmetry                    trains each variant (zeros, tf) and prints them side by side
    konbu.fit(recipe="chollet", epochs=1)
    konbu.fit_recipe("symmetry", dataset="digits")   # every variant: {"zeros": Run, "tf": Run}

A recipe is a YAML file shipped inside the package (src/konbu/recipes/NAME.yaml, installed as package
data, found with importlib.resources) or any .yaml path given to --recipe:

    description: one line
    source: the tutorial or book
    reported: {accuracy: 0.992, note: "what the tutorial reported, and on what"}
    # settings start from RECIPE_BASE (no augmentation, no label smoothing, constant lr), not konbu's defaults
    settings: {model: deep-mnist, dataset: mnist, optimizer: adam, lr: 1.0e-4, ...}   # TrainConfig fields
    variants:                                        # optional: runs that differ in a few settings
      zeros: {settings: {init: zeros}, reported: {accuracy: null, note: ...}}

A finished run stores "recipe" and "reported" in run.json, and `konbu train` prints the reported
figure next to the run's own.
"""

from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, UnknownNameError

# settings a recipe may not fix: where a run goes and which recipe it is are the user's choice
NOT_IN_RECIPES = {"recipe", "variant", "out"}
# a tutorial trained without konbu's extras: a recipe starts from these, not from konbu's tuned
# defaults (augmentation, label smoothing, cosine), unless it says otherwise
RECIPE_BASE = {"augment": "none", "label_smoothing": 0.0, "lr_schedule": "constant",
               "lr": None}   # None: the optimizer's Keras default, not konbu's one-cycle peak


@dataclass
class Recipe:
    name: str
    description: str
    source: str
    settings: dict
    reported: dict = field(default_factory=dict)   # {"accuracy": float | None, "note": str}
    variants: dict = field(default_factory=dict)   # name -> {"settings": {...}, "reported": {...}}

    def settings_for(self, variant: str | None) -> dict:
        if not self.variants:
            if variant:
                raise ConfigError(f"recipe {self.name} has no variants; drop --variant")
            return {**RECIPE_BASE, **self.settings}
        if variant not in self.variants:
            raise ConfigError(f"recipe {self.name} trains the variants {', '.join(self.variants)}: pass --variant "
                              f"one of them (`konbu train --recipe {self.name}`, or konbu.fit_recipe("
                              f"\"{self.name}\") in Python, trains them all)")
        return {**RECIPE_BASE, **self.settings, **self.variants[variant].get("settings", {})}

    def reported_for(self, variant: str | None) -> dict:
        if variant and variant in self.variants and "reported" in self.variants[variant]:
            return dict(self.variants[variant]["reported"])
        return dict(self.reported)


def _recipes_folder():
    return resources.files("konbu").joinpath("recipes")


def recipe_names() -> list:
    return sorted(entry.name[:-5] for entry in _recipes_folder().iterdir() if entry.name.endswith(".yaml"))


def load_recipe(name: str) -> Recipe:
    """A shipped recipe by name, or a recipe .yaml file by path."""
    import yaml

    from .config import TrainConfig

    if str(name).endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"recipe file {path} not found")
        text, where = path.read_text(encoding="utf-8"), str(path)
        name = path.stem
    else:
        if name not in recipe_names():
            raise UnknownNameError(f"unknown recipe {name!r}; expected one of {', '.join(recipe_names())} "
                                   "(`konbu recipes`), or the path of a .yaml recipe")
        text, where = _recipes_folder().joinpath(f"{name}.yaml").read_text(encoding="utf-8"), f"recipe {name}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: cannot parse YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise ConfigError(f"{where}: expected a mapping with a `settings` mapping of training settings")
    allowed = {f.name for f in fields(TrainConfig)} - NOT_IN_RECIPES
    variants = data.get("variants") or {}
    for settings in [data["settings"]] + [v.get("settings", {}) for v in variants.values()]:
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise ConfigError(f"{where}: unknown setting {unknown[0]!r}; a recipe sets TrainConfig fields "
                              f"({', '.join(sorted(allowed))})")
    return Recipe(name, data.get("description", ""), data.get("source", ""), data["settings"],
                  data.get("reported") or {}, variants)


def recipe_settings(name: str, variant: str | None = None) -> dict:
    """The TrainConfig fields a recipe (and variant) sets."""
    return load_recipe(name).settings_for(variant)


def list_recipes() -> list:
    return [load_recipe(name) for name in recipe_names()]
