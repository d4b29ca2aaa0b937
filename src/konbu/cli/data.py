"""`konbu datasets`: what can be loaded and what is on disk.

    konbu datasets                 the table of every registered dataset
    konbu datasets info NAME       counts per class, shape, mean/std, source, citation
    konbu datasets show NAME --out grid.png
"""

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .. import data
from ._app import app, console, reports_errors


datasets_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                           help="List every dataset konbu can load, and whether it is on disk now (offline).")
app.add_typer(datasets_app, name="datasets")


@datasets_app.callback(invoke_without_command=True)
@reports_errors
def datasets(ctx: typer.Context,
             data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder to look in for file-based datasets")):
    """List every dataset konbu can load, and whether it is on disk now (offline)."""
    if ctx.invoked_subcommand:
        return
    table = Table(title="datasets")
    for column in ("name", "classes", "image", "train", "test", "offline", "source"):
        table.add_column(column, justify="right" if column in ("classes", "train", "test") else "left",
                         no_wrap=column != "source")
    for name in data.list_datasets():
        info = data.dataset_info(name)
        available = data.is_available(name, data_dir)
        table.add_row(name, str(len(info.classes)), "×".join(map(str, info.image_shape)),
                      f"{info.split_sizes['train']:,}", f"{info.split_sizes['test']:,}",
                      "[green]yes[/]" if available else "[yellow]no[/]", info.source)
    console.print(table)
