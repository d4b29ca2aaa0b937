"""Startup: `konbu --help` (every command's and group's) must not import torch, and `konbu predict`
imports no plotting and no dataset code. Each check runs in a fresh Python (this test process has
long since imported torch), and asserts which modules were loaded, never how long it took.

    .venv/bin/python -m pytest tests/cli/test_startup.py -q

The figures (seconds against `python -c "import torch"`) are benchmarks/cli_startup.py's.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import typer
from PIL import Image

from konbu.cli import app
from konbu.models import build_model, get_model_entry
from konbu.runs import create_run

# what printing help never needs; each one costs a tenth of a second to seconds to import
HEAVY = ["torch", "torchvision", "matplotlib", "numpy", "PIL", "safetensors", "sklearn", "mlxtend"]
# what `konbu predict RUN IMAGE` never needs: torch, PIL and numpy it does
NOT_FOR_PREDICT = ["matplotlib", "torchvision", "sklearn", "mlxtend", "konbu.data", "konbu.inspect",
                   "konbu.train.loop"]


def command_paths(command=None, path=()):
    """Every command and group under `konbu`, as word lists: [], ["train"], ["show"], ["show", "gradcam"], ..."""
    command = command or typer.main.get_command(app)
    paths = [list(path)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += command_paths(sub, (*path, name))
    return paths


def python(script: str, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_importing_the_cli_and_building_every_help_loads_no_heavy_module():
    done = python("""
        import json, sys

        import typer
        from typer._click import Context

        import konbu.cli

        def every_help(command, ctx, path):
            text = command.get_help(ctx)
            assert text.startswith("Usage"), path
            yield path
            for name in sorted(getattr(command, "commands", {})):
                sub = command.get_command(ctx, name)
                yield from every_help(sub, Context(sub, info_name=name, parent=ctx), f"{path} {name}")

        root = typer.main.get_command(konbu.cli.app)
        shown = list(every_help(root, Context(root, info_name="konbu"), "konbu"))
        print(json.dumps({"shown": shown, "loaded": sorted(sys.modules)}))
    """)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"konbu", "konbu train", "konbu predict", "konbu serve", "konbu export", "konbu show gradcam",
            "konbu datasets info", "konbu augment preview", "konbu lr-find"} <= set(result["shown"])
    assert len(result["shown"]) == len(command_paths())
    loaded = set(result["loaded"])
    assert not loaded & set(HEAVY), f"help imported {sorted(loaded & set(HEAVY))}"
    # help is click's plain text: typer's rich panels (and rich.markdown, which they import) took
    # the slowest help from 0.37 to 0.62 s on a 2-core AVX2 CPU
    assert "typer.rich_utils" not in loaded and "rich.markdown" not in loaded


def test_a_command_list_shows_each_command_s_first_paragraph_whole():
    """click would cut each to one line ending in '...'; the list shows what the command's own help says first."""
    from konbu.cli.testing import invoke
    text = " ".join(invoke("--help").output.split())
    assert ("predict Classify your own images: top-K classes with calibrated percentages; exit code 1 when an "
            "image could not be read (each one says why; the others are answered). serve Serve the web app") in text
    text = " ".join(invoke("show", "--help").output.split())
    assert "gradcam Grad-CAM: a heat map of where a conv model found the evidence for a class." in text


def test_the_api_names_load_on_first_use():
    done = python("""
        import json, sys

        import konbu
        from konbu.errors import KonbuError
        before = "torch" in sys.modules
        print(json.dumps({"version": konbu.__version__, "torch_before": before, "dir": dir(konbu),
                          "same_error": konbu.KonbuError is KonbuError, "fit": konbu.fit.__module__,
                          "run": konbu.Run.__name__, "torch_after": "torch" in sys.modules}))
    """)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["version"] == "0.1.0" and not result["torch_before"] and result["torch_after"]
    assert result["same_error"] and result["fit"] == "konbu.train.loop" and result["run"] == "Run"
    import konbu
    assert set(konbu.__all__) <= set(result["dir"])
    with pytest.raises(AttributeError):
        konbu.no_such_name


@pytest.mark.parametrize("words", command_paths(), ids=lambda words: " ".join(words) or "konbu")
def test_every_help_exits_0_and_prints_its_usage(words):
    done = subprocess.run([sys.executable, "-m", "konbu", *words, "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"Usage: {' '.join(['konbu', *words])}" in done.stdout
    assert not done.stderr


@pytest.fixture(scope="module")
def run_and_image(tmp_path_factory):
    """A tfjs-mnist run with random weights (what predict loads is the same as a trained run's) and a 7."""
    folder = tmp_path_factory.mktemp("startup")
    entry = get_model_entry("tfjs-mnist")
    torch.manual_seed(0)
    net = build_model("tfjs-mnist", entry.input_shape, entry.num_classes)
    preprocess = {"image_shape": list(entry.input_shape), "mean": [0.13], "std": [0.31],
                  "classes": [str(i) for i in range(entry.num_classes)], "ink": "mnist", "ink_box": 20}
    create_run(folder / "run", {"model": "tfjs-mnist", "dataset": "mnist-sample", "config": {}},
               {"name": "tfjs-mnist", "layers": net.spec}, preprocess, net)
    (folder / "run" / "calibration.json").write_text(json.dumps({"temperature": 1.2}))
    pixels = np.zeros((28, 28), np.uint8)
    pixels[5:8, 7:21] = 255                                      # the bar of a 7
    for row in range(8, 24):
        pixels[row, 19 - (row - 8) // 2: 22 - (row - 8) // 2] = 255   # its stroke
    Image.fromarray(pixels).save(folder / "seven.png")
    return folder / "run", folder / "seven.png"


def test_predict_imports_no_plotting_and_no_dataset_code(run_and_image):
    run, image = run_and_image
    done = python("""
        import atexit, json, sys

        # at exit: main() ends with SystemExit, after which the modules it loaded are still listed
        atexit.register(lambda: sys.stderr.write("LOADED " + json.dumps(sorted(sys.modules)) + "\\n"))
        sys.argv = ["konbu", "predict", *sys.argv[1:], "--json"]
        from konbu.cli import main
        main()
    """, run, image)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer[0]["image"] == str(image) and len(answer[0]["predictions"]) == 3
    loaded = set(json.loads(done.stderr.split("LOADED ", 1)[1]))
    assert "torch" in loaded   # the check sees the modules: predict does need torch
    unwanted = {name for name in loaded if name.split(".")[0] in NOT_FOR_PREDICT or name in NOT_FOR_PREDICT
                or any(name.startswith(prefix + ".") for prefix in NOT_FOR_PREDICT)}
    assert not unwanted, f"konbu predict imported {sorted(unwanted)[:10]}"
