"""`konbu diagnose`: what went wrong in a run or could go better, the evidence, and the next command.

    konbu diagnose runs/deep                  the findings, most important first
    konbu diagnose runs/deep --json           the same as data (each finding's "id" is stable)
    konbu diagnose runs/deep --data-dir DIR   the run's dataset lies elsewhere on this machine
"""

import json
from pathlib import Path
from typing import Optional

import typer

from ._app import command, console

STYLE = {3: "bold red", 2: "bold yellow", 1: "bold"}


@command("diagnose")
def diagnose(run: Path = typer.Argument(..., help="a run directory"),
             as_json: bool = typer.Option(False, "--json", help="print the findings as one JSON list"),
             data_dir: Optional[Path] = typer.Option(None, "--data-dir",
                                                     help="where the run's dataset lies [default: as trained]")):
    """Read a run as a teacher would: overfitting, learning rate, dead units, confusions, data, calibration."""
    from rich.markup import escape

    from ..diagnosis import diagnose as find

    findings = find(run, data_dir=data_dir)
    if as_json:
        print(json.dumps([finding.to_dict() for finding in findings]))
        return
    if not findings:
        console.print(f"{run}: nothing to remark on: no check found a problem", highlight=False)
        return
    for finding in findings:
        console.print(f"[{STYLE.get(finding.severity, 'bold')}]{escape(finding.title)}[/] [dim]({finding.id})[/]",
                      highlight=False)
        console.print(f"  {escape(finding.evidence)}", highlight=False, soft_wrap=True)
        for line in finding.next:
            console.print(f"  next: {escape(line)}", highlight=False, soft_wrap=True)
        if finding.figure:
            console.print(f"  figure: {finding.figure}", highlight=False, soft_wrap=True)
