"""More listeners on the event stream: metrics.csv and TensorBoard.

    konbu train --tensorboard          then: tensorboard --logdir runs/
    konbu.fit(..., listeners=[CsvLog("my.csv")])

Both see the same events as the progress bar and metrics.jsonl (events.py); neither touches the
loop. metrics.csv has one row per epoch, like Keras's CSVLogger, for a spreadsheet. TensorBoard gets
the per-step loss, accuracy and learning rate and the per-epoch validation metrics.
"""

import csv
import io
from pathlib import Path

from .. import atomic
from ..errors import KonbuError
from .events import Event

CSV_COLUMNS = ["epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds",
               "images_per_second"]


class CsvLog:
    """metrics.csv: a row per epoch, rewritten atomically each epoch (a resumed run keeps its old rows)."""

    def __init__(self, path):
        self.path = Path(path)
        self.rows = []

    def __call__(self, event: Event):
        if event.kind == "start":
            self.rows = [r for r in event.data.get("previous", []) if r.get("kind") == "epoch"]
        elif event.kind == "epoch":
            self.rows.append(event.data["record"])
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
            atomic.write_text(self.path, buffer.getvalue())


def summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise KonbuError("--tensorboard needs the tensorboard package: pip install 'konbu[tensorboard]'") from None
    return SummaryWriter


class TensorBoardLog:
    """TensorBoard event files in `log_dir`. On a resume, `purge_step` makes TensorBoard drop the
    steps logged after the checkpoint, so the curves continue without a doubled stretch."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.writer_class = summary_writer_class()   # fail at once, not after the first epoch
        self.writer = None

    def __call__(self, event: Event):
        getattr(self, f"on_{event.kind}", lambda data: None)(event.data)

    def on_start(self, data):
        step = data.get("step", 0)
        self.writer = self.writer_class(str(self.log_dir), purge_step=step + 1 if step else None)

    def on_epoch(self, data):
        for r in data["batch_records"]:
            self.writer.add_scalar("train/loss", r["loss"], r["step"])
            self.writer.add_scalar("train/accuracy", r["accuracy"], r["step"])
            self.writer.add_scalar("train/lr", r["lr"], r["step"])
        record = data["record"]
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            if key in record:
                split, _, name = key.partition("_")
                self.writer.add_scalar(f"epoch/{split}_{name}", record[key], record["step"])
        self.writer.flush()

    def close(self, data=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    on_end = on_interrupted = close
