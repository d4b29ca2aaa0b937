"""Is konbu faster than Keras? The tutorials' MNIST models trained by Keras 3, by a plain PyTorch loop
and by konbu, in fp32 and bf16, in one process and in data-parallel processes.

Every row trains the same network (konbu's zoo entry, built layer for layer in Keras by
_keras_side.py) on the same 4,000 mnist-sample train images, with RMSprop lr 1e-3 (Keras's
defaults), inputs scaled to [0, 1], no augmentation, the same batch, epochs and CPU cores, and is
tested on the same 1,000 test images. From the repository root:

    .venv/bin/python benchmarks/train_vs_keras.py --epochs 5                 # chollet-mnist, batch 64
    .venv/bin/python benchmarks/train_vs_keras.py --models all --batch-sizes 64,256 --repeats 2

Keras runs in its own virtualenv as a subprocess (TensorFlow is never a konbu dependency):

    python3 -m venv benchmarks/.venv-keras
    benchmarks/.venv-keras/bin/pip install tensorflow-cpu keras numpy

konbu's rows: each --konbu-precision (default fp32, and bf16 where the CPU has it natively) in each
--nproc (default 1 and 2: one process with every core, or one single-thread process per core,
DistributedDataParallel over gloo, the same global batch). images/s counts epochs 2..E only, for
every row: epoch 1 pays one-off costs (Keras traces and compiles its train step; PyTorch warms its
allocator and oneDNN kernels), so it is printed apart; `run s` is konbu's whole fit() call, the
processes' start-up included. These machines are shared and noisy (one Keras run's epochs ranged
2,800-6,300 images/s): --repeats R trains every row R times, interleaved, and the headline figure
is each row's fastest epoch, the mean beside it. Repeat r uses seed --seed + r in every row, and
a row's test accuracy is the mean over its repeats: one seed of 80 steps moves it by points.
Nothing here asserts a timing; the targets (konbu/Keras >= 2.0 in fp32 and in bf16, accuracy no
lower than Keras's) are reported, not enforced.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPOSITORY = Path(__file__).resolve().parent.parent
KERAS_SIDE = REPOSITORY / "benchmarks" / "_keras_side.py"
KERAS_PYTHON = REPOSITORY / "benchmarks" / ".venv-keras" / "bin" / "python"
KERAS_VENV_COMMAND = ("python3 -m venv benchmarks/.venv-keras && "
                      "benchmarks/.venv-keras/bin/pip install tensorflow-cpu keras numpy")
SPEED_TARGET = 2.0  # from the issue: konbu at least twice Keras's images/s
MODELS = ("chollet-mnist", "tfjs-mnist", "deep-mnist", "lenet")

try:
    import konbu  # noqa: F401  (installed with `pip install -e .`)
except ImportError:
    sys.path.insert(0, str(REPOSITORY / "src"))  # a bare checkout: use its src/ directly
from konbu.data import load_dataset  # noqa: E402
from konbu.device import cpu_has_bf16  # noqa: E402


def _names(text: str, allowed, what: str) -> list:
    names = list(allowed) if text == "all" else [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {unknown[0] if unknown else text!r}; "
                                         f"expected some of {', '.join(allowed)} or all")
    return names


def _counts(text: str) -> list:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected numbers of at least 1, got {text!r}")
    return counts


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=lambda text: _names(text, MODELS, "model"), default=["chollet-mnist"],
                        help=f"comma-separated, or all: {', '.join(MODELS)}")
    parser.add_argument("--batch-sizes", type=_counts, default=[64], help="comma-separated, e.g. 64,256")
    parser.add_argument("--epochs", type=int, default=5, help="epochs for every row (at least 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU cores every row uses")
    parser.add_argument("--konbu-precision", type=lambda text: _names(text, ("fp32", "bf16"), "precision"),
                        default=["fp32", "bf16"] if cpu_has_bf16() else ["fp32"],
                        help="konbu rows' precisions (default: fp32, and bf16 where the CPU has it natively)")
    parser.add_argument("--nproc", type=_counts, default=[1, 2],
                        help="konbu rows' process counts: 1 (all cores in one process) and N (N processes, "
                             "the cores shared out)")
    parser.add_argument("--repeats", type=int, default=1, help="train every row this many times; keep the best")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras-python", type=Path, default=KERAS_PYTHON,
                        help="python of the virtualenv holding tensorflow-cpu and keras")
    arguments = parser.parse_args()
    if arguments.epochs < 2:
        parser.error("--epochs must be at least 2: epoch 1 is warm-up and is not timed")
    if arguments.threads < 1 or arguments.repeats < 1:
        parser.error("--threads and --repeats must be at least 1")
    # absolute, not resolved: resolving a virtualenv's python follows its symlink out of the venv
    arguments.keras_python = arguments.keras_python.absolute()
    return arguments


@dataclass
class Result:
    """One row of a table."""

    name: str
    epoch_rates: list            # train images / wall second of each epoch 2..E
    first_epoch_seconds: float   # warm-up epoch, shown so a slow start is not hidden
    test_accuracy: float
    note: str = ""
    other_cpu_share: float | None = None  # of all cores, taken by other processes while it trained
    run_seconds: float | None = None      # konbu: the whole fit() call

    @property
    def images_per_second(self) -> float:
        """The fastest epoch: on a shared machine other load only ever slows an epoch down, so the
        fastest is the best estimate of the row's own speed (as timeit keeps the minimum)."""
        return max(self.epoch_rates)

    @property
    def mean_images_per_second(self) -> float:
        return len(self.epoch_rates) / sum(1 / rate for rate in self.epoch_rates)


