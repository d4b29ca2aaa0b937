"""One stream of training events, several listeners.

The loop only calls `emit(Event(...))`; the progress bar, metrics.jsonl, metrics.csv, TensorBoard
and anything later (the web stream) are listeners. None of them reaches into the loop.

Events, in order:
    start  {config, device, precision, n_train, n_val, steps_per_epoch, epochs, total_steps, run_dir,
            step, previous}   step: where training starts (0, or the resumed step); previous: the
                              metrics.jsonl records kept from before a resume (else [])
    batch  {epoch, step, batch, batches, loss_sum, correct, seen, lr}   the epoch's running sums so
           far; loss_sum/correct are 0-d device tensors: a listener that wants a number pays the
           device sync, the loop never does per batch
    epoch  {record, batch_records}   record: the epoch's metrics; batch_records: its steps as dicts
    stop   {reason, message, step, epoch, ...}   the divergence guard or early stopping ended the run
    interrupted {step, epoch, run_dir}   Ctrl-C: last.ckpt holds this step; `konbu train --resume RUN_DIR`
    end    {final, best_epoch, seconds, run_dir, info}
A listener ignores kinds it does not know.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic


@dataclass
class Event:
    kind: str
    data: dict = field(default_factory=dict)


class MetricsLog:
    """Keeps metrics.jsonl: one line per step and per epoch, rewritten atomically each epoch so a
    killed run leaves a complete file (the file is small: ~100 bytes a step). A resumed run starts
    from the records kept before the checkpoint, so no step appears twice."""

    def __init__(self, path):
        self.path = Path(path)
        self.lines = []

    def __call__(self, event: Event):
        if event.kind == "start":
            self.lines = [json.dumps(r) for r in event.data.get("previous", [])]
        elif event.kind == "epoch":
            self.lines += [json.dumps(r) for r in event.data["batch_records"]]
            self.lines.append(json.dumps(event.data["record"]))
            atomic.write_text(self.path, "\n".join(self.lines) + "\n")


class History:
    """Collects the per-epoch records in memory (what `fit` reads its final figures from)."""

    def __init__(self):
        self.epochs = []

    def __call__(self, event: Event):
        if event.kind == "start":
            self.epochs = [r for r in event.data.get("previous", []) if r.get("kind") == "epoch"]
        elif event.kind == "epoch":
            self.epochs.append(event.data["record"])
