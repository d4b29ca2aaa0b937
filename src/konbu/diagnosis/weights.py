"""Diagnose checks on the trained weights: dead ReLU units, filters that never moved, and units
that stayed identical (symmetry).

    import konbu
    konbu.diagnose("runs/deep", checks=["dead-units", "frozen-filters", "symmetry"])

    konbu diagnose runs/deep

- `dead-units`: the validation images (the test split for a run trained without one) go through the
  model once with a hook on every ReLU; a channel (conv) or unit (dense) whose output is <= 0 for
  every image, at every position, is dead: it passes no signal forward and gets no gradient back.
- `frozen-filters`: each conv filter against its initial value (initial.safetensors).
- `symmetry`: the rows of each dense and conv layer's weights (with their bias) compared with each
  other; when all are the same, the layer computes one feature however wide it is.

A layer whose units are all identical is reported by `symmetry` only: its units are dead and frozen
too (zero weights give zero output and zero gradient), but the cause and the fix are the symmetry.
"""

import shlex

import torch
from torch import nn

from ..errors import RunDirectoryError
from ..inference import normalise
from . import BETTER, NOTE, WRONG, Finding, check
from ..train.optim import default_lr
from .commands import learning_rate, lr_find_command, train_command

# A layer with at least this share of dead units has lost a material part of its width: a few dead
# units are normal (the healthy digits MLP ends with 2%, 10 of 512; a small healthy CNN with none),
# a quarter dead makes the layer a three-quarter-width one, and a too-high learning rate kills far
# more (sgd at lr 10 on the digits MLP: 99%). Half or more dead is reported as something that went wrong.
DEAD_SHARE = 0.25
DEAD_WRONG_SHARE = 0.5
# A unit silent on this many images is dead for any practical purpose; the cap keeps the check under a
# second on a large split (full MNIST's test: 5,000 images took 1.3 s of the run's finish, EMNIST's 70,000
# would take long).
MAX_IMAGES = 2000
BATCH_SIZE = 256   # as konbu.inference: smaller batches stay in the caches

# A filter whose weights changed by less than 0.1% of their size has learned nothing that shows.
# Measured on the digits with a 4-filter conv layer and one epoch of adam (21 steps): lr 1e-3 moves
# the kernels by 3.4% (median), 1e-4 by 0.35%, 1e-5 by 0.035% (test accuracy still at chance),
# 1e-9 not at all (the step is below float32 rounding); ten epochs at 1e-3 by 32%.
FROZEN_TOLERANCE = 1e-3
# Reported when this share of a layer's filters is frozen (the same reasoning as DEAD_SHARE).
FROZEN_SHARE = 0.25

# Units whose weights (and bias) differ by less than this fraction of their size compute the same
# function: float rounding alone leaves identical units ~1e-7 apart, distinct units of a trained
# layer differ by tens of percent.
SYMMETRY_TOLERANCE = 1e-4

def _units(module: nn.Module) -> torch.Tensor:
    """[units, fan-in (+1 with a bias)]: one row per output unit (dense) or filter (conv)."""
    rows = module.weight.detach().float().flatten(1)
    if module.bias is not None:
        rows = torch.cat([rows, module.bias.detach().float()[:, None]], dim=1)
    return rows.cpu()


def _weighted_layers(model) -> list:
    """[(layer name, module)] of the dense and conv layers of a konbu Net, in order."""
    rows = []
    for layer in model.layers:
        module = model.module_named(layer.modules[0])
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            rows.append((layer.name, module))
    return rows


def _symmetric(module: nn.Module) -> bool:
    """True when a layer of two or more units has all units (near-)identical."""
    rows = _units(module)
    if rows.shape[0] < 2:
        return False
    spread = float((rows - rows[0]).norm(dim=1).max())
    size = float(rows.norm(dim=1).max())
    return spread <= SYMMETRY_TOLERANCE * size   # all-zero rows: 0 <= 0, the zero-init case


def _symmetric_layers(model) -> set:
    return {name for name, module in _weighted_layers(model) if _symmetric(module)}


def _share_text(rows, what) -> str:
    return "; ".join(f"{row['layer']}: {row['count']} of {row['total']} {what} ({row['share']:.0%})" for row in rows)


# ----------------------------------------------------------------------------- dead units

def _relu_layers(model) -> list:
    """[(layer name, ReLU module)] for every layer of the Net whose activation is a ReLU."""
    rows = []
    for layer in model.layers:
        for name in layer.modules:
            module = model.module_named(name)
            if isinstance(module, nn.ReLU):
                rows.append((layer.name, module))
    return rows


def alive_units(run, images: torch.Tensor) -> dict:
    """{layer name: bool [channels or units]}: which outputs of each ReLU are > 0 for at least one
    image (uint8 [N, C, H, W]) at at least one position."""
    model = run.model
    relus = _relu_layers(model)
    alive = {}

    def record(name):
        def hook(module, inputs, output):
            # [N, C, H, W] or [N, units]: the largest value each channel reaches anywhere in the batch
            fired = (output.detach().flatten(2).amax(dim=2) if output.ndim > 2 else output.detach()) > 0
            fired = fired.any(dim=0).cpu()
            alive[name] = fired if name not in alive else alive[name] | fired
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in relus]
    was_training = model.training
    model.eval()
    device = run.device
    try:
        with torch.inference_mode():
            for start in range(0, images.shape[0], BATCH_SIZE):
                batch = images[start:start + BATCH_SIZE].to(device)
                model(normalise(batch, run.preprocess["mean"], run.preprocess["std"]))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return alive