def rates_after_warm_up(images: int, epoch_seconds) -> list:
    """Train images per wall second of epochs 2..E (epoch 1 is the warm-up)."""
    return [images / seconds for seconds in epoch_seconds[1:]]


# -------------------------------------------------------------------------------- Machine load
# The rows run one after another on the same few cores, so anything else running (a test suite,
# another benchmark) slows whichever row it overlaps. Each row reports how much of the machine
# other processes took meanwhile: Linux's /proc/stat busy time minus this process's own (and its
# waited-for children's, which is the Keras subprocess).


def cpu_snapshot():
    """(wall seconds, machine busy CPU seconds, own CPU seconds), or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    busy_ticks = user + nice + system + irq + softirq + steal  # steal: other virtual machines
    own = os.times()
    own_seconds = own.user + own.system + own.children_user + own.children_system
    return time.perf_counter(), busy_ticks / os.sysconf("SC_CLK_TCK"), own_seconds


def with_other_cpu_share(train_row, *row_arguments):
    """Run one row's training function and attach the share of the machine others used meanwhile."""
    before = cpu_snapshot()
    result = train_row(*row_arguments)
    after = cpu_snapshot()
    if result is not None and before is not None:
        wall, busy, own = (end - start for start, end in zip(before, after))
        result.other_cpu_share = max(0.0, busy - own) / (wall * os.cpu_count())
    return result


# ----------------------------------------------------------------------------------- Keras row


