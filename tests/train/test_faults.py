"""Faults: a training process killed with SIGKILL at seeded moments (mid-epoch, while last.ckpt or
the weights are swapped in, while run.json or the report is written), a write that fails, and two
processes told to write the same run directory.

After any kill the run directory must still be readable (every JSON parses, the weights load, the
checkpoint loads), and `konbu train --resume` must finish it with weights bit-identical to a run
that never stopped (CPU, --deterministic, one thread). A SIGKILL gives konbu no chance to clean up,
so this tests the atomic writes themselves. The kills happen in a child process, at an event of its
own: a training step, or a rename of a given file (os.replace is where an atomic write commits).

    PYTHONPATH=src python -m pytest tests/train/test_faults.py -q
"""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from safetensors.torch import load_file

import konbu
from konbu.errors import RunDirectoryError, WriteError
from konbu.runs import Run, read_info
from konbu.train.checkpoint import read_state

# digits (embedded, offline) with a conv layer, mid-epoch checkpoints and a 3-epoch cosine schedule:
# 1,294 training images at batch 64 = 21 steps an epoch, 63 in all, a checkpoint every 5 steps
SETTINGS = dict(dataset="digits", epochs=3, batch_size=64, threads=1, deterministic=True, precision="fp32",
                device="cpu", optimizer="sgd", lr=0.05, momentum=0.9, checkpoint_every=5, seed=3)
