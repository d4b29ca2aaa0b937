"""Getting a dataset's files onto disk: find them locally, else download, verify and keep them.

    from konbu.data.download import Remote, RemoteFile, fetch
    MNIST = Remote("mnist", mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
                   files=(RemoteFile("train-images-idx3-ubyte.gz", md5="f68b3c2d..."), ...))
    paths = fetch(MNIST, data_dir=None)   # {"train-images-idx3-ubyte.gz": Path(...), ...}

Where files live: `--data-dir DIR` when given, else `$KONBU_HOME/<folder>` (default
`~/.cache/konbu/<folder>`). A file already there is used as it is; one that is missing is
downloaded into that folder.

Checks: a download is written to `NAME.part`, its size compared with Content-Length and the
published size, its md5 with the published md5 (or sha256: torchvision's in the file name, the
Hugging Face Hub's in the `X-Linked-Etag` header it answers with), and only then renamed to
`NAME`. A transfer that breaks off therefore never leaves a file that looks complete. A *local* file whose md5 differs
from the published one (mirrors and re-packs exist) is accepted with one warning per file per
process: the format checks of the parsers still stand guard.

Mirrors: each Remote lists the URLs torchvision (or the dataset's authors) publish. Setting
`KONBU_MIRROR=http://host/path` replaces them all with `$KONBU_MIRROR/<folder>/<file name>`:
for a site-local mirror, and how the tests serve fixtures from a local HTTP server.

Offline, or when every mirror fails, `fetch` raises MissingDataError naming each URL tried, the
exact file names and the folder to put them in.
"""

import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDataError

USER_AGENT = "konbu (https://github.com/konbu; like pytorch/vision)"
TIMEOUT_SECONDS = 30          # per connect/read: a stalled mirror fails over instead of hanging
CHUNK_BYTES = 1 << 20


def konbu_home() -> Path:
    """konbu's cache folder: `$KONBU_HOME`, default `~/.cache/konbu`."""
    return Path(os.environ.get("KONBU_HOME", Path.home() / ".cache" / "konbu"))


@dataclass(frozen=True)
class RemoteFile:
    name: str                 # file name on disk, and the last part of its URL
    md5: str | None = None    # published md5 (torchvision's resources, the authors' md5sums)
    size: int | None = None   # bytes, where published; checked when no md5 is
    sha256: str | None = None # the start of the sha256 hex digest (torchvision's weights name it in the file name)


@dataclass(frozen=True)
class Remote:
    """Files one dataset downloads: the cache sub-folder, the base URLs tried in order, the files."""

    folder: str
    mirrors: tuple
    files: tuple

    def urls(self, file: RemoteFile) -> list:
        mirror = os.environ.get("KONBU_MIRROR")
        if mirror:
            return [f"{mirror.rstrip('/')}/{self.folder}/{file.name}"]
        return [f"{base}{file.name}" for base in self.mirrors]


def data_folder(remote: Remote, data_dir=None) -> Path:
    return Path(data_dir) if data_dir else konbu_home() / remote.folder


def local_file(folder: Path, name: str) -> Path | None:
    """`folder/name`, or its gunzipped twin for a `.gz` name (MNIST-style folders hold either)."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def is_present(remote: Remote, data_dir=None) -> bool:
    folder = data_folder(remote, data_dir)
    return all(local_file(folder, file.name) for file in remote.files)


class DataWarning(UserWarning):
    """A local data file is not the published one (filter it with warnings.filterwarnings)."""


# ---------------------------------------------------------------------------------------------------
# md5 of local files: computed once per (path, size, mtime) per process; a mismatch warns once

_MD5_MEMO: dict = {}
_WARNED: set = set()


def md5_of(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _MD5_MEMO:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
        _MD5_MEMO[key] = digest.hexdigest()
    return _MD5_MEMO[key]


def check_local(path: Path, file: RemoteFile) -> None:
    """Warn (once per file per process) when a local file is not the published one; never refuse it."""
    if path.name != file.name or file.md5 is None:
        return   # a gunzipped copy has no published md5; the parser checks its format
    found = md5_of(path)
    if found != file.md5 and str(path.resolve()) not in _WARNED:
        _WARNED.add(str(path.resolve()))
        warnings.warn(f"{path}: md5 {found} differs from the published {file.md5}; loading it anyway "
                      "(a mirror or re-pack?). Delete it to download the canonical file.", DataWarning, stacklevel=3)


# ---------------------------------------------------------------------------------------------------
# downloads


class DownloadError(Exception):
    """One URL failed; fetch() collects these into one MissingDataError. `unreachable`: the host
    never answered (offline, DNS, refused, timed out), so its other files are not tried."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


def linked_sha256(headers) -> str | None:
    """The Hugging Face Hub's sha256 of a file in Git LFS: its `X-Linked-Etag` header, "<64 hex>"."""
    value = (headers.get("X-Linked-Etag") or "").removeprefix("W/").strip('"').lower()
    return value if len(value) == 64 and all(c in "0123456789abcdef" for c in value) else None


