"""Is konbu faster than Keras? chollet-mnist trained by Keras 3, by a plain PyTorch loop and by konbu.

All three train the same network (Deep Learning with Python 5.1, 93,322 parameters) on the same
4,000 mnist-sample train images, batch 64, RMSprop lr 1e-3, the same number of epochs and CPU
threads, in one run, and are tested on the same 1,000 test images. From the repository root:

    .venv/bin/python benchmarks/train_vs_keras.py --epochs 5 --threads 2

Keras runs in its own virtualenv as a subprocess (TensorFlow is never a konbu dependency):

    python3 -m venv benchmarks/.venv-keras
    benchmarks/.venv-keras/bin/pip install tensorflow-cpu keras numpy

images/s counts epochs 2..E only, for every row: epoch 1 pays one-off costs (Keras traces and
compiles its train step; PyTorch warms its allocator and oneDNN kernels), so it is printed apart.
Nothing here asserts a timing; the targets (konbu/Keras >= 2.0, accuracy no lower than Keras's)
are reported, not enforced.
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

try:
    import konbu  # noqa: F401  (installed with `pip install -e .`)
except ImportError:
    sys.path.insert(0, str(REPOSITORY / "src"))  # a bare checkout: use its src/ directly
from konbu.data import load_dataset  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs for every row (at least 2)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for every row")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--konbu-precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="konbu's precision; auto is bf16 autocast where the CPU has native bf16")
    parser.add_argument("--keras-python", type=Path, default=KERAS_PYTHON,
                        help="python of the virtualenv holding tensorflow-cpu and keras")
    arguments = parser.parse_args()
    if arguments.epochs < 2:
        parser.error("--epochs must be at least 2: epoch 1 is warm-up and is not timed")
    if arguments.threads < 1:
        parser.error("--threads must be at least 1")
    # absolute, not resolved: resolving a virtualenv's python follows its symlink out of the venv
    arguments.keras_python = arguments.keras_python.absolute()
    return arguments


@dataclass
class Result:
    """One row of the table."""

    name: str
    images_per_second: float     # train images / wall second, epochs 2..E
    first_epoch_seconds: float   # warm-up epoch, shown so a slow start is not hidden
    test_accuracy: float
    note: str = ""
    other_cpu_share: float | None = None  # of all cores, taken by other processes while it trained


def images_per_second_after_warm_up(images_per_epoch, epoch_seconds):
    """Train images per wall second over epochs 2..E (epoch 1 is the warm-up)."""
    return sum(images_per_epoch[1:]) / sum(epoch_seconds[1:])


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


def train_keras(arguments, data_path, train_size) -> Result:
    """Run `_keras_side.py` in the Keras virtualenv and read the JSON line it prints last."""
    environment = dict(os.environ,
                       OMP_NUM_THREADS=str(arguments.threads),
                       TF_CPP_MIN_LOG_LEVEL="2",   # TensorFlow's banners would bury the JSON line
                       CUDA_VISIBLE_DEVICES="")    # a CPU benchmark, even where a GPU build is installed
    command = [str(arguments.keras_python), str(KERAS_SIDE), str(data_path),
               "--epochs", str(arguments.epochs), "--batch-size", str(arguments.batch_size),
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
        images_per_second=images_per_second_after_warm_up([train_size] * len(seconds), seconds),
        first_epoch_seconds=seconds[0],
        test_accuracy=report["test_accuracy"],
        note=f"{report['parameters']:,} parameters",
    )


# --------------------------------------------------------------------------- Plain PyTorch row


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


def train_plain_pytorch(arguments, train, test) -> Result:
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
        for start in range(0, len(images), arguments.batch_size):
            batch = order[start:start + arguments.batch_size]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epoch_seconds.append(time.perf_counter() - started)
    return Result(
        name="plain PyTorch",
        images_per_second=images_per_second_after_warm_up([len(images)] * len(epoch_seconds), epoch_seconds),
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


def train_konbu(arguments, train_size):
    """konbu.fit on the same data and settings; None (with the reason printed) if it can't run yet."""
    try:
        import konbu
        fit, load = konbu.fit, konbu.load_dataset
    except (ImportError, AttributeError) as error:
        print(f"konbu row skipped: konbu.fit is not importable yet ({error})")
        return None
    # konbu's images_per_second times the training pass alone; the weights and checkpoint it writes
    # after every epoch fall outside it. Timing its "epoch" events too shows what those writes cost:
    # consecutive events are one whole epoch apart, writes included.
    epoch_event_times = []

    def record_epoch_event(event):
        if event.kind == "epoch":
            epoch_event_times.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="konbu-vs-keras-") as out:
        run = fit(model="chollet-mnist", dataset="mnist-sample", epochs=arguments.epochs,
                  batch_size=arguments.batch_size, optimizer="rmsprop", lr=arguments.learning_rate,
                  lr_schedule="constant",  # Keras's fit keeps the rate constant too
                  augment="none", label_smoothing=0.0,   # the same task as the Keras and PyTorch rows
                  val_fraction=0.0,  # every epoch trains all 4,000 images, as on the other rows
                  device="cpu",      # Keras runs on its CPU backend; a GPU here would compare nothing
                  precision=arguments.konbu_precision,
                  seed=arguments.seed, threads=arguments.threads, out=out, quiet=True,
                  listeners=[record_epoch_event])
        metrics = run.evaluate(load("mnist-sample", "test"))
        history = run.history  # read from the run directory, so before it is deleted
    training_seconds = [train_size / entry["images_per_second"] for entry in history]
    epoch_periods = [later - earlier for earlier, later in zip(epoch_event_times, epoch_event_times[1:])]
    return Result(
        name="konbu",
        images_per_second=images_per_second_after_warm_up([train_size] * len(training_seconds), training_seconds),
        first_epoch_seconds=training_seconds[0],
        test_accuracy=metrics["accuracy"],
        note=(f"{run.info['precision']}, channels_last={run.info['channels_last']}; "
              f"{train_size * len(epoch_periods) / sum(epoch_periods):,.0f} images/s counting its per-epoch saves"),
    )


