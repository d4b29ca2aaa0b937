"""report.html: one self-contained page that tells the story of a run.

    from konbu.inspect.report import write_report
    write_report("runs/mnist-cnn")        # -> runs/mnist-cnn/report.html

The page reads only the run directory, through konbu.runs: run.json (required); figures/*.png,
metrics.jsonl, calibration.json and evaluation.json (all optional; konbu.reporting.build_report
writes them).
Sections, top to bottom: diagnosis (diagnosis.json: what konbu.diagnosis found, with the next
commands and evidence figures), summary, why training stopped (when run.json has "stopped"), final
metrics, training curves, confusion matrix (+ the most-confused pairs), per-class metrics,
mistakes, filters (or a dense model's per-class weights), calibration, model summary, per-epoch
table, config, versions, then any other figure. Anything optional that is missing is left out,
not an error.

Self-contained means the file can be mailed or copied anywhere and still open offline: images are
embedded as base64 `data:` URIs, the CSS is inline, and no element loads a URL. Every piece of
text from the run is passed through `html.escape`, since run names and config values are user input.
"""

from pathlib import Path

from .. import atomic
from ..runs import (CALIBRATION_FILE, DIAGNOSIS_FILE, EVALUATION_FILE, FIGURES_DIR, REPORT_FILE, read_info,
                    read_metrics, read_optional_json)
from .confusion import most_confused_pairs
from .diagnosis import diagnosis_section
from .html import (CSS, embedded_figure, escape, flatten, format_bytes, format_date, format_duration,
                   format_mult_adds, format_number, format_shape, plain, table)

# Figures with a fixed section and caption; any other PNG follows under "Other figures", captioned
# from its file name.
KNOWN_FIGURES = {
    "curves": "Training curves: loss and accuracy as training progressed (validation once per epoch).",
    "confusion": "Confusion matrix: true class down the rows, predicted class across the columns.",
    "mistakes": "Misclassified test images, worst first (highest loss): true label, predicted label and "
                "the probability the model gave its (wrong) answer.",
    "filters-initial": "First-layer filters before training: random noise from the initialiser.",
    "filters": "First-layer filters after training: each small square is one learned kernel, the local pattern "
               "the first layer responds to.",
    "class_weights": "Weights of each class as an image (this model has no convolution): the evidence each "
                     "pixel gives for the class.",
    "calibration": "Reliability diagram on the validation split, before and after temperature scaling: bars "
                   "on the diagonal mean the stated percentages are right that often.",
}


# ----------------------------------------------------------------------------- reading the run

def _figure_paths(run_dir: Path) -> dict:
    """{stem: path} of figures/*.png: the known figures in their order, then the others by name."""
    folder = run_dir / FIGURES_DIR
    if not folder.is_dir():
        return {}
    pngs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    first = [folder / f"{name}.png" for name in KNOWN_FIGURES if (folder / f"{name}.png") in pngs]
    return {p.stem: p for p in first + [p for p in pngs if p not in first]}


# ----------------------------------------------------------------------------- sections

def _section(key, title, body) -> str:
    """<section id=KEY><h2>TITLE</h2>BODY</section>, or "" for an empty body (a section left out)."""
    if not body:
        return ""
    return f'<section id="{key}"><h2>{escape(title)}</h2>{body}</section>'


def _header(run) -> str:
    name = run.get("name") or "unnamed run"
    subtitle = " on ".join(escape(part) for part in (run.get("model"), run.get("dataset")) if part)
    return (f"<header><h1>{escape(name)}</h1>"
            + (f'<p class="subtitle">{subtitle}</p>' if subtitle else "") + "</header>")


def _toc(sections) -> str:
    links = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title, body in sections if body)
    return f'<nav class="toc" aria-label="sections">{links}</nav>' if links else ""


def _stopped(run) -> dict:
    stopped = run.get("stopped")
    return stopped if isinstance(stopped, dict) and stopped else {}


