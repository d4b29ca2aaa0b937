"""benchmarks/gpu_suite.py, the one script a session lent a GPU runs first: its CPU smoke run
(`--device cpu --quick`, every stage for three steps) must work on any machine, so that the GPU's
few minutes are never spent finding a broken script. Nothing here reads a timing as a figure."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.py"


def suite(*arguments, cwd):
    # no GPU is visible to it, even on a machine that has one: the CPU paths are the ones checked here
    return subprocess.run([sys.executable, str(SUITE), *arguments], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})


def test_the_quick_run_goes_through_every_stage_and_writes_its_figures(tmp_path):
    done = suite("--device", "cpu", "--quick", "--out", str(tmp_path / "gpu.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [next(iter(line)) for line in printed] == ["machine", "first-run", "chollet-mnist", "fast-mnist",
                                                      "fast-cifar10"]
    assert all(line["stage_s"] > 0 for line in printed[1:])
    figures = json.loads((tmp_path / "gpu.json").read_text())
    assert figures["machine"]["torch"] == torch.__version__ and figures["machine"]["device"] == "cpu"
    for stage in ("first-run", "fast-mnist"):
        # three steps: the training seconds, rounded to 0.01, may be 0 on a fast machine; the wall is not
        assert figures[stage]["wall_s"] > 0 and figures[stage]["wall_s"] >= figures[stage]["training_s"] >= 0
        assert 0.0 <= figures[stage]["test_accuracy"] <= 1.0
    chollet = figures["chollet-mnist"]   # two real epochs of the sample: it learns even in a smoke run
    assert chollet["konbu_images_per_s"] > 0 and chollet["plain_pytorch_images_per_s"] > 0
    assert chollet["test_accuracy"] > 0.5
    (run,) = figures["fast-cifar10"]["runs"]
    assert run["seed"] == 0 and run["train_s"] > 0 and run["tta_s"] > 0 and 0.0 <= run["test_accuracy"] <= 1.0
    assert figures["fast-cifar10"]["mean_train_plus_tta_s"] == round(run["train_s"] + run["tta_s"], 3)
    assert not (tmp_path / "runs").exists()   # its runs live in a temporary folder, not where it was started


def test_without_a_gpu_it_says_how_to_check_the_script(tmp_path):
    done = suite("--quick", cwd=tmp_path)
    assert done.returncode != 0 and "no CUDA GPU here" in done.stderr and "--device cpu --quick" in done.stderr
