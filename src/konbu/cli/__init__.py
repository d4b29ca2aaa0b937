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

import atexit
import os
import sys
import threading

from ._app import app
from . import augment, data, diagnose, export, models, recipes, report, runs, serve, show, train  # noqa: F401,E402  (importing registers the commands)


def main():
    try:
        app(prog_name="konbu")
    except SystemExit as stop:
        leave(stop.code)
    leave(0)


def leave(code):
    """Exit with `code` as sys.exit would, without tearing the interpreter down: once torch is
    imported, that teardown (unloading its libraries, finalising every module) took 0.6-0.8 s of
    every command on a 2-core CPU. By then everything konbu writes is closed and renamed; the atexit
    hooks still run and stdout and stderr are flushed. While another non-daemon thread runs, the
    interpreter exits as usual (it waits for that thread)."""
    if "torch" not in sys.modules or any(thread.is_alive() and not thread.daemon and thread is not
                                         threading.main_thread() for thread in threading.enumerate()):
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):   # sys.exit("message"): the message on stderr, status 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe (`konbu models | head`) or stream
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
