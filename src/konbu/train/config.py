"""`TrainConfig`: every training setting in one dataclass, saved into run.json.

    from konbu.train import TrainConfig
    config = TrainConfig.from_overrides(model="deep-mnist", lr_schedule="0:1e-3,1000:1e-4", steps=3000)
    config = TrainConfig.from_overrides(recipe="chollet", epochs=1)   # a recipe, one field overridden

The defaults are `konbu train` with no flags: chollet-mnist on the embedded mnist-sample, adam with
a one-cycle schedule peaking at 5e-3, `digits` augmentation ("auto") and label smoothing 0.1 for 10
epochs. On a 2-core AVX2-only CPU (fp32) that measured 99.0 / 99.2 / 99.0 / 99.0 / 98.8 / 99.1% on the
1,000 held-out test images (seeds 0-5), against 98.7 / 98.7 / 98.2 / 98.8 / 98.7 / 98.7% for 12 epochs
(the previous default), in 18-19 s of training against 20-22. With AVX512-BF16, 12 epochs measured
99.0 / 98.7 / 98.7% (seeds 0-2) in 9 s of training. Before that, a cosine schedule at Keras's 1e-3
for 40 epochs measured 98.9 / 99.3 / 98.6 / 99.1% in 2-3 times the training time; at
1e-3 a one-cycle of 15 epochs reached 97.9%, a cosine 98.3%. Without augmentation and smoothing
(20 epochs) it was 97.6-98.2%; augmentation alone (40 epochs) 98.5-98.8%. `None`
means "not given": `from_overrides` keeps the default (or the recipe's value) for it, which is how
explicit CLI flags override a recipe without the recipe's other values being lost.
"""

import numbers
from dataclasses import asdict, dataclass, fields

from ..errors import ConfigError

DEFAULT_LR = 5e-3   # measured on the default run: 1e-3 (Keras's) 97.9%, 5e-3 98.7-99.0%, 1e-2 98.6-99.2%


NORMALIZATIONS = ("standard", "unit")
TTA = ("none", "flip", "flip-shift")   # the test-time augmentations konbu.inference knows
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")   # torch.compile's modes, and none


def check_tta(tta, what: str = "--tta") -> str:
    if tta not in TTA:
        raise ConfigError(f"{what} must be one of {', '.join(TTA)}, got {tta!r}")
    return tta


