"""The tensor cache: parsed uint8 splits kept as safetensors, so a second load skips parsing.

    splits = cached("mnist", {"image_size": None}, [path, ...], lambda: parse(paths))

The key is the dataset name, its options and each source file's resolved path, size and mtime:
replacing or touching a source file makes a new entry, never a stale hit. Entries live in
`$KONBU_HOME/tensors/` (not beside the sources: `--data-dir` may be read-only) and are written
atomically, so an interrupted write leaves the old entry or none. safetensors holds plain tensors
only (no pickle), so a cache file can't run code when read. A cache that can't be written (a
read-only home) is skipped: loading still works, only slower.
"""

import hashlib
import json
import re
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from .. import atomic
from .download import konbu_home

CACHE_VERSION = 1   # bump when a parser's output changes, so old entries are not reused


def cache_path(name: str, options: dict, sources) -> Path:
    stats = []
    for source in sources:
        source = Path(source).resolve()
        stat = source.stat()
        stats.append([str(source), stat.st_size, stat.st_mtime_ns])
    key = json.dumps({"version": CACHE_VERSION, "name": name, "options": options, "sources": stats}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return konbu_home() / "tensors" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:60]}-{digest}.safetensors"


def read(path: Path):
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            classes = json.loads(f.metadata()["classes"])
    except (OSError, SafetensorError, ValueError, KeyError):
        return None   # a damaged entry is a miss: it is re-parsed and overwritten
    splits = {split: (tensors[f"{split}.images"], tensors[f"{split}.labels"]) for split in ("train", "test")}
    if classes is not None:
        splits["classes"] = tuple(classes)
    return splits


def write(path: Path, splits: dict) -> None:
    tensors = {f"{split}.{part}": tensor.contiguous()
               for split in ("train", "test") for part, tensor in zip(("images", "labels"), splits[split])}
    classes = splits.get("classes")
    metadata = {"classes": json.dumps(list(classes) if classes is not None else None, ensure_ascii=False)}
    try:
        atomic.write_bytes(path, save(tensors, metadata=metadata))
    except OSError:
        pass   # read-only or full cache folder: the data was parsed, only the next load is slower


def cached(name: str, options: dict, sources, parse) -> dict:
    """`parse()`'s splits, from the cache when an entry for exactly these sources exists."""
    path = cache_path(name, options, sources)
    if path.is_file():
        splits = read(path)
        if splits is not None:
            return splits
    splits = parse()
    write(path, splits)
    return splits


def clear() -> int:
    """Delete every cache entry; returns how many. (`rm -r ~/.cache/konbu/tensors` does the same.)"""
    entries = list((konbu_home() / "tensors").glob("*.safetensors"))
    for entry in entries:
        entry.unlink(missing_ok=True)
    return len(entries)

