"""Atomic file writes: write to a temporary file beside the target, fsync, then rename.

A reader (or a resumed run) therefore sees either the old file or the new one, never half of one.
`os.replace` is atomic on POSIX and Windows when source and target are on the same filesystem,
which a sibling temporary file guarantees. A write that fails (disk full, read-only folder) removes
its temporary file, leaves the old file as it was, and raises konbu.errors.WriteError naming the
path. A process killed mid-write (kill -9) can leave a `.NAME.*.tmp` file beside the target, never a
torn target: `remove_leftovers` clears them. `one_writer(folder)` keeps a second process out of a
folder one is writing (two `konbu train --out SAME`).
"""

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import RunDirectoryError, WriteError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; a run directory is meant to be shared and
# copied, so give files and folders the permissions a plain open()/mkdir() would have
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def write_error(path, error: OSError) -> WriteError:
    """The one message for a failed write: which path, why, and that the old version is kept."""
    reason = error.strerror or str(error)
    return WriteError(f"cannot write {path}: {reason}; the previous version (if any) is kept as it was. "
                      "Free some space, or write somewhere you have permission to (--out)")


def write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:   # a read-only or missing folder: nothing was written
        raise write_error(path, error) from error
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise write_error(path, error) from error
        raise
    return path


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def replace_dir(path, fill) -> Path:
    """Build a directory atomically: `fill(tmp_dir)` writes into a fresh sibling, then it takes
    `path`'s place. The old directory is moved aside first (a directory can't be replaced by a
    rename while non-empty), so at every instant `path` or `path.old` holds a complete copy."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as error:
        raise write_error(path, error) from error
    old = path.with_name(path.name + ".old")
    try:
        os.chmod(tmp, DIR_MODE)
        fill(tmp)
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise write_error(path, error) from error
        raise
    return path


def remove_leftovers(folder) -> list:
    """Delete the temporary files and folders (`.NAME.*.tmp`) a killed process left in `folder`;
    returns their names. Only call it while no other process writes there (konbu holds the run
    directory's lock when it does)."""
    removed = []
    for leftover in Path(folder).glob(".*.tmp"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover.name)
    return removed


@contextmanager
def one_writer(run_dir):
    """Hold the folder `run_dir` for one writer: training (or resuming) takes its run directory for
    its whole length, so a second `konbu train` with the same --out refuses at once (RunDirectoryError)
    instead of interleaving files with the first. The lock is the operating system's (flock on the
    folder itself): it goes with the process however that ends, kill -9 included, so there is never
    a stale lock to clear by hand. A folder
    this call created that is still empty when the block ends (a refused setting, data that would
    not load) is removed: a run that never started leaves nothing behind.

    Where flock does not exist (Windows) only create_run's "already holds a run" check guards."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"{run_dir} is a file; a run directory is a folder: pass another --out")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(run_dir, error) from error
    held = _lock(run_dir)
    try:
        yield run_dir
    finally:
        if held is not None:
            os.close(held)   # closing the descriptor releases the lock
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()


def _lock(run_dir: Path):
    try:
        import fcntl
    except ImportError:
        return None
    descriptor = os.open(run_dir, os.O_RDONLY)
    # a few tries over 0.1 s: writer_active (the web app asking "is this run live?") holds a shared
    # lock for microseconds, which must not refuse a writer; another writer holds it for its whole run
    for _ in range(5):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return descriptor
        except BlockingIOError:
            time.sleep(0.025)
    os.close(descriptor)
    raise RunDirectoryError(f"another konbu process is writing {run_dir} right now (training or resuming it); "
                            "wait for it to end, or pass another --out")


def writer_active(run_dir) -> bool:
    """Whether a process holds `run_dir` with one_writer now (a run training or resuming: live).

    Asks for a shared lock without waiting and lets go at once (a writer starting in those
    microseconds tries again: _lock). False where flock does not exist."""
    try:
        import fcntl
        descriptor = os.open(run_dir, os.O_RDONLY)
    except (ImportError, OSError):
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)   # closing releases a lock we took