@check("dead-units")
def dead_units(ctx) -> list:
    split = ctx.validation
    where = "validation"
    if split is None:
        split, where = ctx.data[1], "test"
    images = split.images[:MAX_IMAGES]
    symmetric = _symmetric_layers(ctx.run.model)
    rows = []
    for layer, fired in alive_units(ctx.run, images).items():
        if layer in symmetric:
            continue
        dead = int((~fired).sum())
        rows.append({"layer": layer, "count": dead, "total": int(fired.numel()), "share": dead / fired.numel()})
    material = [row for row in rows if row["share"] >= DEAD_SHARE]
    if not material:
        return []
    worst = max(material, key=lambda row: row["share"])
    config = ctx.config
    return [Finding(
        id="dead-units",
        # a quarter to a half dead is worth knowing (the default chollet-mnist run ends with 16 of its
        # 64 dense units dead at 99% accuracy); half or more has cost the layer its width
        severity=WRONG if worst["share"] >= DEAD_WRONG_SHARE else NOTE,
        title=f"{worst['share']:.0%} of {worst['layer']}'s ReLU units never activate",
        evidence=(f"on {images.shape[0]:,} {where} images, units whose output is 0 for every image: "
                  f"{_share_text(material, 'dead')}. A dead unit passes nothing on and gets no gradient, so it "
                  f"never recovers; a too-high learning rate usually kills them."),
        next=[train_command(config, lr=learning_rate(config) / 10, warmup=max(config.get("warmup") or 0, 100)),
              lr_find_command(config),
              train_command(config, init="tf")],
        data={"split": where, "images": int(images.shape[0]), "threshold": DEAD_SHARE, "layers": rows},
    )]


# ----------------------------------------------------------------------------- frozen filters

@check("frozen-filters")
def frozen_filters(ctx) -> list:
    try:
        initial = ctx.run.initial_model()
    except RunDirectoryError:   # no conv layer, or a run from before initial.safetensors was kept
        return []
    symmetric = _symmetric_layers(ctx.run.model)
    rows = []
    for (layer, module), (_, start) in zip(_weighted_layers(ctx.run.model), _weighted_layers(initial)):
        if not isinstance(module, nn.Conv2d) or layer in symmetric:
            continue
        now, before = module.weight.detach().float().flatten(1).cpu(), start.weight.detach().float().flatten(1).cpu()
        size = torch.maximum(before.norm(dim=1), now.norm(dim=1)).clamp_min(1e-12)
        change = (now - before).norm(dim=1) / size
        frozen = int((change < FROZEN_TOLERANCE).sum())
        rows.append({"layer": layer, "count": frozen, "total": int(change.numel()), "share": frozen / change.numel(),
                     "median_change": float(change.median())})
    material = [row for row in rows if row["share"] >= FROZEN_SHARE]
    if not material:
        return []
    config = ctx.config
    run = shlex.quote(str(ctx.path))
    everything = all(row["share"] == 1.0 for row in rows)
    if everything:   # nothing moved anywhere: the rate (or the number of steps) is too small to learn
        next_steps = [lr_find_command(config),
                      train_command(config, lr=max(default_lr(config.get("optimizer", "adam")),
                                                   learning_rate(config) * 10))]
        why = "no filter of any conv layer moved: the learning rate or the number of steps is far too small"
    else:
        next_steps = [f"konbu show filters {run} --initial", f"konbu show filters {run}",
                      train_command(config, init="tf")]
        why = "a filter that does not move got no gradient, usually because its ReLU never fires (dead units)"
    return [Finding(
        id="frozen-filters",
        severity=WRONG if everything else BETTER,
        title=("the conv filters did not move from their initial values" if everything
               else f"{sum(row['count'] for row in material)} conv filters did not move from their initial values"),
        evidence=(f"filters that changed by less than {FROZEN_TOLERANCE:.1%} of their size: "
                  f"{_share_text(material, 'frozen')}; {why}."),
        next=next_steps,
        data={"tolerance": FROZEN_TOLERANCE, "threshold": FROZEN_SHARE, "layers": rows},
    )]


# ----------------------------------------------------------------------------- symmetry

@check("symmetry")
def symmetry(ctx) -> list:
    layers = _weighted_layers(ctx.run.model)
    rows = [{"layer": name, "units": int(module.weight.shape[0]),
             "weight_norm": float(_units(module)[0].norm())}
            for name, module in layers if _symmetric(module)]
    if not rows:
        return []
    config = ctx.config
    init = config.get("init", "default")
    zero = all(row["weight_norm"] == 0.0 for row in rows)
    cause = ("they are all zero: zero initial weights give every unit the same output and the same "
             "gradient, so they never become different" if zero else
             "units that start (or become) the same get the same gradient and stay the same")
    names = ", ".join(f"{row['layer']} ({row['units']} units)" for row in rows)
    return [Finding(
        id="symmetry",
        severity=WRONG,
        title=f"every unit of {rows[0]['layer']} has the same weights: the layer is worth one unit",
        evidence=f"identical units in {names} (init {init}); {cause}.",
        next=[train_command(config, init="default"), train_command(config, init="tf"),
              "konbu train --recipe symmetry"],
        data={"init": init, "tolerance": SYMMETRY_TOLERANCE, "layers": rows},
    )]
