"""The `konbu` command line: parses, calls the Python API, prints. No logic of its own.

    konbu datasets                      what can be loaded, and what is on disk now
    konbu models                        the zoo, with each model's source
    konbu summary chollet-mnist         a Keras-style table
    konbu train                         chollet-mnist on the embedded MNIST sample
    konbu evaluate RUN --json
    konbu predict RUN digit.jpg --top 3
    konbu diagnose RUN                  what went wrong or could go better, and what to try

A user mistake (a KonbuError) prints one or two lines and exits 2, never a traceback.

Importing this package loads typer and rich, not torch: each command imports konbu's API inside its
function, so that `konbu --help` (and every `--help`) prints in a fraction of a second. A module-level
import of anything that imports torch, matplotlib or the dataset registry fails tests/cli/test_startup.py.
"""

import sys

from ..leave import leave
from ._app import app
from . import augment, data, diagnose, export, models, recipes, report, runs, serve, show, train  # noqa: F401,E402  (importing registers the commands)


def main():
    try:
        app(prog_name="konbu")
    except SystemExit as stop:
        leave(stop.code)
    leave(0)


if __name__ == "__main__":
    sys.exit(main())
