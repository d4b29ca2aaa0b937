"""`konbu report`: a run's report.html, with every figure and evaluation.json rebuilt.

    konbu report runs/deep                      every figure, evaluation.json, then report.html
    konbu report runs/deep --data-dir /mnt/mnist   the run's dataset lies elsewhere on this machine
"""

from pathlib import Path
from typing import Optional

import typer

from ._app import command, console


@command("report")
def report(run: Path = typer.Argument(..., help="a run directory"),
           data_dir: Optional[Path] = typer.Option(None, "--data-dir",
                                                   help="where the run's dataset lies [default: as trained]")):
    """Rebuild the run's report.html: curves, confusion, mistakes, filters, calibration, per-class table."""
    from ..reporting import build_report
    from ..runs import Run

    path = build_report(Run.load(run), data_dir=data_dir)
    console.print(f"report: {path}", highlight=False, soft_wrap=True)
    console.print(f"next: open it in a browser (file://{path.resolve()})", highlight=False, soft_wrap=True)
