"""The report's Diagnosis section: diagnosis.json's findings, most important first, each with its
evidence, the next commands to try and its evidence figure.

    from konbu.inspect.diagnosis import diagnosis_section
    diagnosis_section(findings, figures)     # findings: diagnosis.json's list; figures: {stem: path}

Written by konbu.reporting (`write_diagnosis`), found by konbu.diagnosis; an empty list renders a
one-line "nothing found" so the section says the run was checked.
"""

from pathlib import Path

from .html import embedded_figure, escape

SEVERITY = {3: "went wrong", 2: "could go better", 1: "worth knowing"}


def diagnosis_section(findings: list, figures: dict) -> str:
    """HTML for the findings (dicts with id, severity, title, evidence, next, figure)."""
    if not isinstance(findings, list):
        return ""
    if not findings:
        return '<p class="note">konbu diagnose found nothing to remark on in this run.</p>'
    return "".join(_finding(item, figures) for item in findings if isinstance(item, dict))


def _finding(item: dict, figures: dict) -> str:
    severity = item.get("severity") if item.get("severity") in SEVERITY else 1
    commands = "".join(f"<code>{escape(command)}</code>" for command in item.get("next") or [])
    stem = Path(item.get("figure") or "").stem
    shown = embedded_figure(figures[stem], item.get("title", "")) if stem in figures else ""
    return (f'<div class="finding severity-{severity}" id="finding-{escape(item.get("id", ""))}">'
            f'<strong>{escape(item.get("title", ""))}</strong> <span class="note">({SEVERITY[severity]})</span>'
            f'<p>{escape(item.get("evidence", ""))}</p>'
            + (f'<div class="next">next:{commands}</div>' if commands else "") + shown + "</div>")
