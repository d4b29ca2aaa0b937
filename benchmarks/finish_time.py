"""How long does a run take to finish after its last epoch? Test evaluation, calibration, figures, diagnosis, report.

    .venv/bin/python benchmarks/finish_time.py                    # trains the default `konbu train` run first
    .venv/bin/python benchmarks/finish_time.py --run runs/chollet-mnist-... --repeat 5

It finishes a copy of a trained run again, in this process, the way `fit()` does at its end
(`konbu.train.finish.finish_run`: the kept weights on the test split, the temperature on the
validation split, run.json, every figure, the diagnosis checks and report.html), --repeat times, and
prints the total against the issue's target, 3 s, two ways, interleaved: as konbu does it (the
curves, confusion and mistakes drawn in a forked child) and all in one process (the baseline), with
each stage's seconds from the latter. The first finish is a warm-up (matplotlib's fonts, the
dataset's cache) and is not counted: a training process has paid those by its end. The diagnosis
runs in a thread beside the figures, so its seconds overlap theirs. It asserts nothing (shared
machines are noisy: run it on an idle one, or twice).
"""

import argparse
import functools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

import konbu.forked as forked
import konbu.reporting as reporting
import konbu.train.finish as finish
from konbu.evaluate import resolve_dataset
from konbu.runs import Run, read_metrics, saved_config

TARGET_S = 3.0            # from the issue: the time after the last epoch
STAGES = {finish: ["fit_calibration", "build_report"],
          reporting: ["plot_curves", "_draw_weights", "draw_reliability", "plot_confusion", "draw_mistakes",
                      "write_diagnosis", "write_report"]}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run directory (default: train `konbu train`'s run first)")
    parser.add_argument("--repeat", type=int, default=3, help="timed finishes (the median is shown)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    return arguments


def timed_stages(seconds: dict):
    """Wrap each stage function where finish_run and build_report look it up; add its time to `seconds`."""
    for module, names in STAGES.items():
        for name in names:
            function = getattr(module, name)

            @functools.wraps(function)
            def timed(*args, _function=function, _name=name, **kwargs):
                started = time.perf_counter()
                try:
                    return _function(*args, **kwargs)
                finally:
                    seconds[_name] += time.perf_counter() - started
            setattr(module, name, timed)


def finish_copy(source: Path, folder: Path) -> float:
    """Seconds to finish a fresh copy of `source` (its weights, metrics and run.json)."""
    copy = folder / f"run-{time.monotonic_ns()}"
    shutil.copytree(source, copy)
    info = json.loads((copy / "run.json").read_text())
    loaded = Run.load(copy)
    test = resolve_dataset(loaded, None)
    val = reporting.run_validation_split(loaded) if saved_config(info).get("val_fraction") else None
    epochs = [record for record in read_metrics(copy) if record.get("kind") == "epoch"]
    started = time.perf_counter()
    finish.finish_run(copy, info, test, val, epochs, info.get("weights_epoch", 0), "cpu")
    return time.perf_counter() - started


def main():
    arguments = parse_arguments()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        source = arguments.run
        if source is None:
            source = scratch / "trained"
            print("training the default run (`konbu train`) ...", flush=True)
            subprocess.run([sys.executable, "-m", "konbu", "train", "--out", str(source)], check=True,
                           stdout=subprocess.DEVNULL)
        finish_copy(source, scratch)                       # warm-up, not counted
        seconds = defaultdict(float)
        timed_stages(seconds)
        totals, per_stage = {"forked": [], "one process": []}, defaultdict(list)
        can_fork = forked.can_fork
        try:
            for _ in range(arguments.repeat):              # interleaved: the machine's noise falls on both
                for lane, fork in (("forked", can_fork), ("one process", lambda: False)):
                    forked.can_fork = fork
                    seconds.clear()
                    totals[lane].append(finish_copy(source, scratch))
                    if lane == "one process":              # forked, the child's stages are timed in the child
                        for name, value in seconds.items():
                            per_stage[name].append(value)
        finally:
            forked.can_fork = can_fork
    print(f"finishing {source} ({arguments.repeat} times; torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print("  stages, all in one process:")
    for name, values in per_stage.items():
        print(f"    {name:<16} {statistics.median(values):6.2f} s")
    for lane, values in totals.items():
        total = statistics.median(values)
        print(f"  total, {lane:<12} {total:6.2f} s   (each: {', '.join(f'{t:.2f}' for t in values)}; "
              f"target <= {TARGET_S:.0f} s: {'met' if total <= TARGET_S else 'not met'})")
    forked_total, serial_total = (statistics.median(values) for values in totals.values())
    print(f"  one process / forked: {serial_total / forked_total:.2f}x")


if __name__ == "__main__":
    main()
