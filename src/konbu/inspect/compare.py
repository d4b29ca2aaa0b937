"""Several runs side by side: overlaid learning curves and a table of final numbers.

    from konbu.inspect.compare import compare_table, plot_curves_overlay
    runs = [konbu.Run.load("runs/softmax"), konbu.Run.load("runs/deep")]
    compare_table(runs)     # [{"name": "softmax", "test_accuracy": 0.2879, "params": 7850, ...}, ...]
    plot_curves_overlay({run.path.name: run.history for run in runs}, "compare.png")

    konbu compare runs/softmax runs/deep        # the hiragana tutorial's softmax vs CNN, one command

A run is anything with `.info` (run.json as a dict) and `.path`; `.model` is only read for the
parameter count of a run.json that lacks a summary. Curves are drawn against the epoch, the one
axis on which runs with different batch sizes line up; each run has one colour, training solid and
validation dashed.
"""

from pathlib import Path

from matplotlib.ticker import MaxNLocator, PercentFormatter

from .canvas import new_figure, save_figure

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
          "#bcbd22")

# Columns of compare_table, in order: (key, heading), for the CLI and the report.
COLUMNS = (("name", "run"), ("model", "model"), ("dataset", "dataset"), ("params", "params"),
           ("epochs", "epochs"), ("seconds", "train time"), ("train_accuracy", "train acc"),
           ("val_accuracy", "val acc"), ("test_accuracy", "test acc"), ("test_loss", "test loss"))


def run_name(run) -> str:
    info = getattr(run, "info", None) or {}
    path = getattr(run, "path", None)
    return str(info.get("name") or (Path(path).name if path is not None else "run"))


def _params(run):
    summary = (run.info or {}).get("summary") or {}
    if isinstance(summary, dict) and "total_params" in summary:
        return int(summary["total_params"])
    model = getattr(run, "model", None)
    return sum(p.numel() for p in model.parameters()) if model is not None else None


def compare_table(runs) -> list:
    """One dict per run with the keys of COLUMNS: name, model, dataset, params (total),
    epochs, seconds (training time), train/val/test accuracy and test loss (None where the run
    has no such number, e.g. a run still training)."""
    rows = []
    for run in runs:
        info = run.info or {}
        final = info.get("final") or {}
        rows.append({
            "name": run_name(run),
            "model": info.get("model"),
            "dataset": info.get("dataset"),
            "params": _params(run),
            "epochs": (info.get("config") or {}).get("epochs"),
            "seconds": info.get("seconds"),
            "train_accuracy": final.get("train_accuracy"),
            "val_accuracy": final.get("val_accuracy"),
            "test_accuracy": final.get("test_accuracy"),
            "test_loss": final.get("test_loss"),
        })
    return rows


def unique_names(runs) -> list:
    """Run names, with the parent folder added where two runs share a name."""
    names = [run_name(run) for run in runs]
    clashes = {name for name in names if names.count(name) > 1}
    out = []
    for run, name in zip(runs, names):
        path = getattr(run, "path", None)
        if name in clashes and path is not None:
            name = f"{Path(path).parent.name}/{name}"
        while name in out:
            name += "'"
        out.append(name)
    return out


def _epochs(records):
    return sorted((r for r in records if isinstance(r, dict) and r.get("kind", "epoch") == "epoch"
                   and r.get("epoch") is not None), key=lambda r: r["epoch"])


def plot_curves_overlay(histories: dict, path) -> Path:
    """Loss and accuracy per epoch of several runs on two shared panels. `histories` maps a run
    name to its records (run.history, or all of metrics.jsonl: only epoch records are used).
    Returns the path written."""
    if not histories:
        raise ValueError("plot_curves_overlay needs at least one run's history")
    figure = new_figure(12, 4.8)
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    for index, (name, records) in enumerate(histories.items()):
        color = COLORS[index % len(COLORS)]
        epochs = _epochs(records)
        for ax, metric in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
            for split, style in (("train", "-"), ("val", "--")):
                key = f"{split}_{metric}"
                points = [(r["epoch"], r[key]) for r in epochs if r.get(key) is not None]
                if points:
                    label = f"{name} ({'training' if split == 'train' else 'validation'})"
                    ax.plot([p[0] for p in points], [p[1] for p in points], style, color=color, marker="o",
                            markersize=4 if split == "train" else 5, linewidth=1.8 if split == "train" else 1.4,
                            label=label)
    for ax, title, ylabel in ((loss_ax, "Loss (lower is better)", "cross-entropy loss"),
                              (accuracy_ax, "Accuracy (higher is better)", "accuracy")):
        ax.set_title(title, fontsize=12)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no epochs recorded", transform=ax.transAxes, ha="center", va="center", color="0.5")
    last_epoch = max((r["epoch"] for records in histories.values() for r in _epochs(records)), default=1)
    for ax in (loss_ax, accuracy_ax):
        ax.set_xlim(0.5, last_epoch + 0.5)   # whole epochs only: a 1-epoch run would get ticks at 0.975 ...
    loss_ax.set_ylim(bottom=0)
    accuracy_ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    accuracy_ax.set_ylim(top=1.02)
    figure.suptitle("Runs compared: solid = training, dashed = validation (one colour per run)", fontsize=11)
    return save_figure(figure, path)