LAYERS = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"}, {"type": "flatten"},
          {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": "classes"}]
STEPS = 63

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path

    import konbu

    settings, plan = json.loads(sys.argv[1]), json.loads(sys.argv[2])

    def die():
        os.kill(os.getpid(), signal.SIGKILL)   # no handler, no cleanup: as a crash or the OOM killer

    listeners = []
    if plan["kind"] == "step":
        listeners.append(lambda event: die() if event.kind == "batch" and event.data["step"] == plan["at"] else None)
    else:   # the plan["at"]-th rename onto a file or folder named plan["name"]: an atomic write's commit
        rename, seen = os.replace, []

        def replace(source, target, *args, **kwargs):
            if Path(target).name == plan["name"]:
                seen.append(target)
                if len(seen) == plan["at"]:
                    die()
            return rename(source, target, *args, **kwargs)
        os.replace = replace
    konbu.fit(listeners=listeners, quiet=True, **settings)
""")


def kill_schedule(seed: int) -> list:
    """Six kill points drawn from the seed: two mid-epoch steps (after the first checkpoint, so there
    is one to resume from), the swap of last.ckpt (old one moved aside, new one not yet in place),
    the best weights, run.json as the run finishes, and report.html."""
    rng = random.Random(seed)
    steps = sorted(rng.sample(range(6, STEPS), 2))
    return [{"kind": "step", "at": steps[0]}, {"kind": "step", "at": steps[1]},
            {"kind": "replace", "name": "last.ckpt", "at": rng.randint(2, 12)},
            # 1: the initial weights; 2 and 3: epochs 1 and 2, which improve (epoch 3 need not)
            {"kind": "replace", "name": "weights.safetensors", "at": rng.randint(2, 3)},
            {"kind": "replace", "name": "run.json", "at": 2},       # 1: started; 2: finished
            {"kind": "replace", "name": "report.html", "at": 1}]


def settings_for(tmp_path, out):
    spec = tmp_path / "net.json"
    spec.write_text(json.dumps(LAYERS))
    return {**SETTINGS, "model": str(spec), "out": str(out)}


def same_weights(a, b):
    wa, wb = load_file(a), load_file(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    return konbu.fit(quiet=True, **settings_for(folder, folder / "whole"))


def assert_readable(run_dir):
    """Every JSON file parses, the weights load, and a checkpoint (last.ckpt or .old) loads."""
    for path in run_dir.glob("*.json"):
        json.loads(path.read_text())
    assert read_info(run_dir)["status"] in ("running", "interrupted", "finished")
    Run.load(run_dir, device="cpu")
    read_state(run_dir / "last.ckpt")


@pytest.mark.parametrize("plan", kill_schedule(seed=2026), ids=lambda plan: f"{plan['kind']}-{plan.get('name', '')}"
                         f"{plan['at']}")
def test_killed_anywhere_the_run_resumes_to_the_same_bits(uninterrupted, tmp_path, plan):
    out = tmp_path / "killed"
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings_for(tmp_path, out)), json.dumps(plan)],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr[-2000:]          # it died by SIGKILL, at the planned moment
    assert_readable(out)
    resumed = konbu.fit(resume=str(out), quiet=True)
    assert resumed.info["status"] == "finished" and (out / "report.html").is_file()
    for name in ("weights.safetensors", "last.ckpt/model.safetensors"):
        assert same_weights(uninterrupted.path / name, out / name), name
    assert resumed.info["final"]["test_accuracy"] == uninterrupted.info["final"]["test_accuracy"]
    assert not list(out.glob(".*.tmp")) and not (out / "last.ckpt.old").exists()


def test_a_failed_write_names_the_path_and_the_last_checkpoint_still_resumes(uninterrupted, tmp_path, monkeypatch):
    out = tmp_path / "full"
    rename, calls = os.replace, []

    def disk_full_on_the_third_checkpoint(source, target, *args, **kwargs):
        if os.path.basename(target) == "last.ckpt":
            calls.append(target)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return rename(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", disk_full_on_the_third_checkpoint)
    with pytest.raises(WriteError, match=r"cannot write .*last\.ckpt: No space left on device.*--resume"):
        konbu.fit(quiet=True, **settings_for(tmp_path, out))
    monkeypatch.undo()
    assert read_state(out / "last.ckpt")["step"] == 10                 # the second checkpoint, whole
    assert not list(out.glob(".*.tmp"))                                # the failed one left nothing
    resumed = konbu.fit(resume=str(out), quiet=True)
    assert same_weights(uninterrupted.path / "weights.safetensors", resumed.path / "weights.safetensors")


def test_two_processes_on_one_run_directory_one_wins(tmp_path):
    out = tmp_path / "shared"
    settings = settings_for(tmp_path, out)
    command = [sys.executable, "-m", "konbu", "train", "--model", settings["model"], "--dataset", "digits",
               "--threads", "1", "--out"]
    # the first trains for long enough to be caught at it, then is stopped with a Ctrl-C
    first = subprocess.Popen(command + [str(out), "--epochs", "2000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 120
    while not (out / "last.ckpt").is_dir() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    second = subprocess.run(command + [str(out), "--epochs", "2"], capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert "another konbu process is writing" in second.stderr.replace("\n", " ")
    first.send_signal(signal.SIGINT)
    _, errors = first.communicate(timeout=120)
    assert first.returncode == 130, errors[-2000:]
    assert read_info(out)["status"] == "interrupted" and read_info(out)["config"]["epochs"] == 2000
    assert_readable(out)                                    # the refused process touched nothing
    # both at once: the lock decides, and whichever comes second is refused
    racers = [subprocess.Popen(command + [str(tmp_path / "race"), "--epochs", "3"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(racer.wait(timeout=300), racer.stderr.read()) for racer in racers]
    assert sorted(code for code, _ in results) == [0, 2], results
    refusal = next(text for code, text in results if code == 2).replace("\n", " ")
    assert "another konbu process is writing" in refusal or "already holds a run" in refusal
    assert read_info(tmp_path / "race")["status"] == "finished"


def test_a_refused_run_leaves_nothing_behind(tmp_path):
    with pytest.raises(konbu.KonbuError):
        konbu.fit(model="softmax", dataset="no-such-dataset", out=str(tmp_path / "never"), quiet=True)
    assert not (tmp_path / "never").exists()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file"):
        konbu.fit(model="softmax", dataset="digits", out=str(tmp_path / "a-file"), quiet=True)