def _summary(run, evaluation, calibration) -> str:
    """The run at a glance: what was trained on what, how long, how well, how sure."""
    facts = [("Model", run.get("model")), ("Dataset", run.get("dataset"))]
    data = run.get("data") if isinstance(run.get("data"), dict) else {}
    counts = [f"{data[k]:,} {label}" for k, label in (("train", "train"), ("validation", "validation"),
                                                      ("test", "test")) if isinstance(data.get(k), int)]
    if counts:
        facts.append(("Images", " / ".join(counts)))
    summary = run.get("summary") if isinstance(run.get("summary"), dict) else {}
    if isinstance(summary.get("total_params"), int):
        facts.append(("Parameters", f"{summary['total_params']:,}"))
    facts.append(("Device", " · ".join(str(run[k]) for k in ("device", "precision") if run.get(k))))
    if run.get("started"):
        facts.append(("Started", format_date(run["started"])))
    if run.get("finished"):
        facts.append(("Finished", format_date(run["finished"])))
    if isinstance(run.get("seconds"), (int, float)):
        facts.append(("Training time", format_duration(run["seconds"])))
    if run.get("status"):
        facts.append(("Status", run["status"]))
    stopped = _stopped(run)
    if stopped:
        facts.append(("Stopped", _stop_text(stopped)))
    if isinstance(run.get("best_epoch"), int):
        facts.append(("Best epoch", run["best_epoch"]))
    final = run.get("final") if isinstance(run.get("final"), dict) else {}
    accuracy = evaluation.get("accuracy", final.get("test_accuracy"))
    if isinstance(accuracy, (int, float)):
        facts.append(("Test accuracy", format_number(float(accuracy), "accuracy")))
    if isinstance(evaluation.get("balanced_accuracy"), (int, float)):
        facts.append(("Balanced accuracy", format_number(float(evaluation["balanced_accuracy"]), "accuracy")))
    if isinstance(calibration.get("temperature"), (int, float)):
        facts.append(("Temperature", f"{calibration['temperature']:.3g} (calibrated)"))
    items = "".join(f"<div><dt>{escape(label)}</dt><dd>{escape(value)}</dd></div>"
                    for label, value in facts if value not in (None, ""))
    return f'<dl class="summary-grid">{items}</dl>' if items else ""


def _stop_text(stopped) -> str:
    reason = stopped.get("reason") or "stopped"
    where = [f"{key} {plain(stopped[key])}" for key in ("epoch", "step") if stopped.get(key) is not None]
    return f"{reason}" + (f" (at {', '.join(where)})" if where else "")


def _stop_section(run) -> str:
    stopped = _stopped(run)
    if not stopped:
        return ""
    extra = [[key, plain(value)] for key, value in stopped.items() if key not in ("reason", "step", "epoch")]
    return (f'<div class="callout"><strong>Training stopped:</strong> {escape(_stop_text(stopped))}</div>'
            + (f'<div class="scroll">{table(["detail", "value"], extra)}</div>' if extra else ""))


SPLITS = (("train", "Training"), ("val", "Validation"), ("test", "Test"))


def _final_metrics(run) -> str:
    final = run.get("final")
    if not isinstance(final, dict) or not final:
        return ""
    # train_loss, val_accuracy, ... become a grid: one row per metric, one column per split.
    grid, other = {}, []
    for key, value in final.items():
        split, _, metric = key.partition("_")
        if metric and split in dict(SPLITS) and not isinstance(value, (dict, list)):
            grid.setdefault(metric, {})[split] = value
        else:
            other.append((key, value))
    splits = [(s, label) for s, label in SPLITS if any(s in by_split for by_split in grid.values())]
    parts = []
    if grid:
        rows = [[metric.replace("_", " ")] + [format_number(by_split.get(s), metric) for s, _ in splits]
                for metric, by_split in grid.items()]
        parts.append('<div class="scroll">' + table(["metric"] + [label for _, label in splits], rows,
                                                     numeric=set(range(1, len(splits) + 1))) + "</div>")
    if other:
        rows = [[key.replace("_", " "), plain(value) if isinstance(value, (dict, list))
                 else format_number(value, key)] for key, value in other]
        parts.append('<div class="scroll">' + table(["metric", "value"], rows, numeric={1}) + "</div>")
    if isinstance(run.get("best_epoch"), int):
        parts.append(f'<p class="note">Weights saved from epoch {escape(run["best_epoch"])} '
                     f"(the best by the validation metric).</p>")
    return "".join(parts)


