"""Run konbu's CLI in-process and get its output: for tests and notebooks.

    from konbu.cli.testing import invoke
    result = invoke("train", "--epochs", 1, "--out", "runs/quick")
    result.exit_code, result.output

Arguments may be paths or numbers (they are turned into strings). A KonbuError still ends as exit
code 2 with its message, as on a terminal; any other exception is re-raised, so a bug shows its
traceback instead of hiding inside `result.exception`.
"""

from typer.testing import CliRunner

from ._app import app

_runner = CliRunner()


def invoke(*args):
    result = _runner.invoke(app, [str(arg) for arg in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result