# ------------------------------------------------------------------------------------- Report


def print_table(arguments, train_size, test_size, rows):
    print()
    print(f"chollet-mnist on mnist-sample ({train_size:,} train / {test_size:,} test), batch "
          f"{arguments.batch_size}, RMSprop lr {arguments.learning_rate:g}, {arguments.epochs} epochs, "
          f"{arguments.threads} threads (torch {torch.__version__}, {os.cpu_count()} CPUs)")
    print(f"images/s over epochs 2..{arguments.epochs}; epoch 1 is warm-up, its seconds shown apart")
    print("others CPU: share of all cores other processes used while the row trained; "
          "more than a few % means that row is slowed")
    print()
    name_width = max(len(row.name) for row in rows)
    print(f"{'':{name_width}}  {'images/s':>9}  {'epoch 1 s':>9}  {'test accuracy':>13}  {'others CPU':>10}")
    for row in rows:
        others = "n/a" if row.other_cpu_share is None else f"{row.other_cpu_share:.0%}"
        print(f"{row.name:{name_width}}  {row.images_per_second:9,.0f}  {row.first_epoch_seconds:9.2f}  "
              f"{row.test_accuracy:13.4f}  {others:>10}  {row.note}")
    print()


def print_ratios(keras, plain, konbu):
    if konbu is None:
        print(f"plain PyTorch / Keras: {plain.images_per_second / keras.images_per_second:.2f}")
        return
    speed_ratio = konbu.images_per_second / keras.images_per_second
    accuracy_points = 100 * (konbu.test_accuracy - keras.test_accuracy)
    print(f"konbu / Keras:         {speed_ratio:.2f}  (target >= {SPEED_TARGET}: "
          f"{'met' if speed_ratio >= SPEED_TARGET else 'not met'})")
    print(f"konbu / plain PyTorch: {konbu.images_per_second / plain.images_per_second:.2f}")
    # One seed on 1,000 test images: a point or so either way is within run-to-run noise.
    print(f"test accuracy, konbu - Keras: {accuracy_points:+.1f} points (target >= 0: "
          f"{'met' if accuracy_points >= 0 else 'not met'})")


# --------------------------------------------------------------------------------------- Main


def main(arguments):
    # Checked first: the data and the PyTorch rows take a while, and are no use without Keras.
    if not arguments.keras_python.exists():
        sys.exit(f"Keras virtualenv not found: {arguments.keras_python}\n"
                 f"Create it (from the repository root) with:\n    {KERAS_VENV_COMMAND}")

    # ---- Prepare the data: one export, read by all three rows, so they see identical images.
    train = load_dataset("mnist-sample", "train")
    test = load_dataset("mnist-sample", "test")
    torch.set_num_threads(arguments.threads)

    # ---- Keras first, while this process is idle, so the two never compete for the cores.
    with tempfile.TemporaryDirectory(prefix="konbu-vs-keras-") as directory:
        data_path = Path(directory) / "mnist-sample.npz"
        np.savez(data_path, train_images=train.images.numpy(), train_labels=train.labels.numpy(),
                 test_images=test.images.numpy(), test_labels=test.labels.numpy())
        print(f"training with Keras ({arguments.keras_python}) ...", flush=True)
        keras_result = with_other_cpu_share(train_keras, arguments, data_path, len(train))

    print("training with plain PyTorch ...", flush=True)
    plain_result = with_other_cpu_share(train_plain_pytorch, arguments, train, test)

    print("training with konbu ...", flush=True)
    konbu_result = with_other_cpu_share(train_konbu, arguments, len(train))

    rows = [row for row in (keras_result, plain_result, konbu_result) if row is not None]
    print_table(arguments, len(train), len(test), rows)
    print_ratios(keras_result, plain_result, konbu_result)


if __name__ == "__main__":
    main(parse_arguments())