def _model_summary(run) -> str:
    summary = run.get("summary")
    if not isinstance(summary, dict) or not isinstance(summary.get("rows"), list):
        return ""
    rows = []
    for layer in summary["rows"]:
        if not isinstance(layer, dict):
            continue
        name, kind = layer.get("name", ""), layer.get("type", "")
        rows.append([
            f"{name} ({kind})" if kind else str(name),
            format_shape(layer.get("output_shape")),
            format_number(layer.get("params", 0)),
            format_number(layer.get("mult_adds")),
        ])
    parts = ['<div class="summary scroll">',
             table(["Layer (type)", "Output Shape", "Param #", "Mult-adds"], rows, numeric={2, 3}),
             "</div>"]
    param_bytes = summary.get("param_bytes")
    totals = []
    for key, label in (("total_params", "Total params"), ("trainable_params", "Trainable params"),
                       ("non_trainable_params", "Non-trainable params")):
        if isinstance(summary.get(key), int):
            text = f"{label}: {summary[key]:,}"
            if key == "total_params" and isinstance(param_bytes, int):
                text += f" ({format_bytes(param_bytes)})"
            totals.append(text)
    if isinstance(summary.get("total_mult_adds"), int):
        totals.append(f"Total mult-adds: {format_mult_adds(summary['total_mult_adds'])}")
    parts += [f'<p class="totals">{escape(line)}</p>' for line in totals]
    return "".join(parts) + _stages(run)


def _stages(run) -> str:
    """--fine-tune: each stage's epochs, what trained, trainable vs frozen parameters."""
    fine_tune = run.get("fine_tune")
    if not isinstance(fine_tune, dict) or not isinstance(fine_tune.get("stages"), list):
        return ""
    rows = [[str(stage.get("stage")), "–".join(str(e) for e in stage.get("epochs", [])), str(stage.get("backbone")),
             ", ".join(map(str, stage.get("frozen_blocks") or [])) or "none",
             format_number(stage.get("trainable")), format_number(stage.get("frozen"))]
            for stage in fine_tune["stages"] if isinstance(stage, dict)]
    note = (f'<p class="note">Fine-tuned in two stages: the backbone frozen for {escape(str(fine_tune.get("freeze_epochs")))} '
            f'epoch(s), then {escape(str(fine_tune.get("unfreeze")))} of it unfrozen at '
            f'{escape(str(fine_tune.get("backbone_lr_ratio")))} times the head\'s learning rate.</p>')
    return note + table(["Stage", "Epochs", "Backbone", "Frozen blocks (input side first)", "Trainable params",
                         "Frozen params"], rows, numeric={4, 5})


def _caption(path: Path) -> str:
    if path.stem in KNOWN_FIGURES:
        return KNOWN_FIGURES[path.stem]
    words = path.stem.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def _figure(path, caption=None) -> str:
    return "" if path is None else embedded_figure(path, caption or _caption(path))


def _other_figures(figures, shown) -> str:
    return "".join(_figure(path) for stem, path in figures.items() if stem not in shown)


def _confusion(figures, evaluation) -> str:
    figure = _figure(figures.get("confusion"))
    confusion = evaluation.get("confusion")
    classes = [row.get("label") for row in evaluation.get("per_class", []) if isinstance(row, dict)]
    try:
        pairs = most_confused_pairs(confusion, classes) if isinstance(confusion, list) and confusion else []
    except (ValueError, TypeError, RuntimeError):   # a hand-edited evaluation.json: show the figure alone
        pairs = []
    if not pairs:
        return figure
    rows = [[p["true"], p["predicted"], f"{p['count']:,}", f"{p['fraction']:.1%}"] for p in pairs]
    pair_table = ('<div><h3>Most-confused pairs</h3><div class="scroll">'
                  + table(["true", "predicted as", "images", "of the class"], rows, numeric={2, 3})
                  + '</div><p class="note">The largest off-diagonal cells: which class the model most often '
                    "takes for which.</p></div>")
    return f'<div class="pair"><div>{figure}</div>{pair_table}</div>' if figure else pair_table


