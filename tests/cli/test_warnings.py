"""A Python warning raised while a command runs reaches the user as one `warning: <message>` line
on stderr: once, without the file name, line number and source line Python's own display adds.

    PYTHONPATH=src python -m pytest tests/cli/test_warnings.py -q

The warning is a real one: MNIST files in a --data-dir whose md5s are not the published ones
(konbu loads them and warns, once per file).
"""

import gzip
import struct
import warnings

import numpy as np

from konbu.cli import _app
from konbu.cli.testing import invoke as konbu

MNIST_FILES = {"train-images-idx3-ubyte.gz": (20, 28, 28), "train-labels-idx1-ubyte.gz": (20,),
               "t10k-images-idx3-ubyte.gz": (10, 28, 28), "t10k-labels-idx1-ubyte.gz": (10,)}


def write_unpublished_mnist(folder):
    """Valid IDX files under MNIST's names, with random content: none has the published md5."""
    rng = np.random.default_rng(0)
    for name, shape in MNIST_FILES.items():
        values = rng.integers(0, 10 if len(shape) == 1 else 256, shape, dtype=np.uint8)
        header = struct.pack(">BBBB", 0, 0, 0x08, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
        (folder / name).write_bytes(gzip.compress(header + values.tobytes()))


def test_each_warning_is_one_clean_line(tmp_path):
    write_unpublished_mnist(tmp_path)
    showwarning_before = warnings.showwarning
    result = konbu("datasets", "info", "mnist", "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "train 20, test 10" in result.stdout          # the command ran on the files it warned about

    lines = result.stderr.splitlines()
    for name in MNIST_FILES:
        mine = [line for line in lines if str(tmp_path / name) in line]
        assert len(mine) == 1, result.stderr                                   # once
        assert mine[0].startswith(f"warning: {tmp_path / name}: md5 ")          # one line, from the start
        assert mine[0].endswith("Delete it to download the canonical file.")   # to its end
    assert len(lines) == len(MNIST_FILES), result.stderr                        # and nothing else
    for python_detail in ("DataWarning", "warnings.warn", ".py:", "data_dir)"):
        assert python_detail not in result.stderr
    assert warnings.showwarning is showwarning_before    # the caller's hook is back afterwards


def test_a_multi_line_message_is_joined_and_brackets_are_kept(capsys):
    _app.show_warning(UserWarning("first line\n  second [bold]line[/bold]\n"), UserWarning, "x.py", 1,
                      line="source = line()")
    assert capsys.readouterr().err == "warning: first line second [bold]line[/bold]\n"
