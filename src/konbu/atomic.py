"""Atomic file writes: write to a temporary file beside the target, fsync, then rename.

A reader (or a resumed run) therefore sees either the old file or the new one, never half of one.
`os.replace` is atomic on POSIX and Windows when source and target are on the same filesystem,
which a sibling temporary file guarantees.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; a run directory is meant to be shared and
# copied, so give files and folders the permissions a plain open()/mkdir() would have
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def write_bytes(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    old = path.with_name(path.name + ".old")
    try:
        os.chmod(tmp, DIR_MODE)
        fill(tmp)
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
