"""The app every CLI module registers on: typer app, consoles, and the `command` decorator.

A user mistake (a KonbuError) prints one or two lines and exits 2 (a lost training process,
ProcessError: 1), never a traceback. A Python warning raised while a command runs prints as one
`warning: <message>` line on stderr, without the source line Python's own display adds
(`paths = cifar_files(family, data_dir)` means nothing to a user). Try it with a dataset file
whose md5 is not the published one:

    konbu datasets info mnist --data-dir folder/with/other/mnist/files
"""

import functools
import inspect
import os
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import KonbuError

# Help is click's plain text, not typer's rich panels: drawing the panels, and importing rich.markdown
# for them, took the slowest `--help` from 0.37 to 0.62 s on a 2-core AVX2 CPU (benchmarks/HISTORY.md).
PLAIN_HELP = dict(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

app = typer.Typer(no_args_is_help=True, **PLAIN_HELP,
                  help="konbu: train, inspect and use CNN image classifiers (the tutorials' models, by name).")
console = Console()
if not console.is_terminal and "COLUMNS" not in os.environ:
    console.width = 140  # piped or captured output: rich would assume 80 columns and wrap the tables
err_console = Console(stderr=True)


def _tell(label: str, text: str):
    """`label text` on stderr, unwrapped; escaped, so brackets in a message are not read as rich markup."""
    err_console.print(f"{label} {escape(text)}", highlight=False, soft_wrap=True)


def show_warning(message, category, filename, lineno, file=None, line=None):
    """warnings.showwarning for the CLI: one `warning: <message>` line; the file, line number and
    source line Python prints are for the developer of the code that warned, not for a user."""
    _tell("[yellow]warning:[/]", " ".join(part.strip() for part in str(message).splitlines() if part.strip()))


def reports_errors(command):
    """A KonbuError becomes its message on stderr and exit code 2; a warning, one `warning:` line."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        # Around each command rather than once in main(): konbu.cli.testing.invoke and notebooks run
        # commands without main(). catch_warnings copies the filters (so -W and PYTHONWARNINGS still
        # apply) and puts showwarning back afterwards, leaving an in-process caller's own as it was.
        with warnings.catch_warnings():
            warnings.showwarning = show_warning   # the documented hook: "may be replaced"
            try:
                return command(*args, **kwargs)
            except KonbuError as error:
                _tell("[bold red]error:[/]", str(error))
                raise typer.Exit(error.exit_code) from None
    return wrapper


def first_paragraph(text: str | None) -> str:
    """What a command list shows of a command's help: its first paragraph, whole. click would cut
    it to a line, at a word, with '...'."""
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def command(name=None, on=None):
    """Register a function as `konbu NAME` (or `konbu GROUP NAME` with on=GROUP's Typer)."""
    def register(function):
        return (on or app).command(name, short_help=first_paragraph(function.__doc__))(reports_errors(function))
    return register


def group(name: str, help: str, callback=None) -> typer.Typer:
    """A command group (`konbu show filters ...`) registered on the app.

    With `callback`, the group is a command of its own too (`konbu datasets` lists, `konbu datasets
    info` is a subcommand): the callback runs first on every call and sees ctx.invoked_subcommand."""
    sub = typer.Typer(no_args_is_help=callback is None, **PLAIN_HELP, help=help, short_help=first_paragraph(help))
    if callback is not None:
        sub.callback(invoke_without_command=True)(reports_errors(callback))
    app.add_typer(sub, name=name)
    return sub


def command_names() -> set:
    """Top-level command names that exist now (for the 'next:' hints)."""
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    return names | {g.name for g in app.registered_groups}
