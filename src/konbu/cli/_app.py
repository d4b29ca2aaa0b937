"""The app every CLI module registers on: typer app, consoles, and the `command` decorator.

A user mistake (a KonbuError) prints one or two lines and exits 2, never a traceback.
"""

import functools
import os

import typer
from rich.console import Console

from ..errors import KonbuError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="konbu: train, inspect and use CNN image classifiers (the tutorials' models, by name).")
console = Console()
if not console.is_terminal and "COLUMNS" not in os.environ:
    console.width = 140  # piped or captured output: rich would assume 80 columns and wrap the tables
err_console = Console(stderr=True)


def reports_errors(command):
    """A KonbuError becomes its message on stderr and exit code 2."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KonbuError as error:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return wrapper


def command(name=None, on=None):
    """Register a function as `konbu NAME` (or `konbu GROUP NAME` with on=GROUP's Typer)."""
    def register(function):
        return (on or app).command(name)(reports_errors(function))
    return register


def group(name: str, help: str) -> typer.Typer:
    """A command group (`konbu show filters ...`) registered on the app."""
    sub = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=help)
    app.add_typer(sub, name=name)
    return sub


def command_names() -> set:
    """Top-level command names that exist now (for the 'next:' hints)."""
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    return names | {g.name for g in app.registered_groups}
