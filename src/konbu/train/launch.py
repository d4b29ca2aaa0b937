"""`konbu train --nproc N` and `fit(nproc=N)`: train in N data-parallel processes on this machine.

    konbu train --nproc 2 --epochs 3
    run = konbu.fit(nproc=2, epochs=3)          # the Run, as with one process

This process chooses the run directory, starts N workers (`python -m konbu.train.launch SPEC`) with
the environment torchrun gives its workers (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), so a worker runs fit() exactly as under torchrun (world.py), and watches
them:
  - when one ends with an error or is killed, the others get GRACE seconds to end by themselves
    (they notice a lost peer at their next all-reduce), then SIGTERM, then SIGKILL: the job ends
    in bounded time, never a hang, and the error says which rank ended how and how to resume;
  - Ctrl-C reaches every worker from the terminal (they share its process group): all stop after
    the same step, rank 0 saves last.ckpt, and this process waits for them;
  - a worker's KonbuError (data that will not load, ...) is written to the launch folder and
    raised here, once, with its own message.
Across machines, start the workers with torchrun itself (README, "Several processes").
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from ..errors import ConfigError, KonbuError, ProcessError
from ..leave import leave
from .world import LOCAL_RANK, LOCAL_WORLD_SIZE, RANK, WORLD_SIZE, World

POLL = 0.1              # seconds between looks at the workers
GRACE = 5.0             # seconds the others get to end after one failed, before SIGTERM
INTERRUPTED_GRACE = 60  # ... after a Ctrl-C: rank 0 saves last.ckpt
KILL_AFTER = 5.0        # seconds between SIGTERM and SIGKILL
MAX_PROCESSES = 256
INTERRUPTED = 130       # a worker's exit code after Ctrl-C, as a shell's


def launch(config, nproc: int, world: World, resume=None, listeners=(), quiet: bool = False):
    """Train `config` (a TrainConfig; with `resume`, the run's own) in `nproc` processes; the Run."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or not 1 <= nproc <= MAX_PROCESSES:
        raise ConfigError(f"--nproc must be a whole number from 1 to {MAX_PROCESSES}, got {nproc!r}")
    if world.distributed:
        raise ConfigError("--nproc starts its own processes, but this one is already one of "
                          f"{world.size} (torchrun); leave --nproc out: torchrun's --nproc-per-node says how many")
    if listeners:
        raise ConfigError("listeners run inside the training process; with nproc > 1 follow the run's "
                          "metrics.jsonl instead (konbu.runs.MetricsFollower)")
    from ..runs import Run
    from .loop import _model_name, default_run_dir

    run_dir = Path(resume or config.out or default_run_dir(config, _model_name(config)))
    if resume is None:
        spec = {"settings": {**config.to_dict(), "out": str(run_dir)}}
    else:   # the run's own settings come from its run.json; only those a resume may change travel
        spec = {"resume": str(run_dir), "settings": {"threads": config.threads, "tensorboard": config.tensorboard}}
    with tempfile.TemporaryDirectory(prefix="konbu-launch-") as folder:
        errors = Path(folder)
        spec_file = errors / "spec.json"
        spec_file.write_text(json.dumps({**spec, "quiet": quiet, "errors": str(errors)}))
        workers = _start(spec_file, nproc)
        codes, first = _watch(workers)
        messages = {int(f.stem): f.read_text() for f in errors.glob("*.error")}
    if all(code == 0 for code in codes):
        return Run.load(run_dir)
    if INTERRUPTED in codes and not messages:
        raise KeyboardInterrupt
    raise _failure(codes, first, messages, run_dir, nproc)


def _start(spec_file: Path, nproc: int) -> list:
    """The workers, rank 0 first (each takes its share of the cores itself: World.threads)."""
    port = _free_port()
    workers = []
    for rank in range(nproc):
        environment = {**os.environ, RANK: str(rank), WORLD_SIZE: str(nproc), LOCAL_RANK: str(rank),
                       LOCAL_WORLD_SIZE: str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        workers.append(subprocess.Popen([sys.executable, "-m", "konbu.train.launch", str(spec_file)], env=environment))
    return workers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _watch(workers: list) -> tuple[list, int | None]:
    """Wait for every worker; once one fails, stop the rest in bounded time. (Their exit codes, the
    rank that failed first or None.)"""
    in_main_thread = threading.current_thread() is threading.main_thread()   # signals can be set there only
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None   # the workers act on it
    try:
        deadline = first = None
        while True:
            codes = [worker.poll() for worker in workers]
            if all(code is not None for code in codes):
                return codes, first
            failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)]
            if deadline is None and failed:
                first = failed[0]
                deadline = time.monotonic() + (INTERRUPTED_GRACE if INTERRUPTED in codes else GRACE)
            if deadline is not None and time.monotonic() > deadline:
                _stop(workers)
                return [worker.wait() for worker in workers], first
            time.sleep(POLL)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _stop(workers: list):
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    end = time.monotonic() + KILL_AFTER
    for worker in workers:
        try:
            worker.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _failure(codes: list, first: int | None, messages: dict, run_dir: Path, nproc: int) -> KonbuError:
    """The error to raise for workers that ended `codes`: a worker's own KonbuError first (its
    message, exit code 2), else how the first rank to fail ended, and whether a resume can continue."""
    if messages:
        return KonbuError(messages[min(messages)])
    rank = first if first is not None else next(r for r, code in enumerate(codes) if code != 0)
    code = codes[rank]
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    from ..runs import CHECKPOINT_DIR
    from .checkpoint import checkpoint_path
    saved = (checkpoint_path(run_dir / CHECKPOINT_DIR) / "state.json").is_file()
    after = (f"{run_dir} keeps its last complete checkpoint: `konbu train --resume {run_dir} --nproc {nproc}` "
             "continues from there" if saved else "no checkpoint had been written yet: start the run again")
    return ProcessError(f"training process {rank} of {nproc} {how}; the others were stopped. {after}")


def worker(spec_file: str) -> int:
    """One training process: fit() with the launch's settings; its exit code. A KonbuError is written
    to the launch folder for the launching process to raise."""
    import torch

    from .loop import fit

    spec = json.loads(Path(spec_file).read_text())
    world = World.from_environment()
    # one `warning: ...` line, as the CLI prints them (rank 0's: fit() silences the others)
    warnings.formatwarning = lambda message, *args, **kwargs: f"warning: {message}\n"
    try:
        fit(resume=spec.get("resume"), quiet=spec["quiet"], **spec["settings"])   # fit() keeps ranks > 0 quiet
    except KeyboardInterrupt:
        return INTERRUPTED
    except KonbuError as error:
        from ..atomic import write_text
        write_text(Path(spec["errors"]) / f"{world.rank}.error", str(error))
        return 2
    except torch.distributed.DistError as error:   # a peer died or hung up: the launcher says which first
        print(f"training process {world.rank}: lost the others ({str(error).splitlines()[0]})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    leave(worker(sys.argv[1]))   # no interpreter teardown: see konbu/leave.py
