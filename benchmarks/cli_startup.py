"""How long does the `konbu` command take to start? `--help` and a cold `konbu predict`, against `import torch`.

    .venv/bin/python benchmarks/cli_startup.py                       # trains a tiny tfjs-mnist run first
    .venv/bin/python benchmarks/cli_startup.py --run /tmp/startup-run --repeat 5

Every figure is the median wall time of --repeat fresh processes (each one a new Python, so "cold"
for the interpreter and its imports; the files are in the OS page cache after the untimed warm-up
call of each command, as they are on a machine that has run konbu before). The baseline is
`python -c "import torch"` with the same Python: what any PyTorch program pays before its first line.

The issue's targets: every `--help` <= 0.5 s (it must not import torch at all), and
`konbu predict RUN img.png` at most 1 s more than `import torch`. The script reports them; it asserts
nothing (shared machines are noisy: run it on an idle one, or twice).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

HELP_TARGET_S = 0.5       # from the issue: every --help
PREDICT_EXTRA_TARGET_S = 1.0   # from the issue: konbu predict, cold, minus `import torch`
HELP_COMMANDS = [[], ["train"], ["predict"], ["serve"], ["export"], ["show", "gradcam"], ["datasets", "info"]]


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run directory (default: train tfjs-mnist for 30 steps first)")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per figure (the median is shown)")
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    return arguments


def konbu_command() -> list:
    """The installed `konbu` script beside this Python (what a user types), else `python -m konbu`."""
    script = Path(sys.executable).parent / "konbu"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "konbu"]


def median_seconds(command: list, repeat: int) -> float:
    """Median wall time of `repeat` runs of `command` (after one untimed warm-up); exits on a failure."""
    times = []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        finished = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - started
        if finished.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed (exit {finished.returncode}):\n{finished.stderr}")
        if attempt:   # the first run only warms the page cache
            times.append(elapsed)
    return statistics.median(times)


def tiny_run(folder: Path) -> Path:
    out = folder / "startup-run"
    subprocess.run([*konbu_command(), "train", "--model", "tfjs-mnist", "--steps", "30", "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return out


def digit_png(folder: Path) -> Path:
    """A hand-drawn-looking 7 on black, 28x28 (the image itself does not matter: startup is measured)."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (28, 28))
    ImageDraw.Draw(image).line([(7, 6), (21, 6), (12, 23)], fill=255, width=3)
    path = folder / "digit.png"
    image.save(path)
    return path


def main():
    arguments = parse_arguments()
    cpu = "AVX512-BF16" if "avx512_bf16" in Path("/proc/cpuinfo").read_text() else "AVX2-only (no AVX512-BF16)"
    print(f"machine: {os.cpu_count()} cores, {cpu}; Python {sys.version.split()[0]}, torch {version('torch')}; "
          f"median of {arguments.repeat} fresh processes\n")
    konbu = konbu_command()
    with tempfile.TemporaryDirectory() as folder:
        run_dir = arguments.run.resolve() if arguments.run else tiny_run(Path(folder))
        image = digit_png(Path(folder))
        torch_s = median_seconds([sys.executable, "-c", "import torch"], arguments.repeat)
        rows = [("python -c 'import torch'", torch_s, None)]
        for words in HELP_COMMANDS:
            rows.append((" ".join(["konbu", *words, "--help"]),
                         median_seconds([*konbu, *words, "--help"], arguments.repeat), HELP_TARGET_S))
        predict_s = median_seconds([*konbu, "predict", str(run_dir), str(image)], arguments.repeat)
    rows.append(("konbu predict RUN digit.png", predict_s, torch_s + PREDICT_EXTRA_TARGET_S))

    print(f"{'command':<34} {'median s':>9} {'/ torch':>8} {'- torch s':>10}  target")
    for name, seconds, target in rows:
        verdict = "" if target is None else f"<= {target:.2f} s: {'met' if seconds <= target else 'NOT met'}"
        print(f"{name:<34} {seconds:>9.3f} {seconds / torch_s:>8.2f} {seconds - torch_s:>+10.3f}  {verdict}")
    slowest_help = max(seconds for name, seconds, target in rows if target == HELP_TARGET_S)
    print(f"\nslowest --help: {slowest_help:.3f} s (target <= {HELP_TARGET_S} s); "
          f"konbu predict - import torch: {predict_s - torch_s:+.3f} s (target <= {PREDICT_EXTRA_TARGET_S} s)")


if __name__ == "__main__":
    main()
