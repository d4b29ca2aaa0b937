"""Leaving a konbu process: with its exit status, its output and its atexit hooks, without the
interpreter's teardown once torch is loaded.

    leave(code)     # as sys.exit(code) would, in `konbu` and in each `--nproc` training process

That teardown (unloading torch's libraries, finalising every module) took 0.6-0.8 s of every command
on a 2-core CPU; in a training process that joined a process group it also destroys gloo's C++
threads' objects while the interpreter is half gone, which aborted one at its very end (SIGABRT,
"terminate called without an active exception"), and the launcher then stopped the others.
"""

import atexit
import os
import sys
import threading


def leave(code):
    """Exit with `code` as sys.exit would, skipping the teardown once torch is imported. By then
    everything konbu writes is closed and renamed; the atexit hooks still run and stdout and stderr
    are flushed. While another non-daemon thread runs, the interpreter exits as usual (it waits for
    that thread)."""
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
