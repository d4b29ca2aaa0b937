"""report.html: one self-contained page that tells the story of a run.

    from konbu.inspect.report import write_report
    write_report("runs/mnist-cnn")        # -> runs/mnist-cnn/report.html

The page reads only the run directory: run.json (required), figures/*.png and metrics.jsonl
(both optional). Sections, top to bottom: header, final metrics, model summary, figures,
per-epoch table, config, versions. Anything optional that is missing is left out, not an error.

Self-contained means the file can be mailed or copied anywhere and still open offline: images are
embedded as base64 `data:` URIs, the CSS is inline, and no element loads a URL. Every piece of
text from the run is passed through `html.escape`, since run names and config values are user input.
"""

import base64
import html
import json
from datetime import datetime
from pathlib import Path

from .. import atomic
from ..errors import RunDirectoryError

REPORT_NAME = "report.html"

# Figures with a fixed place and caption; any other PNG follows, captioned from its file name.
KNOWN_FIGURES = {
    "curves": "Training curves: loss and accuracy as training progressed (validation once per epoch).",
    "confusion": "Confusion matrix: true class down the rows, predicted class across the columns.",
}

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1d1d1f; background: #fafafa; margin: 0; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 1.8em; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 1.25em; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
.subtitle { color: #555; margin: 0 0 12px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.facts dt { color: #666; }
dl.facts dd { margin: 0; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 0.92em; }
th, td { padding: 4px 12px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #eef6ee; font-weight: 600; }
.summary td, .summary th { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.95em; }
.totals { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; margin: 4px 0; }
figure { margin: 16px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; margin-top: 4px; }
.note { color: #777; font-size: 0.9em; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


# ----------------------------------------------------------------------------- reading the run

def _read_run_json(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    if not path.is_file():
        raise RunDirectoryError(
            f"cannot write a report: {path} not found. A run directory holds the run.json written by "
            f"`konbu train`; check the path, or train a run first."
        )
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirectoryError(f"cannot read {path}: {error}. Expected the JSON written by `konbu train`.") from error
    if not isinstance(run, dict):
        raise RunDirectoryError(f"{path} holds a {type(run).__name__}, expected a JSON object")
    return run


def _read_metrics(run_dir: Path) -> list:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            # A run killed mid-write can leave a partial last line; the rest is still worth showing.
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _figure_paths(run_dir: Path) -> list:
    folder = run_dir / "figures"
    if not folder.is_dir():
        return []
    pngs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    first = [folder / f"{name}.png" for name in KNOWN_FIGURES if (folder / f"{name}.png") in pngs]
    return first + [p for p in pngs if p not in first]


# ----------------------------------------------------------------------------- formatting

def _format_number(value, kind="") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:     # NaN: a diverged run
            return "nan"
        if "accuracy" in kind:
            return f"{value:.2%}"
        if "loss" in kind:
            return f"{value:.4f}"
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def _format_date(text) -> str:
    try:
        return datetime.fromisoformat(str(text)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(text)


def _format_duration(seconds) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s"


def _format_shape(shape) -> str:
    """Keras style: [null, 26, 26, 32] -> "(None, 26, 26, 32)"; several outputs are listed."""
    if isinstance(shape, (list, tuple)):
        if shape and all(isinstance(part, (list, tuple)) for part in shape):
            return ", ".join(_format_shape(part) for part in shape)
        parts = ["None" if dim is None else str(dim) for dim in shape]
        return "(" + ", ".join(parts) + (",)" if len(parts) == 1 else ")")
    return "?" if shape is None else str(shape)


def _format_bytes(count) -> str:
    # Keras's summary counts KB as 1024 bytes; follow it so the numbers match `model.summary()`.
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.2f} {unit}" if unit != "B" else f"{count} B"
        count /= 1024


def _format_mult_adds(count) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count:,} ({count / size:.2f} {unit})"
    return f"{count:,}"


def _table(header, rows, numeric=(), row_classes=None) -> str:
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cells = "".join(f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                        for i, c in enumerate(row))
        css = row_classes[r] if row_classes and row_classes[r] else ""
        body.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _flatten(config, prefix=""):
    """Nested dicts become dotted keys, so the config reads as one two-column table."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, prefix=f"{name}.")
        else:
            yield name, value


def _plain(value) -> str:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    return "–" if value is None else str(value)


# ----------------------------------------------------------------------------- sections

def _header(run) -> str:
    name = run.get("name") or "unnamed run"
    facts = [("Model", run.get("model")), ("Dataset", run.get("dataset"))]
    if run.get("started"):
        facts.append(("Started", _format_date(run["started"])))
    if run.get("finished"):
        facts.append(("Finished", _format_date(run["finished"])))
    if isinstance(run.get("seconds"), (int, float)):
        facts.append(("Training time", _format_duration(run["seconds"])))
    facts.append(("Device", run.get("device")))
    items = "".join(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in facts if value is not None)
    subtitle = " on ".join(_e(part) for part in (run.get("model"), run.get("dataset")) if part)
    return (f"<header><h1>{_e(name)}</h1>"
            + (f'<p class="subtitle">{subtitle}</p>' if subtitle else "")
            + f'<dl class="facts">{items}</dl></header>')


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
    parts = ["<section><h2>Final metrics</h2>"]
    if grid:
        rows = [[metric.replace("_", " ")] + [_format_number(by_split.get(s), metric) for s, _ in splits]
                for metric, by_split in grid.items()]
        parts.append(_table(["metric"] + [label for _, label in splits], rows,
                            numeric=set(range(1, len(splits) + 1))))
    if other:
        rows = [[key.replace("_", " "), _plain(value) if isinstance(value, (dict, list))
                 else _format_number(value, key)] for key, value in other]
        parts.append(_table(["metric", "value"], rows, numeric={1}))
    if isinstance(run.get("best_epoch"), int):
        parts.append(f'<p class="note">Weights saved from epoch {_e(run["best_epoch"])} '
                     f"(the best by the validation metric).</p>")
    parts.append("</section>")
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
            _format_shape(layer.get("output_shape")),
            _format_number(layer.get("params", 0)),
            _format_number(layer.get("mult_adds")),
        ])
    parts = ['<section><h2>Model summary</h2><div class="summary">',
             _table(["Layer (type)", "Output Shape", "Param #", "Mult-adds"], rows, numeric={2, 3}),
             "</div>"]
    param_bytes = summary.get("param_bytes")
    totals = []
    for key, label in (("total_params", "Total params"), ("trainable_params", "Trainable params"),
                       ("non_trainable_params", "Non-trainable params")):
        if isinstance(summary.get(key), int):
            text = f"{label}: {summary[key]:,}"
            if key == "total_params" and isinstance(param_bytes, int):
                text += f" ({_format_bytes(param_bytes)})"
            totals.append(text)
    if isinstance(summary.get("total_mult_adds"), int):
        totals.append(f"Total mult-adds: {_format_mult_adds(summary['total_mult_adds'])}")
    parts += [f'<p class="totals">{_e(line)}</p>' for line in totals]
    parts.append("</section>")
    return "".join(parts)


def _caption(path: Path) -> str:
    if path.stem in KNOWN_FIGURES:
        return KNOWN_FIGURES[path.stem]
    words = path.stem.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def _figures(paths) -> str:
    if not paths:
        return ""
    parts = ["<section><h2>Figures</h2>"]
    for path in paths:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = _caption(path)
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    parts.append("</section>")
    return "".join(parts)


EPOCH_COLUMNS = (
    ("epoch", "epoch"), ("train_loss", "train loss"), ("train_accuracy", "train accuracy"),
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
                row.append(_format_number(value, key))
        rows.append(row)
        classes.append("best" if best_epoch is not None and record.get("epoch") == best_epoch else "")
    note = '<p class="note">The highlighted row is the epoch whose weights were kept.</p>' if any(classes) else ""
    return ("<section><h2>Per-epoch metrics</h2>"
            + _table([label for _, label in columns], rows, numeric=set(range(len(columns))), row_classes=classes)
            + note + "</section>")


def _key_value_section(title, mapping) -> str:
    if not isinstance(mapping, dict) or not mapping:
        return ""
    rows = [[key, _plain(value)] for key, value in _flatten(mapping)]
    return f"<section><h2>{_e(title)}</h2>" + _table(["key", "value"], rows) + "</section>"


# ----------------------------------------------------------------------------- the page

def render_report(run_dir) -> str:
    """The report's HTML text for a run directory (see `write_report`)."""
    run_dir = Path(run_dir)
    run = _read_run_json(run_dir)
    records = _read_metrics(run_dir)
    best_epoch = run.get("best_epoch") if isinstance(run.get("best_epoch"), int) else None
    sections = [
        _header(run),
        _final_metrics(run),
        _model_summary(run),
        _figures(_figure_paths(run_dir)),
        _epoch_table(records, best_epoch),
        _key_value_section("Config", run.get("config")),
        _key_value_section("Versions", run.get("versions")),
    ]
    title = f"konbu report: {run.get('name') or run_dir.name}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(s for s in sections if s) + "\n</main></body></html>\n"
    )


def write_report(run_dir) -> Path:
    """Write `run_dir/report.html` (atomically) and return its path.

    Raises `RunDirectoryError` if run.json is missing or unreadable.
    """
    run_dir = Path(run_dir)
    return atomic.write_text(run_dir / REPORT_NAME, render_report(run_dir))
