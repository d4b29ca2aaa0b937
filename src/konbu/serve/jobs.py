"""Training jobs started from the web app: each one a `konbu train` process of its own.

A job is `python -m konbu.serve.worker SETTINGS` in a child process: training gets the machine's
cores without competing with the server's threads for the GIL, a crash in it can't take the server
down, and stopping it is exactly a Ctrl-C (SIGINT): fit finishes the step in progress, writes
last.ckpt and marks the run "interrupted", so `konbu train --resume RUN` (or the page's resume
button) continues it. The page follows a job like any run: through the files of its run directory.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import ConfigError, KonbuError
from ..runs import RUN_FILE, read_info
from .safety import NAME, NotFound, run_dir

LOG_LINES = 200              # the last lines of a job's output kept for the page and for its error
STOP_GRACE = 30.0            # seconds a stopping job gets to checkpoint before the server stops waiting
EXIT_INTERRUPTED = 130       # what `konbu train` exits with after a Ctrl-C (128 + SIGINT)
REFUSED = {"out", "resume", "tensorboard"}   # settings the server decides, not the page


@dataclass
class Job:
    id: str
    run: str
    path: Path
    process: subprocess.Popen
    settings: dict
    started: float = field(default_factory=time.time)
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    stopping: bool = False

    @property
    def status(self) -> str:
        code = self.process.poll()
        if code is None:
            return "stopping" if self.stopping else "running"
        return {0: "finished", EXIT_INTERRUPTED: "interrupted"}.get(code, "failed")

    def describe(self) -> dict:
        error = next((line.removeprefix("error:").strip() for line in reversed(self.log)
                      if line.startswith("error:")), None)
        if self.status == "failed" and error is None and self.log:
            error = self.log[-1]
        return {"job": self.id, "run": self.run, "status": self.status, "returncode": self.process.poll(),
                "run_ready": (self.path / RUN_FILE).is_file(), "started": self.started, "settings": self.settings,
                "error": error if self.status == "failed" else None, "log": list(self.log)[-20:]}


class Jobs:
    """The server's jobs: at most `max_jobs` training at once."""

    def __init__(self, runs: Path, max_jobs: int = 1):
        self.runs, self.max_jobs = Path(runs), max_jobs
        self.jobs: dict = {}
        self.lock = threading.Lock()

    def running(self) -> list:
        return [job for job in self.jobs.values() if job.process.poll() is None]

    def training(self, run: str) -> bool:
        """Whether a job of this server trains `run` now (or is starting to)."""
        return any(job.run == run for job in self.running())

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no training job {job_id!r}")
        return job

    def start(self, settings: dict) -> Job:
        """A new run from `settings` (TrainConfig fields, checked here first: a bad one is a
        ConfigError now, not a failed job later); "name" names the run directory."""
        from ..train import TrainConfig

        settings = {key: value for key, value in settings.items() if value is not None and value != ""}
        name = settings.pop("name", None)
        refused = sorted(REFUSED & set(settings))
        if refused:
            raise ConfigError(f"the web app chooses {refused[0]!r} itself: leave it out (runs go under the "
                              "server's --runs folder; resume with {\"resume\": RUN})")
        config = TrainConfig.from_overrides(**settings)
        name = self._new_name(name, config)
        return self._launch(name, {"settings": settings, "out": str(self.runs / name)})

    def resume(self, run: str) -> Job:
        path = run_dir(self.runs, run)
        status = read_info(path).get("status")
        if status != "interrupted":
            raise ConfigError(f"run {run!r} is {status}; only an interrupted run can be resumed")
        return self._launch(run, {"resume": str(path)})

    def stop(self, job_id: str) -> Job:
        """Ctrl-C for the job: it checkpoints at the end of the step in progress and exits."""
        job = self.get(job_id)
        if job.process.poll() is None and not job.stopping:
            job.stopping = True
            job.process.send_signal(signal.SIGINT)
        return job

    def stop_all(self, wait: float = STOP_GRACE):
        """When the server shuts down: stop every job cleanly, so each can be resumed."""
        for job in self.running():
            self.stop(job.id)
        deadline = time.monotonic() + wait
        for job in self.jobs.values():
            try:
                job.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                job.process.kill()

    def _new_name(self, name, config) -> str:
        if name is not None:
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise ConfigError(f"a run name may hold letters, digits, '.', '_' and '-', found {name!r}")
            if (self.runs / name).exists():
                raise ConfigError(f"a run named {name!r} exists already; choose another name")
            return name
        model = Path(config.model).stem if config.model else "model"
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = "".join(c if c.isalnum() or c in "._-" else "-" for c in f"{model}-{config.dataset}-{stamp}")
        name, count = base, 1
        while (self.runs / name).exists() or any(job.run == name for job in self.jobs.values()):
            count += 1
            name = f"{base}-{count}"
        return name

    def _launch(self, run: str, request: dict) -> Job:
        with self.lock:
            if len(self.running()) >= self.max_jobs:
                raise Busy(f"{len(self.running())} training job(s) running, the most this server runs at once "
                           f"(konbu serve --max-jobs {self.max_jobs}); stop one first")
            if any(job.run == run for job in self.running()):
                raise Busy(f"run {run!r} is training in a job already")
            self.runs.mkdir(parents=True, exist_ok=True)
            process = subprocess.Popen(
                [sys.executable, "-m", "konbu.serve.worker", json.dumps(request)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                # its own session: a Ctrl-C on `konbu serve` reaches the server, which stops each job
                # itself (stop_all) rather than every process at once
                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"})
            job = Job(uuid.uuid4().hex[:12], run, self.runs / run, process, request.get("settings", request))
            self.jobs[job.id] = job
        threading.Thread(target=_collect, args=(job,), daemon=True, name=f"konbu-job-{job.id}").start()
        return job


class Busy(KonbuError):
    """A training job can't start now (too many running): HTTP 409."""


def _collect(job: Job):
    """Keep the job's last output lines (its progress, and an error's message) until it ends."""
    for line in job.process.stdout:
        line = line.rstrip()
        if line:
            job.log.append(line)
    job.process.wait()
