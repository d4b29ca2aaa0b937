"""HTML building blocks for report.html: the inline stylesheet, escaping, number formats, tables.

    from konbu.inspect.html import CSS, escape, format_number, table
    table(["metric", "test"], [["accuracy", format_number(0.989, "accuracy")]], numeric=(1,))

Every piece of text goes through `escape` (html.escape with quotes): run names and config values
are user input. Numbers follow Keras's summary where it has a convention (KB = 1024 bytes).
"""

import base64
import html
import json
from datetime import datetime

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1d1d1f; background: #fafafa; margin: 0; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; box-sizing: border-box; }
h1 { font-size: 1.8em; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 1.25em; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
.subtitle { color: #555; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 0.92em; }
th, td { padding: 4px 12px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
.scroll { max-width: 100%; overflow-x: auto; }
th { background: #f2f2f2; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #eef6ee; font-weight: 600; }
tr.worst td { background: #fdf3e7; }
h3 { font-size: 1.0em; margin: 6px 0 4px; }
dl.summary-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px 18px;
                  margin: 8px 0; }
dl.summary-grid div { border-left: 3px solid #e4e4e4; padding: 2px 10px; min-width: 0; }
dl.summary-grid dt { color: #666; font-size: 0.82em; }
dl.summary-grid dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.summary td, .summary th { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.95em; }
.totals { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; margin: 4px 0; }
figure { margin: 16px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; margin-top: 4px; }
.note { color: #777; font-size: 0.9em; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; }
nav.toc { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 10px 0 0; font-size: 0.9em; }
nav.toc a { color: #0b5cad; text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
.callout { border-left: 4px solid #d62728; background: #fdf0f0; padding: 8px 14px; margin: 10px 0; }
.pair { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 24px; align-items: start; }
.pair figure { margin-top: 6px; }
@media (max-width: 900px) { .pair { display: block; } main { padding: 16px; } }
section { scroll-margin-top: 8px; }
.finding { border-left: 4px solid #999; padding: 4px 14px; margin: 12px 0; }
.finding.severity-3 { border-color: #d62728; background: #fdf0f0; }
.finding.severity-2 { border-color: #e6a100; background: #fff8e6; }
.finding .next code { display: block; margin: 2px 0; }
"""


def escape(value) -> str:
    return html.escape(str(value), quote=True)


def embedded_figure(path, caption: str) -> str:
    """A PNG embedded as a data: URI with its caption: the page stays one self-contained file."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def format_number(value, kind="") -> str:
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


def format_date(text) -> str:
    try:
        return datetime.fromisoformat(str(text)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(text)


def format_duration(seconds) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s"


def format_shape(shape) -> str:
    """Keras style: [null, 26, 26, 32] -> "(None, 26, 26, 32)"; several outputs are listed."""
    if isinstance(shape, (list, tuple)):
        if shape and all(isinstance(part, (list, tuple)) for part in shape):
            return ", ".join(format_shape(part) for part in shape)
        parts = ["None" if dim is None else str(dim) for dim in shape]
        return "(" + ", ".join(parts) + (",)" if len(parts) == 1 else ")")
    return "?" if shape is None else str(shape)


def format_bytes(count) -> str:
    # Keras's summary counts KB as 1024 bytes; follow it so the numbers match `model.summary()`.
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.2f} {unit}" if unit != "B" else f"{count} B"
        count /= 1024


def format_mult_adds(count) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count:,} ({count / size:.2f} {unit})"
    return f"{count:,}"


def table(header, rows, numeric=(), row_classes=None) -> str:
    head = "".join(f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cells = "".join(f'<td class="num">{escape(c)}</td>' if i in numeric else f"<td>{escape(c)}</td>"
                        for i, c in enumerate(row))
        css = row_classes[r] if row_classes and row_classes[r] else ""
        body.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def flatten(config, prefix=""):
    """Nested dicts become dotted keys, so the config reads as one two-column table."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from flatten(value, prefix=f"{name}.")
        else:
            yield name, value


def plain(value) -> str:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    return "–" if value is None else str(value)