def train_keras(arguments, data_path, train_size, model, batch_size) -> Result:
    """Run `_keras_side.py` in the Keras virtualenv and read the JSON line it prints last."""
    environment = dict(os.environ,
                       OMP_NUM_THREADS=str(arguments.threads),
                       TF_CPP_MIN_LOG_LEVEL="2",   # TensorFlow's banners would bury the JSON line
                       CUDA_VISIBLE_DEVICES="")    # a CPU benchmark, even where a GPU build is installed
    command = [str(arguments.keras_python), str(KERAS_SIDE), str(data_path), "--model", model,
               "--epochs", str(arguments.epochs), "--batch-size", str(batch_size),
               "--learning-rate", str(arguments.learning_rate), "--threads", str(arguments.threads),
               "--seed", str(arguments.seed)]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=REPOSITORY)
    json_lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not json_lines:
        sys.exit(f"the Keras side failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    report = json.loads(json_lines[-1])
    seconds = report["epoch_seconds"]
    return Result(
        name=f"Keras {report['keras_version']} (TF {report['tensorflow_version']})",
        epoch_rates=rates_after_warm_up(train_size, seconds),
        first_epoch_seconds=seconds[0],
        test_accuracy=report["test_accuracy"],
        note=f"{report['parameters']:,} parameters",
    )


# --------------------------------------------------------------------------- Plain PyTorch row
# chollet-mnist only: the baseline of the table, the loop anyone writes first


def build_plain_model() -> nn.Sequential:
    """chollet-mnist as anyone would first write it in PyTorch; shapes are (B, C, H, W)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),    # (B, 32, 13, 13)
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),   # (B, 64, 5, 5)
        nn.Conv2d(64, 64, 3), nn.ReLU(),                    # (B, 64, 3, 3)
        nn.Flatten(),                                       # (B, 576)
        nn.Linear(576, 64), nn.ReLU(),
        nn.Linear(64, 10),  # logits: cross_entropy applies the softmax Keras puts in the layer
    )


def train_plain_pytorch(arguments, train, test, batch_size) -> Result:
    """The naive loop: fp32, float copy of the data, default layouts, no fusion, no autocast."""
    torch.manual_seed(arguments.seed)
    model = build_plain_model()
    # Keras's RMSprop defaults (rho 0.9, epsilon 1e-7), not PyTorch's (alpha 0.99, eps 1e-8).
    optimizer = torch.optim.RMSprop(model.parameters(), lr=arguments.learning_rate, alpha=0.9, eps=1e-7)
    images = train.images.float() / 255  # [N, 1, 28, 28], scaled like the Keras side
    labels = train.labels
    epoch_seconds = []
    for epoch in range(arguments.epochs):
        started = time.perf_counter()
        model.train()
        # The train split is sorted by label, so an unshuffled epoch would train digit by digit.
        order = torch.randperm(len(images))
        for start in range(0, len(images), batch_size):
            batch = order[start:start + batch_size]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epoch_seconds.append(time.perf_counter() - started)
    return Result(
        name="plain PyTorch",
        epoch_rates=rates_after_warm_up(len(images), epoch_seconds),
        first_epoch_seconds=epoch_seconds[0],
        test_accuracy=plain_test_accuracy(model, test),
        note=f"{sum(parameter.numel() for parameter in model.parameters()):,} parameters",
    )


@torch.no_grad()
def plain_test_accuracy(model, test) -> float:
    model.eval()
    predictions = model(test.images.float() / 255).argmax(dim=1)
    return (predictions == test.labels).float().mean().item()


# ----------------------------------------------------------------------------------- konbu row


def train_konbu(arguments, train_size, model, batch_size, precision, nproc) -> Result:
    """konbu.fit on the same data and settings, in `nproc` processes."""
    import konbu
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="konbu-vs-keras-") as out:
        run = konbu.fit(model=model, dataset="mnist-sample", epochs=arguments.epochs, batch_size=batch_size,
                        optimizer="rmsprop", lr=arguments.learning_rate,
                        lr_schedule="constant",  # Keras's fit keeps the rate constant too
                        augment="none", label_smoothing=0.0,   # the same task as the other rows
                        val_fraction=0.0,  # every epoch trains all 4,000 images, as on the other rows
                        device="cpu",      # Keras runs on its CPU backend; a GPU here would compare nothing
                        precision=precision, seed=arguments.seed, out=out, quiet=True, nproc=nproc,
                        threads=arguments.threads if nproc == 1 else max(1, arguments.threads // nproc))
        seconds = time.perf_counter() - started
        history, final = run.history, run.info["final"]   # read from the run directory, before it is deleted
    # konbu's images_per_second times the training pass alone (the global batch, on rank 0)
    training_seconds = [train_size / entry["images_per_second"] for entry in history]
    return Result(
        name=f"konbu {precision}" + (f", {nproc} processes" if nproc > 1 else ""),
        epoch_rates=rates_after_warm_up(train_size, training_seconds),
        first_epoch_seconds=training_seconds[0],
        test_accuracy=final["test_accuracy"],
        run_seconds=seconds,
    )


# ------------------------------------------------------------------------------------- Report


def pooled(results: list) -> Result:
    """The repeats as one row: every repeat's epochs, the mean of their test accuracies (one seed
    each), the first repeat's run seconds."""
    first = results[0]
    accuracy = sum(result.test_accuracy for result in results) / len(results)
    return Result(first.name, [rate for result in results for rate in result.epoch_rates],
                  min(result.first_epoch_seconds for result in results), accuracy, first.note,
                  max(result.other_cpu_share or 0.0 for result in results), first.run_seconds)


def print_table(arguments, model, batch_size, rows):
    print(f"\n{model}, batch {batch_size}:")
    name_width = max(len(row.name) for row in rows)
    print(f"  {'':{name_width}}  {'images/s':>9}  {'vs Keras':>8}  {'mean':>7}  {'vs Keras':>8}  {'epoch 1 s':>9}  "
          f"{'run s':>6}  {'test acc':>8}  {'others CPU':>10}")
    keras = rows[0]
    for row in rows:
        others = "n/a" if row.other_cpu_share is None else f"{row.other_cpu_share:.0%}"
        run = "" if row.run_seconds is None else f"{row.run_seconds:.1f}"
        print(f"  {row.name:{name_width}}  {row.images_per_second:9,.0f}  "
              f"{row.images_per_second / keras.images_per_second:8.2f}  {row.mean_images_per_second:7,.0f}  "
              f"{row.mean_images_per_second / keras.mean_images_per_second:8.2f}  {row.first_epoch_seconds:9.2f}  "
              f"{run:>6}  {row.test_accuracy:8.4f}  {others:>10}  {row.note}")