class _LinkedHash(urllib.request.HTTPRedirectHandler):
    """Keeps the sha256 header of a redirect: the Hub answers a weights URL with a redirect to its CDN,
    and the hash is on the redirect, not on the CDN's answer."""

    sha256 = None

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.sha256 = self.sha256 or linked_sha256(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(url: str, target: Path, file: RemoteFile) -> Path:
    """Download `url` to `target` through `target.part`; rename only once size and hashes check out."""
    part = target.with_name(target.name + ".part")
    digest = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    received = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        redirects = _LinkedHash()
        with urllib.request.build_opener(redirects).open(request, timeout=TIMEOUT_SECONDS) as response, \
                open(part, "wb") as out:
            expected = response.length   # Content-Length, or None
            linked = redirects.sha256 or linked_sha256(response.headers)
            show = sys.stderr.isatty()
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                if file.sha256 is not None or linked:
                    sha256.update(chunk)
                received += len(chunk)
                if show and expected:
                    print(f"\rdownloading {file.name}: {received / expected:4.0%}", end="", file=sys.stderr)
            if show and expected:
                print(file=sys.stderr)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and received != expected:
            raise DownloadError(f"transfer broke off after {received:,} of {expected:,} bytes")
        if file.size is not None and received != file.size:
            raise DownloadError(f"got {received:,} bytes, expected {file.size:,}")
        if file.md5 is not None and digest.hexdigest() != file.md5:
            raise DownloadError(f"md5 {digest.hexdigest()} does not match the published {file.md5}")
        if file.sha256 is not None and not sha256.hexdigest().startswith(file.sha256):
            raise DownloadError(f"sha256 {sha256.hexdigest()[:16]}... does not begin with the published "
                                f"{file.sha256}")
        if linked and sha256.hexdigest() != linked:
            raise DownloadError(f"sha256 {sha256.hexdigest()[:16]}... is not the {linked[:16]}... the server sent "
                                "in X-Linked-Etag")
        os.replace(part, target)
        return target
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    except (OSError, http.client.HTTPException, ValueError) as error:   # URLError and timeouts are OSErrors
        part.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        if received:
            reason = f"transfer broke off after {received:,} bytes ({reason})"
        unreachable = not received and not isinstance(error, urllib.error.HTTPError) and isinstance(error, OSError)
        raise DownloadError(str(reason), unreachable) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def fetch(remote: Remote, data_dir=None, files=None, dataset: str | None = None, advice: str | None = None) -> dict:
    """Paths of `files` (default: all of remote's), downloading the missing ones. {name: Path}.
    `advice` replaces the error's "(or pass --data-dir DIR ...)" for files that are not a dataset's."""
    folder = data_folder(remote, data_dir)
    wanted = [f for f in remote.files if files is None or f.name in files]
    paths, failures, unreachable = {}, {}, set()
    for file in wanted:
        path = local_file(folder, file.name)
        if path is not None:
            check_local(path, file)
            paths[file.name] = path
            continue
        errors = []
        for url in remote.urls(file):
            host = urllib.parse.urlsplit(url).netloc
            if host in unreachable:   # offline: one wait per host, not one per file
                errors.append(f"{url}: not tried, {host} did not answer")
                continue
            try:
                paths[file.name] = download(url, folder / file.name, file)
                break
            except DownloadError as error:
                errors.append(f"{url}: {error}")
                if error.unreachable:
                    unreachable.add(host)
        else:
            failures[file] = errors
    if failures:
        raise MissingDataError(missing_message(dataset or remote.folder, folder, failures, advice))
    return paths


def missing_message(dataset: str, folder: Path, failures: dict, advice: str | None = None) -> str:
    names = ", ".join(file.name for file in failures)
    tried = "; ".join(error for errors in failures.values() for error in errors)
    advice = advice or "or pass --data-dir DIR for a folder that has them"
    return (f"{dataset}: missing {names} in {folder}, and the download failed ({tried}). "
            f"Download the file(s) yourself and put them in {folder} ({advice}); set KONBU_MIRROR=URL to "
            "download from a mirror of your own.")


def one_line(error: BaseException) -> str:
    """An exception's text on one line: tarfile's and pickle's span several, a konbu message is one."""
    return " ".join(str(error).split())


def extract_tar(archive: Path, folder: Path, member_dir: str) -> Path:
    """Unpack `member_dir/` of a tar archive into `folder`, atomically (a sibling, then a rename).

    The whole archive is checked (to gzip's end-of-stream checksum) before a file is unpacked, and an
    incomplete `member_dir/` already there is replaced as a whole."""
    import tarfile
    import zlib

    from ..errors import DatasetFormatError

    target = folder / member_dir
    tmp = folder / f".{member_dir}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(member_dir + "/") and m.isfile()]
            if not members:
                raise DatasetFormatError(f"{archive}: no {member_dir}/ folder inside the archive")
            # tarfile stops reading at the end-of-archive blocks, before gzip's checksum: read on to the
            # end, so that a corrupt archive is refused before anything is unpacked from it
            while tar.fileobj.read(1 << 20):
                pass
            tar.extractall(tmp, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:   # zlib's: a damaged gzip stream
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetFormatError(f"{archive}: the archive is truncated or corrupt ({one_line(error)}); "
                                 "delete it and download it again") from None
    old = folder / f".{member_dir}.replaced"
    if target.exists():   # an incomplete earlier copy (a file deleted since): replaced as a whole
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp / member_dir, target)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return target
