"""Everything `fit()` prepares before its first step: the machine, the data, and the training parts.

    device, precision, threads = setup_machine(config)     # threads, device, precision, every seed
    train, val, test = prepare_data(config)                # one load; a seeded validation split
    parts = build_parts(config, train, device, precision)  # model, optimizer, schedule, loss, ...

With --from-run, `start` (from_run.Start) brings the data to that run's input and the model from it;
with --model pretrained:NAME, it brings them from the backbone (pretrained.py).

The learning-rate finder (lr_find.py) prepares the same way, so a sweep and a run agree on the data,
the model and the device.
"""

import math
import random
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..data import dataset_options, fit_to_shape, load_data, validation_split
from ..device import (autotune_convolutions, check_compile, keep_freed_memory, pick_device, resolve_precision,
                      set_threads, to_channels_last)
from ..errors import ConfigError
from ..inference import normalise
from ..models import build_model, model_spec
from ..models.whiten import fit_whitening, has_bias
from .config import TrainConfig
from .ema import EMA
from .epoch import BatchLoss, StepSettings, alternating_halves
from .guard import DeviceGuard, DivergenceGuard, make_guard
from .lookahead import Lookahead
from .optim import Optimizer, make_optimizer
from .fine_tune import Stages, make_stages, param_groups
from .world import World
from .schedule import DropoutSchedule, make_schedule, make_staged_schedule, piecewise_base_lr


def setup_machine(config: TrainConfig, world: World = World()):
    """(device, precision, threads) as `config` asks, with every random generator seeded; with
    several processes (world.py), this rank's device and share of the cores, in the process group."""
    threads = set_threads(world.threads(config.threads))
    device = world.device(pick_device(config.device))
    check_compile(config.compile, device)
    if device.type == "cpu":
        keep_freed_memory()
    autotune_convolutions(device, config.deterministic)
    precision = resolve_precision(config.precision, device)
    world.join(device)
    torch.manual_seed(config.seed)       # also seeds every CUDA device
    np.random.seed(config.seed)
    random.seed(config.seed)
    return device, precision, threads


def prepare_data(config: TrainConfig, start=None):
    """(train, validation or None, test) from one load of the dataset: train minus a seeded
    validation fraction; test is only read at the end. With a --from-run `start`, brought to its input."""
    full_train, test = load_data(config.dataset, **_data_options(config, start))
    if start is not None:
        full_train, test = fit_to_shape(full_train, test, start.image_shape)
    if config.val_fraction > 0:
        train, val = validation_split(full_train, config.val_fraction, config.seed)
    else:
        train, val = full_train, None
    return train, val, test


def _data_options(config: TrainConfig, start) -> dict:
    """load_data's options; with --from-run a square input is loaded at its side as --image-size would
    (so the ink box scales too), and an --image-size of another side is a ConfigError."""
    options = dataset_options(config.to_dict())
    if start is None:
        return options
    height, width = start.image_shape[1:]
    if config.image_size is not None and (config.image_size, config.image_size) != (height, width):
        raise ConfigError(f"--image-size {config.image_size} and --from-run {config.from_run} disagree: that run's "
                          f"model takes {height}x{width} images; drop --image-size")
    return {**options, "image_size": height} if height == width else options


def input_statistics(config: TrainConfig, train, start=None) -> tuple[tuple, tuple]:
    """(mean, std) per channel the model's input is normalised with, what preprocess.json records:
    the train split's own (inputs ~ N(0, 1)), or with --normalize unit 0 and 1: pixels / 255, what
    the TF and Keras tutorials fed. The Datasets themselves are never changed. With --from-run, the
    source run's: its weights were learned on inputs scaled that way."""
    if start is not None:
        return start.mean, start.std
    if config.normalize == "unit":
        channels = train.image_shape[0]
        return (0.0,) * channels, (1.0,) * channels
    return tuple(train.mean), tuple(train.std)


def augment_policy(policy: str | None, train) -> str | None:
    """`auto` (the default): `digits` for MNIST-style handwriting of 16 pixels or more, else none. At
    8x8 (sklearn's digits) a 10% shift is under a pixel and every resampling blurs the strokes; photos
    and other scripts need their own policy (--augment cifar, ...), which a user picks knowingly."""
    if policy != "auto":
        return policy
    return "digits" if train.info.ink == "mnist" and min(train.image_shape[1:]) >= 16 else None


@dataclass
class Parts:
    """What a run trains with, built once by build_parts."""

    spec: dict                            # the model spec (konbu.models.model_spec), for model.json
    model: torch.nn.Module
    optimizer: Optimizer
    schedule: object                      # schedule.Schedule
    loss: BatchLoss
    settings: StepSettings
    augment_policy: str | None            # the policy `auto` resolved to, for run.json
    from_run: dict | None = None          # run.json's "from_run": {"path", "name", "dataset", "head"}
    dropout: DropoutSchedule | None = None
    ema: EMA | None = None
    lookahead: Lookahead | None = None
    flip_halves: torch.Tensor | None = None   # augment altflip: per training image, mirrored in odd epochs
    guard: DivergenceGuard | DeviceGuard | None = None
    sample_weights: torch.Tensor | None = None   # per training image, for balanced sampling
    stages: Stages | None = None          # --fine-tune: what trains in which epoch

    @property
    def evaluated(self) -> torch.nn.Module:
        """What is validated and saved: the weights' moving average with --ema, else the model."""
        return self.ema.module if self.ema else self.model


