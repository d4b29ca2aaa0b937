"""Work done in a forked child process beside this one: a second core for work that holds the GIL.

    from konbu.forked import in_child
    child = in_child(lambda: draw_figures(...))   # fork now; the child does the work and exits
    ...                                          # this process does its own share meanwhile
    child.join()                                 # waits; if the child failed, the work is done here

Drawing figures is matplotlib's Python code: a thread would wait for the GIL, a process spawned
afresh would import matplotlib and torch again (seconds). A forked child starts in a few
milliseconds with everything this process holds (the data, the logits, matplotlib's fonts) and
its results are files, written atomically.

A fork copies only the thread that calls it, so in_child forks only on Linux and only while this
process runs a single Python thread; anywhere else (a web server's thread, macOS, Windows) the
work is done at once in this process, and join() does nothing. The child does one thing and leaves
with os._exit, so nothing of this process (atexit hooks, buffers, pytest) runs twice.
"""

import os
import signal
import sys
import threading

import torch


class Child:
    """A forked child doing `work`; join() waits for it."""

    def __init__(self, work, pid: int | None):
        self.work, self.pid = work, pid

    def join(self):
        """Wait for the child. If it did not end well (an exception, a kill), do the work here: its
        error, if any, is raised with its own traceback, and a result is never silently missing."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException:        # a second Ctrl-C while waiting: leave no child behind
            _kill(pid)
            raise
        if os.waitstatus_to_exitcode(status) != 0:
            self.work()


def can_fork() -> bool:
    """Whether a fork is safe here: Linux (macOS's system libraries are not fork-safe), one thread."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def in_child(work) -> Child:
    """Start `work()` in a forked child and return at once; without a safe fork, run it now."""
    if not can_fork():
        work()
        return Child(work, None)
    pid = os.fork()
    if pid == 0:                     # the child: one core's worth of work, then gone
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent answers a Ctrl-C and waits for it
            torch.set_num_threads(1)  # one core; and the parent's OpenMP threads are not in this process
            work()
            code = 0
        except BaseException:        # the parent does the work again and raises the error itself
            pass
        finally:
            os._exit(code)
    return Child(work, pid)


def _kill(pid: int):
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