def _per_class(evaluation) -> str:
    per_class = [row for row in evaluation.get("per_class", []) if isinstance(row, dict)]
    if not per_class:
        return ""
    worst = sorted(range(len(per_class)), key=lambda i: per_class[i].get("f1", 0.0))[:3]
    rows, classes = [], []
    for index, row in enumerate(per_class):
        rows.append([row.get("label", index)] + [f"{row.get(k, 0.0):.3f}" for k in ("precision", "recall", "f1")]
                    + [f"{row.get('support', 0):,}"])
        classes.append("worst" if index in worst and len(per_class) > 3 else "")
    where = f"{evaluation.get('split', 'test')} split of {evaluation.get('dataset', 'the dataset')}"
    facts = [f"{label} {format_number(float(evaluation[key]), 'accuracy')}"
             for key, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"),
                                ("top5_accuracy", "top-5 accuracy")) if isinstance(evaluation.get(key), (int, float))]
    n = evaluation.get("n")
    intro = (f'<p class="note">On the {escape(where)}' + (f" ({n:,} images)" if isinstance(n, int) else "")
             + (": " + escape(", ".join(facts)) if facts else "") + ". The three classes with the lowest F1 are "
             "marked.</p>")
    return intro + '<div class="scroll">' + table(["class", "precision", "recall", "F1", "support"], rows,
                                                   numeric={1, 2, 3, 4}, row_classes=classes) + "</div>"


def _calibration(figures, calibration, evaluation) -> str:
    figure = _figure(figures.get("calibration"))
    if not calibration:
        if not figure:
            return ""
        return figure
    temperature = calibration.get("temperature")
    rows = []
    for label, before, after, kind in (("validation NLL", "val_nll_before", "val_nll_after", "loss"),
                                       ("validation ECE", "ece_before", "ece_after", "ece")):
        if isinstance(calibration.get(before), (int, float)) and isinstance(calibration.get(after), (int, float)):
            rows.append([label] + [f"{calibration[k]:.2%}" if kind == "ece" else f"{calibration[k]:.4f}"
                                   for k in (before, after)])
    if isinstance(evaluation.get("ece"), (int, float)) and isinstance(evaluation.get("calibrated_ece"), (int, float)):
        rows.append(["test ECE", f"{evaluation['ece']:.2%}", f"{evaluation['calibrated_ece']:.2%}"])
    if isinstance(evaluation.get("loss"), (int, float)) and isinstance(evaluation.get("calibrated_loss"), (int, float)):
        rows.append(["test NLL", f"{evaluation['loss']:.4f}", f"{evaluation['calibrated_loss']:.4f}"])
    text = ""
    if isinstance(temperature, (int, float)):
        sense = ("over-confident: its percentages are softened" if temperature > 1.0 else
                 "under-confident: its percentages are sharpened" if temperature < 1.0 else "already calibrated")
        text = (f'<p>Fitted temperature <strong>T = {temperature:.3g}</strong> on '
                f"{format_number(calibration.get('n'))} validation images: the raw model was {sense}. "
                "<code>konbu predict</code> reports softmax(logits / T); the predicted class, and so the "
                "accuracy, do not change. ECE (expected calibration error) is the average gap between "
                "stated confidence and actual accuracy over 15 confidence bins.</p>")
    numbers = (f'<div class="scroll">{table(["", "before (T = 1)", "after"], rows, numeric={1, 2})}</div>'
               if rows else "")
    return text + numbers + figure


EPOCH_COLUMNS = (
    ("epoch", "epoch"), ("stage", "stage"), ("train_loss", "train loss"), ("train_accuracy", "train accuracy"),
    ("val_loss", "val loss"), ("val_accuracy", "val accuracy"), ("seconds", "seconds"),
    ("images_per_second", "images/s"),
)