def _model(config: TrainConfig, train, start):
    """(spec, model, run.json's "from_run" or None): the model `config` names, freshly initialised, or
    the --from-run run's with its weights (start.state; None on resume, where last.ckpt has them)."""
    if start is None:
        spec = model_spec(config.model)
        return spec, build_model(spec, train.image_shape, train.num_classes, config.init), None
    model = build_model(start.spec, train.image_shape, train.num_classes, config.init)
    if start.state is None:
        return start.spec, model, None
    from .from_run import load_weights
    head = load_weights(model, start)
    return start.spec, model, {**start.record, "head": head} if config.from_run else None


def build_parts(config: TrainConfig, train, device, precision, start=None) -> Parts:
    """The model on the device, its optimizer, schedules, EMA, guard, loss (weights, smoothing,
    augmentation, normalisation) and step settings, as `config` says (and `start`, with --from-run)."""
    num_classes = train.num_classes
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = config.total_steps(steps_per_epoch)
    spec, model, from_run = _model(config, train, start)
    mean, std = input_statistics(config, train, start)
    if config.whiten_bias_epochs is not None and not has_bias(model):
        raise ConfigError(f"--whiten-bias-epochs: {spec['name']} has no whitening layer with a bias to train "
                          "(a `whiten` layer with `use_bias: true`, as in fast-cifar10)")
    if start is None:   # a fresh model: its whitening layers (if any) from the training images as it sees them
        fit_whitening(model, train.images, lambda images: normalise(images, mean, std))
    channels_last = to_channels_last(model, device, config.channels_last)
    first_rate = piecewise_base_lr(config.lr_schedule)
    if first_rate is not None and config.lr is not None and config.lr != first_rate:
        raise ConfigError(f"--lr {config.lr:g} and --lr-schedule {config.lr_schedule!r} disagree: a piecewise "
                          "schedule gives the rates itself; drop --lr")
    optimizer = make_optimizer(config.optimizer, param_groups(model, config.backbone_lr_ratio, config.norm_bias_lr_scale),
                               first_rate or config.lr, config.momentum, config.nesterov, config.weight_decay)
    for group in optimizer.param_groups:
        if group.get("norm_biases"):   # the same decay per step at the higher rate
            group["weight_decay"] /= config.norm_bias_lr_scale
    stages = make_stages(config, model)
    if stages is not None:   # each stage its own curve: stage 2 starts at the full rate again
        first_steps = min(config.freeze_epochs * steps_per_epoch, total_steps)
        schedule = make_staged_schedule(config.lr_schedule, optimizer, first_steps, total_steps, steps_per_epoch,
                                        config.warmup)
    else:
        schedule = make_schedule(config.lr_schedule, optimizer, total_steps, steps_per_epoch, config.warmup)
    dropout = DropoutSchedule(config.dropout_schedule, steps_per_epoch) if config.dropout_schedule else None
    if dropout is not None and not any(isinstance(m, torch.nn.Dropout) for m in model.modules()):
        raise ConfigError(f"--dropout-schedule: {spec['name']} has no dropout layer to schedule")
    counts = torch.bincount(train.labels, minlength=num_classes).clamp(min=1).double()
    class_weights = None
    if config.class_weights == "balanced":   # sklearn's "balanced": n / (K * count)
        class_weights = (len(train) / (num_classes * counts)).float().to(device)
    policy = augment_policy(config.augment, train)
    augment = None
    if policy is not None:
        from .augment import make_augment
        augment = make_augment(policy, train.info)
    if config.tta != "none":
        from .augment import tta_safety_warning
        if message := tta_safety_warning(config.tta, train.info):
            warnings.warn(message)
    loss = BatchLoss(torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                     torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1), num_classes, device,
                     precision, channels_last, augment, class_weights, config.label_smoothing)
    return Parts(spec, model, optimizer, schedule, loss,
                 StepSettings(config.batch_size, total_steps, config.clip_grad, config.checkpoint_every),
                 policy, from_run=from_run, dropout=dropout, ema=EMA(model, config.ema) if config.ema else None,
                 lookahead=Lookahead(model, config.lookahead, total_steps) if config.lookahead else None,
                 flip_halves=(alternating_halves(len(train), config.seed).to(device)
                              if augment and augment.policy.altflip else None),
                 guard=make_guard(config.guard, num_classes, device, optimizer),
                 sample_weights=(1.0 / counts)[train.labels] if config.sampler == "balanced" else None,
                 stages=stages)