def print_summary(arguments, tables):
    """Per model and batch: konbu's best row in each precision against Keras, and the targets."""
    print(f"\nkonbu / Keras images/s (target >= {SPEED_TARGET}); the best of --nproc "
          f"{','.join(map(str, arguments.nproc))} per precision; accuracy in points against Keras:")
    for (model, batch_size), rows in tables.items():
        keras = rows[0]
        cells = []
        for precision in arguments.konbu_precision:
            ours = [row for row in rows if row.name.startswith(f"konbu {precision}")]
            top = max(ours, key=lambda row: row.images_per_second)
            ratio = top.images_per_second / keras.images_per_second
            processes = top.name.partition(", ")[2] or "1 process"
            cells.append(f"{precision} {ratio:4.2f} ({processes}, {'met' if ratio >= SPEED_TARGET else 'not met'}, "
                         f"{100 * (top.test_accuracy - keras.test_accuracy):+.1f} pts)")
        print(f"  {model:13} batch {batch_size:<4} " + "   ".join(cells))


# --------------------------------------------------------------------------------------- Main


def main(arguments):
    # Checked first: the data and the PyTorch rows take a while, and are no use without Keras.
    if not arguments.keras_python.exists():
        sys.exit(f"Keras virtualenv not found: {arguments.keras_python}\n"
                 f"Create it (from the repository root) with:\n    {KERAS_VENV_COMMAND}")
    train = load_dataset("mnist-sample", "train")
    test = load_dataset("mnist-sample", "test")
    torch.set_num_threads(arguments.threads)
    bf16 = "AVX512-BF16 or AMX: native bf16" if cpu_has_bf16() else "no native bf16 (AVX2-class)"
    print(f"mnist-sample ({len(train):,} train / {len(test):,} test), RMSprop lr {arguments.learning_rate:g}, "
          f"{arguments.epochs} epochs, {arguments.threads} cores per row, best of {arguments.repeats}; torch "
          f"{torch.__version__}, {os.cpu_count()} CPUs, {bf16}")
    print("images/s: the fastest of epochs 2..E over the repeats; mean: over all of them; test acc: the mean "
          f"over the repeats, seeds {arguments.seed}..{arguments.seed + arguments.repeats - 1}; others CPU: the "
          "share of all cores other processes used meanwhile (more than a few % slows that row)")

    tables = {}
    with tempfile.TemporaryDirectory(prefix="konbu-vs-keras-") as directory:
        # one export, read by every row, so they all see identical images
        data_path = Path(directory) / "mnist-sample.npz"
        np.savez(data_path, train_images=train.images.numpy(), train_labels=train.labels.numpy(),
                 test_images=test.images.numpy(), test_labels=test.labels.numpy())
        for model in arguments.models:
            for batch_size in arguments.batch_sizes:
                rows = {}   # name -> results of the repeats; rows run interleaved, Keras first
                for repeat in range(arguments.repeats):
                    print(f"training {model}, batch {batch_size} ...", flush=True)
                    # each repeat its own seed, the same for every row: accuracy is compared over seeds
                    seeded = argparse.Namespace(**{**vars(arguments), "seed": arguments.seed + repeat})
                    results = [with_other_cpu_share(train_keras, seeded, data_path, len(train), model, batch_size)]
                    if model == "chollet-mnist":
                        results.append(with_other_cpu_share(train_plain_pytorch, seeded, train, test, batch_size))
                    for precision in arguments.konbu_precision:
                        for nproc in arguments.nproc:
                            results.append(with_other_cpu_share(train_konbu, seeded, len(train), model,
                                                                batch_size, precision, nproc))
                    for result in results:
                        rows.setdefault(result.name, []).append(result)
                tables[model, batch_size] = [pooled(results) for results in rows.values()]
                print_table(arguments, model, batch_size, tables[model, batch_size])
    print_summary(arguments, tables)


if __name__ == "__main__":
    main(parse_arguments())