def _epoch_table(records, best_epoch) -> str:
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if not epochs:
        return ""
    # Drop columns no epoch has (e.g. val_* when there is no validation split).
    columns = [(key, label) for key, label in EPOCH_COLUMNS if any(r.get(key) is not None for r in epochs)]
    rows, classes = [], []
    for record in epochs:
        row = []
        for key, _ in columns:
            value = record.get(key)
            if key == "seconds" and isinstance(value, (int, float)):
                row.append(f"{value:.1f}")
            elif key == "images_per_second" and isinstance(value, (int, float)):
                row.append(f"{value:,.0f}")
            else:
                row.append(format_number(value, key))
        rows.append(row)
        classes.append("best" if best_epoch is not None and record.get("epoch") == best_epoch else "")
    note = '<p class="note">The highlighted row is the epoch whose weights were kept.</p>' if any(classes) else ""
    return ('<div class="scroll">'
            + table([label for _, label in columns], rows, numeric=set(range(len(columns))), row_classes=classes)
            + "</div>" + note)


def _key_value(mapping) -> str:
    if not isinstance(mapping, dict) or not mapping:
        return ""
    rows = [[key, plain(value)] for key, value in flatten(mapping)]
    return '<div class="scroll">' + table(["key", "value"], rows) + "</div>"


# ----------------------------------------------------------------------------- the page

def render_report(run_dir) -> str:
    """The report's HTML text for a run directory (see `write_report`)."""
    run_dir = Path(run_dir)
    run = read_info(run_dir)
    records = read_metrics(run_dir)
    figures = _figure_paths(run_dir)
    calibration = read_optional_json(run_dir, CALIBRATION_FILE)
    evaluation = read_optional_json(run_dir, EVALUATION_FILE)
    findings = read_optional_json(run_dir, DIAGNOSIS_FILE).get("findings")   # None: never diagnosed
    best_epoch = run.get("best_epoch") if isinstance(run.get("best_epoch"), int) else None
    weights = "filters" if "filters" in figures else "class_weights"
    # (id, heading, body); a section whose body is empty is left out of the page and the contents
    sections = [
        ("diagnosis", "Diagnosis", diagnosis_section(findings, figures)),
        ("summary", "Summary", _summary(run, evaluation, calibration)),
        ("stopped", "Why training stopped", _stop_section(run)),
        ("final-metrics", "Final metrics", _final_metrics(run)),
        ("curves", "Training curves", _figure(figures.get("curves"))),
        ("confusion", "Confusion matrix", _confusion(figures, evaluation)),
        ("per-class", "Per-class metrics", _per_class(evaluation)),
        ("mistakes", "Mistakes", _figure(figures.get("mistakes"))),
        ("filters", "Filters" if weights == "filters" else "Class weights",
         _figure(figures.get("filters-initial")) + _figure(figures.get(weights)) if weights == "filters"
         else _figure(figures.get(weights))),
        ("calibration", "Calibration", _calibration(figures, calibration, evaluation)),
        ("model-summary", "Model summary", _model_summary(run)),
        ("epochs", "Per-epoch metrics", _epoch_table(records, best_epoch)),
        ("config", "Config", _key_value(run.get("config"))),
        ("versions", "Versions", _key_value(run.get("versions"))),
        ("other-figures", "Other figures",
         _other_figures(figures, set(KNOWN_FIGURES) | {Path(f.get("figure") or "").stem for f in findings or []
                                                       if isinstance(f, dict)})),
    ]
    title = f"konbu report: {run.get('name') or run_dir.name}"
    body = [_header(run), _toc(sections)] + [_section(*section) for section in sections]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(part for part in body if part) + "\n</main></body></html>\n"
    )


def write_report(run_dir) -> Path:
    """Write `run_dir/report.html` (atomically) and return its path.

    Raises `RunDirectoryError` if run.json is missing or unreadable.
    """
    run_dir = Path(run_dir)
    return atomic.write_text(run_dir / REPORT_FILE, render_report(run_dir))
