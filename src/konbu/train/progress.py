"""The terminal view of training: a rich progress bar per epoch (ETA, running loss/accuracy), a
table row per epoch (train loss/acc, validation loss/acc, seconds, images/s), and why a run stopped."""

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .events import Event

REFRESH_EVERY = 10  # batches between running-loss updates: each one reads the loss off the device


class ProgressPrinter:
    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self.progress = None
        self.task = None

    def __call__(self, event: Event):
        getattr(self, f"on_{event.kind}", lambda data: None)(event.data)

    def on_start(self, data):
        config = data["config"]
        self.epochs = data["epochs"]
        self.has_val = data["n_val"] > 0
        length = (f"{config['steps']:,} steps ({self.epochs} epochs)" if config.get("steps")
                  else f"{self.epochs} epochs")
        recipe = f" (recipe {config['recipe']})" if config.get("recipe") else ""
        processes = f" x {data['processes']} processes" if data.get("processes", 1) > 1 else ""
        self.console.print(
            f"[bold]konbu train[/] {config['model']} on {config['dataset']}{recipe}: {data['n_train']:,} train, "
            f"{data['n_val']:,} validation images; {data['device']} ({data['precision']}){processes}, "
            f"batch {config['batch_size']}, {config['optimizer']}, lr schedule {config['lr_schedule']}, {length}")
        self.console.print(f"run directory: {data['run_dir']}", highlight=False)
        if data.get("step"):
            self.console.print(f"resuming at step {data['step']:,}", highlight=False)
        header = f"{'epoch':>5}  {'loss':>7}  {'acc':>7}"
        if self.has_val:
            header += f"  {'val_loss':>8}  {'val_acc':>7}"
        self.console.print(header + f"  {'lr':>8}  {'seconds':>7}  {'images/s':>8}", style="bold")

    def on_batch(self, data):
        if not self.console.is_terminal:  # logs and pipes get the epoch rows only
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[running]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("train", total=data["batches"], epoch=data["epoch"],
                                               epochs=self.epochs, running="")
        fields = {}
        if data["batch"] % REFRESH_EVERY == 0 or data["batch"] == data["batches"]:
            seen = data["seen"]
            fields["running"] = f"loss {float(data['loss_sum']) / seen:.4f}  acc {float(data['correct']) / seen:.3f}"
        self.progress.update(self.task, completed=data["batch"], **fields)

    def _stop_bar(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_epoch(self, data):
        self._stop_bar()
        r = data["record"]
        row = f"{r['epoch']:>5}  {r['train_loss']:>7.4f}  {r['train_accuracy']:>7.4f}"
        if self.has_val:
            row += f"  {r['val_loss']:>8.4f}  {r['val_accuracy']:>7.4f}"
        self.console.print(row + f"  {r['lr']:>8.2g}  {r['seconds']:>7.2f}  {r['images_per_second']:>8,.0f}",
                           highlight=False)

    def on_stage(self, data):
        """--fine-tune: say what trains from this epoch on."""
        self._stop_bar()
        self.console.print(f"stage {data['stage']} (epochs {data['epochs'][0]}-{data['epochs'][1]}): backbone "
                           f"{data['backbone']}; {data['trainable']:,} trainable, {data['frozen']:,} frozen "
                           "parameters", highlight=False)

    def on_stop(self, data):
        self._stop_bar()
        style = "bold red" if data["reason"] == "diverged" else "bold"
        self.console.print(f"[{style}]stopped:[/] {data['message']}", highlight=False)

    def on_interrupted(self, data):
        self._stop_bar()
        self.console.print(f"interrupted at step {data['step']:,}: last.ckpt holds it; continue with "
                           f"konbu train --resume {data['run_dir']}", highlight=False)
