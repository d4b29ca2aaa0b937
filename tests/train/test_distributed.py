"""Data-parallel training (world.py, launch.py): `konbu train --nproc 2` and torchrun, on the CPU (gloo).

The processes are real: each test starts the launcher (or torchrun) as a user does, from a shell.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from konbu.errors import ConfigError
from konbu.train import fit
from konbu.train.world import World

# fp32 and no augmentation: with the same global batch, two processes then compute one process's
# steps up to float rounding, so the runs can be held to each other closely
SMALL = ["--model", "chollet-mnist", "--dataset", "mnist-sample", "--precision", "fp32", "--augment", "none",
         "--batch-size", "64"]


def konbu(*arguments, **options):
    return subprocess.run([sys.executable, "-m", "konbu", *arguments], capture_output=True, text=True, timeout=600,
                          **options)


def read_run(path: Path) -> dict:
    return json.loads((path / "run.json").read_text())


def files_of(run_dir: Path) -> set:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if "tensorboard" not in p.parts}


# ----------------------------------------------------------------------------- the shard arithmetic

def test_shards_cover_the_global_batch_once_in_order():
    x, y = torch.arange(10).view(10, 1), torch.arange(10)
    parts = [World(rank, 3).shard(x, y) for rank in range(3)]
    assert torch.equal(torch.cat([p[1] for p in parts]), y)
    assert [p[2] for p in parts] == [3 * 3 / 10, 3 * 3 / 10, 4 * 3 / 10]


def test_a_rank_without_an_image_adds_nothing():
    x, y = torch.arange(2).view(2, 1), torch.arange(2)
    shards = [World(rank, 3).shard(x, y) for rank in range(3)]
    assert [s[2] for s in shards] == [0.0, 1.5, 1.5]
    assert shards[0][1].shape[0] == 1   # it still runs a step, to join the all-reduce


def test_shares_make_the_mean_of_rank_gradients_the_batch_gradient():
    """DDP averages the ranks' gradients: with each rank's loss scaled by its share, that average is
    the gradient of the whole batch's mean loss, uneven shards included."""
    torch.manual_seed(0)
    weight = torch.randn(5, 3, requires_grad=True)
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    whole = torch.autograd.grad(F.cross_entropy(x @ weight, y), weight)[0]
    ranks = []
    for rank in range(3):
        xs, ys, share = World(rank, 3).shard(x, y)
        ranks.append(torch.autograd.grad(F.cross_entropy(xs @ weight, ys) * share, weight)[0])
    assert torch.allclose(torch.stack(ranks).mean(0), whole, atol=1e-6)


# the step totals over two real ranks: rank 0 has 3 of the batch's 5 images (loss 1, 2 right), rank 1
# has 2 (loss 2, both right) and presses Ctrl-C from step 3; the flag is read at steps 4 and 8 only.
# Then a batch of one image: rank 0's stand-in image adds nothing
TOTALS = """
import json, torch
from konbu.train.world import World
world = World.from_environment()
world.join(torch.device("cpu"))
y = torch.tensor([0, 1, 1]) if world.rank == 0 else torch.tensor([1, 1])
output = torch.eye(2)[torch.tensor([0, 1, 0]) if world.rank == 0 else torch.tensor([1, 1])]
rows = []
for step in range(1, 9):
    totals = world.step_totals(torch.tensor(1.0 + world.rank), output, y, 1.0, world.rank == 1 and step >= 3, 5)
    loss, correct, images, pressed = totals.get(read_pressed=step % 4 == 0)
    rows.append([round(loss.item(), 6), correct.item(), images, pressed])
x, y, share = world.shard(torch.zeros(1, 1), torch.tensor([1]))    # one image: rank 0 runs a stand-in
loss, correct, images, _ = world.step_totals(torch.tensor(0.5), torch.eye(2)[y], y, share, False, 1).get()
rows.append([round(loss.item(), 6), correct.item(), images])
world.leave()
print(json.dumps(rows))
"""


