"""One stream of training events, several listeners.

The loop only calls `emit(Event(...))`; the progress bar, metrics.jsonl, progress.json, metrics.csv,
TensorBoard and anything later (the web stream) are listeners. None of them reaches into the loop.

Events, in order:
    start  {config, device, precision, n_train, n_val, steps_per_epoch, epochs, total_steps, run_dir,
            step, previous}   step: where training starts (0, or the resumed step); previous: the
                              metrics.jsonl records kept from before a resume (else [])
    batch  {epoch, step, batch, batches, loss_sum, correct, seen, lr, records, seconds, images}
           the epoch's running sums so far; loss_sum/correct are 0-d device tensors: a listener that
           wants a number pays the device sync, the loop never does per batch. records(): the
           epoch's steps so far as metrics.jsonl records (EpochProgress.batch_records: one device
           sync, so call it only when writing them). seconds, images: the run's training seconds
           and images so far (across a resume)
    epoch  {record, batch_records}   record: the epoch's metrics; batch_records: its steps as dicts
    stop   {reason, message, step, epoch, ...}   the divergence guard or early stopping ended the run
    interrupted {step, epoch, run_dir}   Ctrl-C: last.ckpt holds this step; `konbu train --resume RUN_DIR`
    end    {final, best_epoch, seconds, run_dir, info}
A listener ignores kinds it does not know.

Live files: MetricsLog appends each epoch's steps to metrics.jsonl as training goes and ProgressFile
keeps progress.json current (each at most every LIVE_INTERVAL seconds), so a follower in another
process (konbu.runs.MetricsFollower, read_progress) sees a run per batch, not only per epoch.
"""

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic


@dataclass
class Event:
    kind: str
    data: dict = field(default_factory=dict)


LIVE_INTERVAL = 0.5   # seconds between live writes: a follower polling twice a second misses nothing


def jsonl(records) -> str:
    """Records as metrics.jsonl text: one JSON line each, every line ending in a newline."""
    return "".join(json.dumps(r) + "\n" for r in records)


class MetricsLog:
    """Keeps metrics.jsonl: one line per step and per epoch. During an epoch its steps are appended at
    most every `interval` seconds, so the file grows as training goes (whole lines, flushed, for a
    follower in another process); at the epoch's end the whole file is rewritten atomically, so a
    killed run leaves a complete file (the file is small: ~100 bytes a step). The appended lines are
    the very records the epoch's end writes, so they are always a prefix of that file. A resumed run
    starts from the records kept before the checkpoint, so no step appears twice."""

    def __init__(self, path, interval: float = LIVE_INTERVAL):
        self.path = Path(path)
        self.interval = interval
        self.records = []           # the file's records up to the last closed epoch
        self.written = 0            # the current epoch's steps appended so far
        self.last = -math.inf       # time.monotonic() of the last append

    def __call__(self, event: Event):
        if event.kind == "start":
            # rewritten, not kept: after a resume the file may hold lines from past the checkpoint,
            # and appends must follow the kept records, not those
            self.records = list(event.data.get("previous", []))
            self.written = 0
            atomic.write_text(self.path, jsonl(self.records))
        elif event.kind == "batch" and time.monotonic() - self.last >= self.interval:
            new = event.data["records"]()[self.written:]      # the one device sync, only when writing
            if new:
                self._append(jsonl(new))
                self.written += len(new)
            self.last = time.monotonic()
        elif event.kind == "epoch":
            self.records += event.data["batch_records"] + [event.data["record"]]
            self.written = 0
            atomic.write_text(self.path, jsonl(self.records))

    def _append(self, text: str):
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)   # whole lines in one write: a follower sees at most the last one torn
                f.flush()
        except OSError as error:   # disk full: the loop stops with the message every failed write gives
            raise atomic.write_error(self.path, error) from error


class ProgressFile:
    """Keeps progress.json: where a run is, for a follower in another process (the web app, a
    terminal next to `konbu train`). Written atomically at most every `interval` seconds on batches
    and always when an epoch closes and when the run ends, stops or is interrupted:

        {"epoch", "epochs", "step", "total_steps", "batch", "batches", "images_per_second",
         "eta_seconds", "state": "training" | "finished" | "interrupted" | "stopped", "updated"}

    images_per_second: the training pass only (as metrics.jsonl's epochs count it); eta_seconds: the
    steps left at the wall-clock rate measured in this process since its first step (validation and
    checkpoints included), None until two steps have been seen; state: "stopped" when early stopping
    or the divergence guard ended the run, and it stays so once the run is finished; updated: unix time."""

    def __init__(self, path, interval: float = LIVE_INTERVAL):
        self.path = Path(path)
        self.interval = interval
        self.state = {}
        self.first = None           # (step, time.monotonic()) of this process's first batch
        self.last = -math.inf

    def __call__(self, event: Event):
        data = event.data
        if event.kind == "start":
            step, per_epoch = data["step"], data["steps_per_epoch"]
            self.state = {"epoch": step // per_epoch + 1, "epochs": data["epochs"], "step": step,
                          "total_steps": data["total_steps"], "batch": step % per_epoch, "batches": per_epoch,
                          "images_per_second": None, "eta_seconds": None, "state": "training"}
            self.first = None
            self._write()
        elif event.kind == "batch":   # kept current every step (no device sync), written when due
            now = time.monotonic()
            if self.first is None:
                self.first = (data["step"], now)
            speed = round(data["images"] / data["seconds"], 1) if data["seconds"] else None
            self.state.update(epoch=data["epoch"], step=data["step"], batch=data["batch"], batches=data["batches"],
                              images_per_second=speed, eta_seconds=self._eta(data["step"], now))
            if now - self.last >= self.interval:
                self._write()
        elif event.kind == "epoch":
            self._write()
        elif event.kind in ("stop", "interrupted", "end"):
            if self.state.get("state") != "stopped":   # "end" follows "stop" (early stopping, divergence)
                self.state["state"] = {"stop": "stopped", "interrupted": "interrupted", "end": "finished"}[event.kind]
            self.state["eta_seconds"] = 0 if event.kind == "end" else None
            self._write()

    def _eta(self, step: int, now: float):
        first_step, first_time = self.first
        if step == first_step:
            return None
        return round((self.state["total_steps"] - step) * (now - first_time) / (step - first_step), 1)

    def _write(self):
        atomic.write_json(self.path, {**self.state, "updated": round(time.time(), 3)})
        self.last = time.monotonic()


class History:
    """Collects the per-epoch records in memory (what `fit` reads its final figures from)."""

    def __init__(self):
        self.epochs = []

    def __call__(self, event: Event):
        if event.kind == "start":
            self.epochs = [r for r in event.data.get("previous", []) if r.get("kind") == "epoch"]
        elif event.kind == "epoch":
            self.epochs.append(event.data["record"])
