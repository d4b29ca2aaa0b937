"""Tests for konbu.atomic: a write leaves the new content and nothing else, and a write that fails
half-way leaves the old file as it was (a reader never sees half of one).

    PYTHONPATH=src python -m pytest tests/test_atomic.py -q

The failure is an OSError injected into os.fsync, as a full disk would raise it after the bytes
were handed to the temporary file.
"""

import errno
import json
import os
import stat

import pytest

from konbu.atomic import FILE_MODE, replace_dir, write_bytes, write_json, write_text


def no_space(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_write_bytes(tmp_path):
    target = tmp_path / "new" / "folder" / "weights.bin"   # parents are created
    assert write_bytes(target, b"\x00\x01konbu") == target
    assert target.read_bytes() == b"\x00\x01konbu"
    assert os.listdir(target.parent) == ["weights.bin"]   # no temporary file left behind
    # mkstemp's private 0600 is not kept: a run directory is meant to be shared and copied
    assert stat.S_IMODE(target.stat().st_mode) == FILE_MODE


def test_write_replaces_an_old_file(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    write_text(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["run.json"]


def test_write_text_is_utf8(tmp_path):
    write_text(tmp_path / "classes.txt", "あ い う\n")
    assert (tmp_path / "classes.txt").read_bytes() == "あ い う\n".encode("utf-8")


def test_write_json(tmp_path):
    data = {"classes": ["あ", "い"], "mean": [0.1307], "nested": {"epoch": 3}}
    write_json(tmp_path / "preprocess.json", data)
    text = (tmp_path / "preprocess.json").read_text(encoding="utf-8")
    assert json.loads(text) == data
    assert "あ" in text and text.endswith("}\n")   # readable kana, a final newline
    assert os.listdir(tmp_path) == ["preprocess.json"]


@pytest.mark.parametrize("write, content", [(write_bytes, b"new bytes"), (write_text, "new text"),
                                            (write_json, {"new": True})])
def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch, write, content):
    target = tmp_path / "metrics.json"
    target.write_text("old content")
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left on device"):
        write(target, content)
    assert target.read_text() == "old content"
    assert os.listdir(tmp_path) == ["metrics.json"]   # the temporary file is removed


def test_a_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        write_text(tmp_path / "report.html", "<html>")
    assert os.listdir(tmp_path) == []


def test_replace_dir_swaps_whole_folders(tmp_path):
    target = tmp_path / "last.ckpt"
    replace_dir(target, lambda folder: (folder / "state.bin").write_bytes(b"one"))
    replace_dir(target, lambda folder: (folder / "other.bin").write_bytes(b"two"))
    assert os.listdir(target) == ["other.bin"] and sorted(os.listdir(tmp_path)) == ["last.ckpt"]

    def fill_then_fail(folder):
        (folder / "half.bin").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError):
        replace_dir(target, fill_then_fail)
    assert os.listdir(target) == ["other.bin"] and sorted(os.listdir(tmp_path)) == ["last.ckpt"]