@dataclass
class TrainConfig:
    # What to train on what
    model: str = "chollet-mnist"   # zoo name (`konbu models`) or a .yaml/.json layer spec
    dataset: str = "mnist-sample"  # registry name (`konbu datasets`); the embedded sample needs no network
    data_dir: str | None = None    # folder holding the dataset's files (mnist: the four IDX files)
    image_size: int | None = None  # resize to this side (e.g. ETL's 127x128 scans to 28); None: as stored
    classes: str | None = None     # a subset of the dataset's classes (e.g. "hiragana"); None: all
    strict_data: bool = False      # folder: refuse a folder with an unreadable image file. False skips such
                                   # files with one warning: one bad file in 10,000 should not stop a run
    recipe: str | None = None      # a tutorial's settings by name (`konbu recipes`); explicit fields win
    variant: str | None = None     # for a recipe that compares variants (symmetry: zeros / tf): which one
    from_run: str | None = None    # start from this konbu run's model and weights (transfer: MNIST -> KMNIST);
                                   # the data is brought to its input, its head replaced if the classes differ
    weights: str | None = None     # --model pretrained:NAME: a .safetensors or .pth state dict with the
                                   # backbone's weights; None: torchvision's published ImageNet weights

    # Fine-tuning a pretrained backbone (the Keras book's recipe): train the new head on a frozen
    # backbone, then unfreeze its top blocks and train on with the backbone at a smaller rate
    fine_tune: bool = False        # two stages in one run: frozen for --freeze-epochs, then unfrozen
    freeze_epochs: int = 1         # stage 1's epochs, counted in --epochs (fastai's fine_tune default)
    unfreeze: str = "all"          # stage 2 trains the top K blocks ("top:K") or "all" of the backbone
    backbone_lr_ratio: float = 0.1 # the backbone's rate as a fraction of the head's: pretrained features
                                   # need small steps (fastai's discriminative rates)

    # How long
    epochs: int = 10               # augmentation makes each epoch new: 10 x 3,600 images, 8-19 s on 2 cores
    steps: int | None = None       # stop after this many batches (the TF tutorials count steps, not
                                   # epochs); the last epoch may end part-way. None: `epochs` full epochs
    batch_size: int = 64           # Chollet's choice; small batches = more steps per epoch on little data

    # Optimisation
    optimizer: str = "adam"        # adam reaches 97% in fewer epochs than rmsprop on 3,600 images
    lr: float | None = DEFAULT_LR  # the default adam + one-cycle's peak; with another optimizer or schedule
                                   # and no --lr: None, the optimizer's Keras default (adam/rmsprop 1e-3,
                                   # sgd 1e-2), as recipes have it too
    momentum: float | None = None  # sgd/rmsprop momentum; None: Keras's 0.0 (plain SGD)
    nesterov: bool = False         # Nesterov momentum for sgd (needs momentum > 0)
    weight_decay: float | None = None  # None: Keras's default (adamw 0.004, the others 0)
    lr_schedule: str = "onecycle"  # per batch: constant, cosine, step, onecycle, triangle, plateau or a piecewise
                                   # "0:1e-3,1000:1e-4" (by step; "epoch:0:1e-3,5:1e-4" by epoch)
    warmup: int = 0                # batches of linear warm-up in front of the schedule (big lr, adam)
    dropout_schedule: str | None = None  # piecewise drop rate by step, "0:0.0,3000:0.7"; sets every Dropout
    label_smoothing: float = 0.1   # spreads 10% of the target over the other classes: calmer logits; +0.3%
                                   # test accuracy on mnist-sample with augmentation (seeds 0-3)
    ema: float | None = None       # decay of an exponential moving average of the weights (e.g. 0.999);
                                   # the average is what is validated and saved. None: off
    whiten_bias_epochs: int | None = None  # a whitening layer's bias (`use_bias`) trains for this many
                                   # epochs, then is frozen (airbench's 3). None: it trains throughout
    lookahead: float | None = None # airbench's lookahead: every 5 steps the model is pulled back to an
                                   # average of itself whose decay rises to this per step (0.95) by the end
    norm_bias_lr_scale: float = 1.0    # BatchNorm biases train at this multiple of the rate, their weight
                                   # decay divided by it (airbench's 64: +1.3 points on CIFAR-10, README)
    tta: str = "none"              # test-time augmentation of the final test evaluation: none, flip, or
                                   # flip-shift (airbench's: the mirror and 1-pixel shifts; konbu.inference)
    class_weights: str | None = None   # "balanced": loss weight n / (K * count) per class, for skewed data
    sampler: str = "shuffle"       # shuffle: each image once per epoch; balanced: classes drawn equally often
    clip_grad: float | None = None # clip the global gradient norm to this (a guard against spikes)
    augment: str | None = "auto"   # on-device augmentation policy: `digits`, `cifar`, a policy string, "none";
                                   # auto: `digits` (small turns, shifts, zooms: the +0.9% that passes 98.5%
                                   # here) on MNIST-style handwriting, none on other data
    init: str = "default"          # default (PyTorch's), tf (truncated normal 0.1, bias 0.1), zeros, glorot
                                   # (Keras's: Glorot uniform, bias 0)
    normalize: str = "standard"    # standard: per-channel mean/std of the train split (inputs ~ N(0, 1));
                                   # unit: pixels / 255 in [0, 1], what the TF and Keras tutorials fed, so
                                   # their learning rates (SGD 0.5 on softmax) mean the same thing here

    # Validation, best weights, stopping
    val_fraction: float = 0.1      # held out of train, seeded; picks the best epoch. Test is never touched
    monitor: str = "val_accuracy"  # what "best" means (weights.safetensors) and what early stopping watches;
                                   # accuracy, not loss: it is what a learner compares with the tutorials
    patience: int | None = None    # early stopping: epochs without improvement before stopping; None: off
    min_delta: float = 0.0         # an improvement smaller than this does not count (for patience)
    restore_best: bool = True      # weights.safetensors holds the best epoch; False: the last one (Keras's
                                   # EarlyStopping default)
    guard: float = 10.0            # divergence guard: stop when the loss is NaN/inf or this many times its
                                   # recent median (and worse than guessing); 0: off
    checkpoint_every: int | None = None  # also write last.ckpt every this many steps (resume mid-epoch)

    # Repeatability and machinery
    seed: int = 0                  # weights init, shuffling, the validation split, augmentation
    deterministic: bool = False    # torch.use_deterministic_algorithms: bit-repeatable, maybe slower on GPU
    device: str = "auto"           # auto: cuda, then mps, then cpu
    threads: int | None = None     # CPU threads for PyTorch; None keeps its default (one per core)
    precision: str = "auto"        # auto: bf16 autocast where the hardware has native bf16, else fp32
    channels_last: bool = True     # NHWC conv kernels: ~1.2-1.7x faster on CPU (oneDNN) and tensor cores
    compile: str = "none"          # torch.compile the step's model: default, reduce-overhead (CUDA graphs on a
                                   # GPU) or max-autotune; on the CPUs measured here it trained slower (README)
    tensorboard: bool = False      # also write TensorBoard event files to <run>/tensorboard
    out: str | None = None         # the run directory; None: runs/<model>-<dataset>-<time>

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_overrides(cls, **overrides):
        """A config from keyword fields; a `recipe` supplies values the keywords don't."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown training setting {unknown[0]!r}; expected one of {', '.join(sorted(names))}")
        # None means "not given" (the CLI passes every flag): keep the recipe's value or the default
        given = {k: v for k, v in overrides.items() if v is not None}
        if given.get("recipe"):
            from .recipes import recipe_settings
            given = {**recipe_settings(given["recipe"], given.get("variant")), **given}
        elif given.get("variant"):
            raise ConfigError("--variant picks one variant of a recipe; pass --recipe too")
        # DEFAULT_LR is the peak of the default adam one-cycle: another optimizer or schedule without
        # --lr starts from its Keras default instead, as a Keras user expects (rmsprop at 5e-3 is too hot)
        if "lr" not in given and (given.get("optimizer", cls.optimizer) != cls.optimizer
                                  or given.get("lr_schedule", cls.lr_schedule) != cls.lr_schedule):
            given["lr"] = None
        config = cls(**given)
        config.check()
        return config

    def check(self):
        """Refuse any setting out of its range with a ConfigError naming the flag, before anything runs.

        Every range test is written `not low <= x <= high` (see `_count`, `_number`): NaN compares
        false with everything, so it fails them all, where a test like `x < 0` would let it through."""
        if not isinstance(self.model, str):   # fit(model=[...layers...]): Keras's Sequential habit
            raise ConfigError(f"--model is a zoo name (`konbu models`) or the path of a .yaml/.json layer spec, not "
                              f"a {type(self.model).__name__}; write your layers to a spec file (`layers:` and one "
                              "mapping per layer, as in the README's model specs) and pass its path")
        _count("--epochs", self.epochs, 1, MAX_EPOCHS)
        _count("--steps", self.steps, 1, MAX_STEPS, optional=True)
        _count("--batch-size", self.batch_size, 1, MAX_BATCH, why=" (a batch larger than the training set is "
                                                                   "one full-batch step anyway)")
        _number("--lr", self.lr, f"must be positive and at most {MAX_LR:g}", 0.0, MAX_LR, low_open=True, optional=True)
        _number("--val-fraction", self.val_fraction, "must be in [0, 1)", 0.0, 1.0, high_open=True)
        _count("--warmup", self.warmup, 0, MAX_STEPS, unit=" steps")
        _number("--label-smoothing", self.label_smoothing, "must be in [0, 1)", 0.0, 1.0, high_open=True)
        _number("--ema", self.ema, "is a decay in (0, 1) such as 0.999", 0.0, 1.0, low_open=True, high_open=True,
                optional=True)
        _count("--whiten-bias-epochs", self.whiten_bias_epochs, 0, MAX_EPOCHS, unit=" epoch", optional=True)
        _number("--lookahead", self.lookahead, "is a decay per step in (0, 1) such as airbench's 0.95", 0.0, 1.0,
                low_open=True, high_open=True, optional=True)
        check_tta(self.tta)
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        _number("--norm-bias-lr-scale", self.norm_bias_lr_scale, "is a multiple of the learning rate in (0, 1e4] "
                "(airbench's 64)", 0.0, 1e4, low_open=True)
        if self.class_weights not in (None, "balanced"):
            raise ConfigError(f"--class-weights takes 'balanced', got {self.class_weights!r}")
        if self.sampler not in ("shuffle", "balanced"):
            raise ConfigError(f"--sampler must be 'shuffle' or 'balanced', got {self.sampler!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}, got {self.normalize!r}")
        _number("--clip-grad", self.clip_grad, "is a positive gradient norm, at most 1e6 (above that it never "
                "clips; leave the flag out to switch clipping off)", 0.0, 1e6, low_open=True, optional=True)
        _number("--momentum", self.momentum, "must be in [0, 1)", 0.0, 1.0, high_open=True, optional=True)
        _number("--weight-decay", self.weight_decay, "must be in [0, 1] (0.0005 for sgd and 0.004 for adamw are "
                "usual)", 0.0, 1.0, optional=True)
        if self.monitor not in MONITORS:
            raise ConfigError(f"--monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")
        _count("--patience", self.patience, 1, MAX_EPOCHS, unit=" epoch", optional=True)
        _number("--min-delta", self.min_delta, "is a change of accuracy or loss: 0 or more, at most 1e6", 0.0, 1e6)
        if not (self.guard == 0 or _in_range(self.guard, 1.0, 1e6, low_open=True)):
            raise ConfigError(f"--guard is a factor above 1 (e.g. 10) and at most 1e6, or 0 to switch it off; "
                              f"got {self.guard!r}")
        _count("--checkpoint-every", self.checkpoint_every, 1, MAX_STEPS, unit=" step", optional=True)
        # the same bounds as the data loaders' (konbu.data): refused here, before the data is read
        _count("--image-size", self.image_size, 4, 1024, unit=" pixels", optional=True)
        _count("--threads", self.threads, 1, 1024, optional=True)
        _count("--seed", self.seed, 0, 2**32 - 1, why=" (numpy's generators take seeds below 2**32)")
        if self.from_run is not None and (not isinstance(self.from_run, str) or not self.from_run.strip()):
            raise ConfigError(f"--from-run takes a run directory `konbu train` wrote, got {self.from_run!r}")
        self._check_pretrained()

    def _check_pretrained(self):
        """--weights and the fine-tuning flags: only with a pretrained backbone, and in range."""
        # the prefixes of models.backbones and models.timm_backbones, not imported: they import torch
        pretrained = isinstance(self.model, str) and self.model.startswith(("pretrained:", "timm:"))
        if self.weights is not None and not pretrained:
            raise ConfigError("--weights gives a pretrained backbone's weights; pass --model pretrained:NAME or "
                              "timm:NAME too (konbu models lists them)")
        if self.fine_tune and not pretrained:
            raise ConfigError("--fine-tune freezes and unfreezes a pretrained backbone; pass --model "
                              "pretrained:NAME or timm:NAME")
        _count("--freeze-epochs", self.freeze_epochs, 1, MAX_EPOCHS, unit=" epoch")
        if self.fine_tune and self.steps is None and self.freeze_epochs >= self.epochs:
            raise ConfigError(f"--freeze-epochs {self.freeze_epochs} leaves no epoch of --epochs {self.epochs} to "
                              "fine-tune in: stage 1 takes the first --freeze-epochs of --epochs")
        unfreeze_blocks(self.unfreeze)
        _number("--backbone-lr-ratio", self.backbone_lr_ratio, "is the backbone's learning rate as a fraction "
                "of the head's, in (0, 1] (e.g. 0.1)", 0.0, 1.0, low_open=True)

    def total_steps(self, steps_per_epoch: int) -> int:
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch

    def last_epoch(self, steps_per_epoch: int) -> int:
        return -(-self.steps // steps_per_epoch) if self.steps is not None else self.epochs


def unfreeze_blocks(text) -> int | None:
    """--unfreeze as a block count: "top:K" -> K, "all" -> None; a ConfigError for anything else."""
    if text == "all":
        return None
    kind, _, count = str(text).partition(":")
    if kind != "top" or not count.isdigit() or int(count) < 1:
        raise ConfigError(f"--unfreeze takes top:K (the top K blocks of the backbone, K >= 1) or all, got {text!r}")
    return int(count)


# monitored metric -> "max" or "min" (which direction is better)
MONITORS = {"val_accuracy": "max", "val_loss": "min", "train_accuracy": "max", "train_loss": "min"}


# Upper bounds of the counts: far above any real run, low enough that nothing overflows or allocates
# for them (a step count ends up in int64 tensors, a seed in numpy's uint32 generator)
MAX_EPOCHS = 1_000_000
MAX_STEPS = 1_000_000_000
MAX_BATCH = 1 << 20
# far above any rate that trains (the divergence guard's tests force 1e3), finite: inf and 1e30 are typos
MAX_LR = 1e6


def _count(flag, value, low, high, unit="", why="", optional=False):
    """A whole number in low..high (None allowed when optional), else a ConfigError naming `flag`."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{flag} must be a whole number, got {value!r}")
    if not value >= low:
        raise ConfigError(f"{flag} must be at least {low}{unit}, got {value}")
    if not value <= high:
        raise ConfigError(f"{flag} must be at most {high:,}{unit}{why}, got {value:,}")


def _in_range(value, low, high, low_open=False, high_open=False) -> bool:
    """True for a real number (not a bool) inside the bounds; False for NaN, inf out of them, or text."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return (low < value if low_open else low <= value) and (value < high if high_open else value <= high)


def _number(flag, value, expected, low, high, low_open=False, high_open=False, optional=False):
    """A real number in the bounds (None allowed when optional), else ConfigError '`flag` `expected`'."""
    if value is None and optional:
        return
    if not _in_range(value, low, high, low_open, high_open):
        raise ConfigError(f"{flag} {expected}, got {value!r}")
