"""`konbu report` and `konbu show calibration`: a run's report.html and its reliability diagram.

    konbu report runs/deep                      every figure, evaluation.json, then report.html
    konbu show calibration runs/deep            fits the temperature if the run has none yet
    konbu show calibration runs/deep --refit --out reliability.png
"""

from pathlib import Path
from typing import Optional

import typer

from ._app import command, console
from .show import show_app


@command("report")
def report(run: Path = typer.Argument(..., help="a run directory"),
           data_dir: Optional[Path] = typer.Option(None, "--data-dir",
                                                   help="where the run's dataset lies [default: as trained]")):
    """Rebuild the run's report.html: curves, confusion, mistakes, filters, calibration, per-class table."""
    from ..reporting import build_report
    from ..runs import Run

    loaded = Run.load(run)
    if data_dir is not None:
        loaded.info.setdefault("config", {})["data_dir"] = str(data_dir)   # this call only; run.json is kept
    path = build_report(loaded)
    console.print(f"report: {path}", highlight=False, soft_wrap=True)
    console.print(f"next: open it in a browser (file://{path.resolve()})", highlight=False, soft_wrap=True)


@command("calibration", on=show_app)
def calibration(run: Path = typer.Argument(..., help="a run directory"),
                out: Optional[Path] = typer.Option(None, "--out",
                                                   help="PNG to write [default: RUN/figures/calibration.png]"),
                refit: bool = typer.Option(False, "--refit", help="fit the temperature again even if the run has one")):
    """Reliability diagram before and after temperature scaling, with ECE; fits and stores T when missing."""
    from ..inspect.calibration import calibration_summary, plot_reliability
    from ..reporting import calibrate_run, figure_path, run_validation_split
    from ..runs import CALIBRATION_FILE, Run

    loaded = Run.load(run)
    val = run_validation_split(loaded)
    default, path = figure_path(loaded, "calibration"), None
    if refit or not (loaded.path / CALIBRATION_FILE).is_file():
        summary = calibrate_run(loaded, val)    # writes calibration.json and the default figure
        console.print(f"fitted temperature {summary['temperature']:.4g} on {summary['n']:,} validation images; "
                      f"saved in {loaded.path / CALIBRATION_FILE}", highlight=False, soft_wrap=True)
        path = default
    if out is not None or path is None:
        logits = loaded.logits(val.images)
        summary = calibration_summary(logits, val.labels, loaded.temperature)
        path = plot_reliability(logits, val.labels, loaded.temperature, out if out is not None else default)
    console.print(f"temperature {summary['temperature']:.4g}  validation NLL {summary['val_nll_before']:.4f} -> "
                  f"{summary['val_nll_after']:.4f}  ECE {summary['ece_before']:.2%} -> {summary['ece_after']:.2%}",
                  highlight=False)
    console.print(f"reliability diagram: {path}", highlight=False, soft_wrap=True)
