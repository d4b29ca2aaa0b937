"""What the web app lets in: run and file names, tokens, upload sizes.

Every path the server reads is built here from a name a client sent, and checked after symlinks
are resolved: a run is a folder directly under the runs folder holding a run.json, a figure a
.png directly in its figures/. `..`, URL-encoded traversal (the router has decoded it by then),
absolute paths, and symlinks pointing out of the runs folder all end as "no such run" (404), so a
client can't even learn whether a file exists elsewhere.
"""

import hmac
import re
from pathlib import Path

from ..runs import FIGURES_DIR, REPORT_FILE, RUN_FILE

# a run name as `konbu train --out runs/NAME` makes them: letters, digits, . _ -; no separators
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
MAX_UPLOAD_BYTES = 10 * 1024 * 1024      # a phone photo is 2-8 MB; more is not an image to classify
# the decoded size an upload may declare: 40 megapixels (a full-frame camera's 7,700 x 5,200) is
# 120 MB as RGB; konbu.images' own limit (89 M) is for one user reading one file, not a server
# decoding several uploads at once
MAX_UPLOAD_PIXELS = 40_000_000
TOKEN_COOKIE = "konbu_token"


class NotFound(Exception):
    """A run, figure or job the client named does not exist (or may not be read): HTTP 404."""


def _inside(root: Path, path: Path) -> bool:
    """`path`, symlinks resolved, is `root` or below it."""
    try:
        path.resolve(strict=True).relative_to(root.resolve(strict=True))
    except (OSError, ValueError):
        return False
    return True


def run_dir(runs: Path, name: str) -> Path:
    """The folder of run `name` under `runs`, or NotFound."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
        raise NotFound(f"no run named {name!r}")
    path = runs / name
    if not (path.is_dir() and (path / RUN_FILE).is_file() and _inside(runs, path)
            and _inside(runs, path / RUN_FILE)):
        raise NotFound(f"no run named {name!r} under {runs.name}/")
    return path


def run_file(runs: Path, name: str, relative: str) -> Path:
    """report.html or figures/NAME.png of run `name`: the only files of a run served as they are."""
    folder = run_dir(runs, name)
    if relative == REPORT_FILE:
        path = folder / REPORT_FILE
    else:
        parent, _, figure = relative.rpartition("/")
        if parent not in ("", FIGURES_DIR) or not NAME.fullmatch(figure) or not figure.endswith(".png"):
            raise NotFound(f"run {name!r} has no file {relative!r}")
        path = folder / FIGURES_DIR / figure
    if not (path.is_file() and _inside(folder, path)):
        raise NotFound(f"run {name!r} has no file {relative!r}")
    return path


def run_names(runs: Path) -> list:
    """The names of the runs directly under `runs` (what run_dir accepts)."""
    if not runs.is_dir():
        return []
    names = []
    for path in runs.iterdir():
        try:
            names.append(run_dir(runs, path.name).name)
        except NotFound:
            continue
    return names


def token_matches(expected: str | None, given: str | None) -> bool:
    """No token set: every request passes. Otherwise compared in constant time, so the answer's
    timing says nothing about how many leading characters were right."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