def test_step_totals_sum_the_ranks_and_read_a_ctrl_c_where_asked():
    """What every rank learns of a step: the batch's mean loss, its correct count, its image count
    (known to each rank, not sent), and a Ctrl-C on any rank, read at the steps the loop asks, which
    on a GPU are every few steps only (the read is a host sync); every rank stops at the same one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ranks = [subprocess.Popen([sys.executable, "-c", TOTALS], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                                   "MASTER_PORT": str(port)}) for rank in range(2)]
    rows = [json.loads(rank.communicate(timeout=120)[0].splitlines()[-1]) for rank in ranks]
    assert rows[0] == rows[1] == [[1.4, 4, 5, step % 4 == 0 and step >= 3] for step in range(1, 9)] + [[0.5, 1, 1]]


# ----------------------------------------------------------------------------- whole runs

def test_two_processes_train_as_one_does(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for out, extra in ((one, []), (two, ["--nproc", "2"])):
        result = konbu("train", *SMALL, "--epochs", "2", "--out", str(out), *extra)
        assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and result.stdout.count("epoch     loss") == 1   # rank 0 prints
    assert "cpu (fp32) x 2 processes" in result.stdout
    first, second = read_run(one), read_run(two)
    assert (first["processes"], second["processes"]) == (1, 2)
    accuracy = [run["final"]["test_accuracy"] for run in (first, second)]
    assert abs(accuracy[0] - accuracy[1]) <= 0.005, accuracy
    losses = [[json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
               if json.loads(line)["kind"] == "epoch"] for run in (one, two)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)   # the same global batches, the same steps
    assert files_of(one) == files_of(two)                    # the same run directory


def test_torchrun_starts_the_same_training(tmp_path):
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "konbu", "train", *SMALL,
                             "--steps", "40", "--val-fraction", "0", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("test accuracy") == 1   # rank 0 reports; rank 1 trains silently
    info = read_run(out)
    assert info["status"] == "finished" and info["processes"] == 2
    assert (out / "report.html").is_file()


def test_two_machines_meet_at_the_rendezvous_endpoint(tmp_path):
    """--nnodes 2 with a c10d --rdzv-endpoint, as the README shows for two machines: here two torchrun
    agents on this one, each a "machine" of one process."""
    out = tmp_path / "run"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torchrun = Path(sys.executable).with_name("torchrun")
    nodes = [subprocess.Popen([str(torchrun), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "konbu-test", "-m", "konbu",
                               "train", *SMALL, "--steps", "30", "--val-fraction", "0", "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [error for _, error in outputs]
    assert sum(output.count("test accuracy") for output, _ in outputs) == 1   # global rank 0 alone reports
    info = read_run(out)
    assert info["status"] == "finished" and info["processes"] == 2


def _children(pid: int) -> dict:
    """{rank: pid} of a launcher's workers, from Linux's /proc (each worker's RANK variable)."""
    ranks = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            for variable in environment:
                if variable.startswith(b"RANK="):
                    ranks[int(variable[5:])] = int(entry.name)
    return ranks


def _start_training(out: Path, steps: int):
    """The launcher training 2 processes in its own session (a Ctrl-C for it must not reach pytest),
    once rank 0 has written a checkpoint."""
    process = subprocess.Popen([sys.executable, "-m", "konbu", "train", *SMALL, "--nproc", "2", "--steps", str(steps),
                                "--checkpoint-every", "5", "--out", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (out / "last.ckpt" / "state.json").is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return process


def test_a_killed_process_ends_the_job_with_a_clear_error_and_resume_finishes_it(tmp_path):
    out = tmp_path / "run"
    process = _start_training(out, steps=3000)
    os.kill(_children(process.pid)[1], signal.SIGKILL)
    killed = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert time.monotonic() - killed < 30            # bounded: no hang on the lost peer
    assert process.returncode == 1
    assert "training process 1 of 2 was killed by SIGKILL" in stderr
    assert f"konbu train --resume {out} --nproc 2" in stderr
    step = json.loads((out / "last.ckpt" / "state.json").read_text())["step"]
    assert 0 < step < 3000
    result = konbu("train", "--resume", str(out), "--nproc", "2", "--steps", "3000")
    assert result.returncode == 0, result.stderr
    info = read_run(out)
    assert info["status"] == "finished" and info["final"]["test_accuracy"] > 0.5
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == "epoch"][-1] == 3000


def test_ctrl_c_stops_every_process_after_the_same_step(tmp_path):
    out = tmp_path / "run"
    process = _start_training(out, steps=3000)
    os.killpg(process.pid, signal.SIGINT)            # what the terminal sends to the foreground group
    process.communicate(timeout=120)
    assert process.returncode == 130
    info = read_run(out)
    assert info["status"] == "interrupted"
    state = json.loads((out / "last.ckpt" / "state.json").read_text())
    assert 0 < state["step"] == info["interrupted"]["step"] < 3000   # rank 0 saved the step every rank stopped at
    result = konbu("train", "--resume", str(out), "--nproc", "2")
    assert result.returncode == 0, result.stderr
    assert read_run(out)["status"] == "finished"


def test_a_workers_konbu_error_is_reported_once(tmp_path):
    missing = tmp_path / "nothing-here"
    missing.mkdir()
    result = konbu("train", "--nproc", "2", "--dataset", "mnist", "--data-dir", str(missing), "--out",
                   str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1 and "mnist" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_warning_is_printed_once_in_one_line(tmp_path):
    result = konbu("train", *SMALL[:-4], "--nproc", "2", "--augment", "hflip", "--steps", "3", "--val-fraction",
                   "0", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "flip" in line]
    assert len(warned) == 1 and warned[0].startswith("warning: "), result.stderr


def test_nproc_is_checked_before_anything_starts(tmp_path):
    with pytest.raises(ConfigError, match="--nproc must be"):
        fit(nproc=0, out=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_nproc_under_torchrun_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="torchrun"):
        fit(nproc=2, out=str(tmp_path / "run"))
