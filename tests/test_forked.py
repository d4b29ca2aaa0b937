"""konbu.forked: work in a forked child beside this process, done here instead when the child fails,
is killed, or a fork would not be safe (another thread running).

    .venv/bin/python -m pytest tests/test_forked.py -q
"""

import os
import signal
import threading
import time

import pytest

from konbu import forked

pytestmark = pytest.mark.usefixtures("one_thread")   # the fork path needs a one-thread process


def writes_its_pid(path, child_does=None):
    """Work that writes the pid of the process doing it; `child_does` runs first when that is not this one."""
    parent = os.getpid()

    def work():
        if os.getpid() != parent and child_does is not None:
            child_does()
        path.write_text(str(os.getpid()))
    return work


def test_the_work_is_done_in_another_process(tmp_path):
    done = tmp_path / "done"
    child = forked.in_child(writes_its_pid(done))
    assert child.pid is not None and child.pid != os.getpid()
    pid = child.pid
    child.join()
    assert int(done.read_text()) == pid
    child.join()   # joined once: nothing left to wait for


def test_a_child_that_fails_leaves_the_work_to_this_process(tmp_path):
    def fail():
        raise RuntimeError("only in the child")
    done = tmp_path / "done"
    forked.in_child(writes_its_pid(done, child_does=fail)).join()
    assert int(done.read_text()) == os.getpid()


def test_an_error_in_the_work_is_raised_here(tmp_path):
    def work():
        raise ValueError("a bad figure")
    with pytest.raises(ValueError, match="a bad figure"):
        forked.in_child(work).join()


def test_a_killed_child_leaves_the_work_to_this_process(tmp_path):
    done = tmp_path / "done"
    child = forked.in_child(writes_its_pid(done, child_does=lambda: time.sleep(60)))
    os.kill(child.pid, signal.SIGKILL)
    started = time.monotonic()
    child.join()
    assert int(done.read_text()) == os.getpid() and time.monotonic() - started < 30


def test_the_child_leaves_ctrl_c_to_this_process(tmp_path):
    """A Ctrl-C reaches the whole foreground group; the child lets the parent (which waits for it) decide."""
    done = tmp_path / "done"
    child = forked.in_child(writes_its_pid(done, child_does=lambda: time.sleep(1)))
    time.sleep(0.3)
    os.kill(child.pid, signal.SIGINT)
    pid = child.pid
    child.join()
    assert int(done.read_text()) == pid


def test_with_another_thread_running_the_work_is_done_here_at_once(tmp_path):
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not forked.can_fork()
        done = tmp_path / "done"
        child = forked.in_child(writes_its_pid(done))
        assert child.pid is None and int(done.read_text()) == os.getpid()   # before join
        child.join()
    finally:
        release.set()
        other.join()
