"""`konbu export`: a trained digit model's bundle answers real MNIST digits and a photographed digit
exactly as `konbu predict --json` does, with its predict.py run in a Python that can import neither
torch nor konbu; the parity figures are printed; a failed parity, a missing extra and a bad run
directory exit 2 with nothing written.

    .venv/bin/python -m pytest tests/cli/test_export.py -q
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

import konbu
import konbu.export as export_module
from konbu.cli.testing import invoke as konbu_cli
from konbu.data import load_dataset

# predict.py run with torch and konbu made unimportable (None in sys.modules): it needs neither
WITHOUT_TORCH = ("import runpy, sys; sys.modules['torch'] = sys.modules['konbu'] = None; "
                 "sys.path.insert(0, sys.argv[1]); sys.argv = sys.argv[1:]; "
                 "sys.argv[0] = sys.argv[0] + '/predict.py'; runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """tfjs-mnist trained briefly (~90% on the sample's test split) and calibrated by fit."""
    out = tmp_path_factory.mktemp("runs") / "tfjs"
    return konbu.fit(model="tfjs-mnist", steps=150, threads=2, out=str(out), quiet=True)


def render_as_photo(digit: np.ndarray, seed: int) -> Image.Image:
    """An MNIST digit as a user photographs it: dark ink on light, unevenly lit paper, 4x larger,
    off-centre in a wider frame, blurred and noisy (what the ink normalisation and centring undo)."""
    rng = np.random.default_rng(seed)
    ink = np.asarray(Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BICUBIC), dtype=np.float64)
    paper = np.linspace(205, 235, 240)[None, :].repeat(180, 0) + rng.normal(0, 3, (180, 240))
    top, left = int(rng.integers(5, 63)), int(rng.integers(5, 123))
    paper[top:top + 112, left:left + 112] *= ink / 255   # ink multiplies the paper, like a pen
    return Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """20 real MNIST test digits as PNG, 3 photo-like digits (PNG and JPEG) and a blank page."""
    folder = tmp_path_factory.mktemp("images")
    test = load_dataset("mnist-sample", "test")
    paths = []
    for index in range(0, 1000, 50):
        paths.append(folder / f"digit{index}.png")
        Image.fromarray(test.images[index, 0].numpy()).save(paths[-1])
    for index, extension in ((3, "png"), (7, "jpg"), (11, "png")):
        paths.append(folder / f"photo{index}.{extension}")
        render_as_photo(test.images[index, 0].numpy(), index).save(paths[-1], quality=92)
    paths.append(folder / "blank.png")
    Image.fromarray(np.full((60, 60), 215, np.uint8)).save(paths[-1])
    return [str(path) for path in paths]


def bundle_predict(bundle: Path, images, block_torch=True) -> list:
    command = ([sys.executable, "-c", WITHOUT_TORCH, str(bundle)] if block_torch
               else [sys.executable, str(bundle / "predict.py")])
    finished = subprocess.run([*command, *images, "--top", "10", "--json"], capture_output=True, text=True,
                              timeout=120)
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout)


def assert_same_answers(bundle_answers, konbu_answers):
    assert len(bundle_answers) == len(konbu_answers)
    for ours, theirs in zip(bundle_answers, konbu_answers):
        assert ours["image"] == theirs["image"] and ours["label"] == theirs["label"], (ours, theirs)
        assert ours.get("reason") == theirs.get("reason")
        assert [p["index"] for p in ours["predictions"][:1]] == [p["index"] for p in theirs["predictions"][:1]]
        ours_by_class = {p["index"]: p["probability"] for p in ours["predictions"]}
        for prediction in theirs["predictions"]:
            assert abs(ours_by_class[prediction["index"]] - prediction["probability"]) <= 1e-4


def test_the_onnx_bundle_answers_like_konbu_predict(run, image_files):
    result = konbu_cli("export", run.path)
    assert result.exit_code == 0, result.output
    assert "parity on the first 256 test images of mnist-sample: max |p_torch - p_onnx|" in result.output
    assert "top-1 agrees on 256/256" in result.output and "model.onnx" in result.output
    bundle = run.path / "export-onnx"
    record = json.loads((bundle / "export.json").read_text())
    assert record["parity"]["max_abs_diff"] <= 1e-4 and record["temperature"] == pytest.approx(run.temperature)
    assert run.temperature != 1.0   # the calibration is in the graph, so it is tested

    expected = konbu_cli("predict", run.path, *image_files, "--top", "10", "--json")
    assert expected.exit_code == 0, expected.output
    konbu_answers = json.loads(expected.output)
    assert konbu_answers[-1]["label"] is None and konbu_answers[-1]["reason"].startswith("no digit found")
    assert_same_answers(bundle_predict(bundle, image_files), konbu_answers)
    # and the photos were read as the digits they show, so the centring was exercised, not bypassed
    digits = load_dataset("mnist-sample", "test").labels
    photos = [answer for answer in konbu_answers if "photo" in answer["image"]]
    assert sum(answer["index"] == int(digits[int(Path(answer["image"]).stem[5:])]) for answer in photos) >= 2


def test_the_torchscript_bundle_answers_like_konbu_predict(run, image_files, tmp_path):
    result = konbu_cli("export", run.path, "--format", "torchscript", "--out", tmp_path / "ts")
    assert result.exit_code == 0, result.output
    assert "max |p_torch - p_torchscript|" in result.output and "model.pt" in result.output
    some = image_files[:3] + image_files[-4:]
    konbu_answers = json.loads(konbu_cli("predict", run.path, *some, "--top", "10", "--json").output)
    assert_same_answers(bundle_predict(tmp_path / "ts", some, block_torch=False), konbu_answers)


def test_the_bundle_answers_unreadable_files_one_by_one(run, image_files, tmp_path):
    result = konbu_cli("export", run.path, "--out", tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    (tmp_path / "text.png").write_text("not an image")
    finished = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(tmp_path / "bundle"), image_files[0],
                               str(tmp_path / "text.png"), str(tmp_path / "missing.png")],
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 1
    lines = finished.stdout.splitlines()
    assert lines[0].startswith(f"{image_files[0]}: ") and "%" in lines[1]
    assert "text.png: error: not a readable image" in finished.stdout
    assert "missing.png: error: no such file" in finished.stdout


def test_a_failed_parity_exits_2_and_writes_nothing(run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)   # no difference passes, not even 0
    result = konbu_cli("export", run.path, "--out", tmp_path / "bundle")
    assert result.exit_code == 2
    assert "does not match konbu's: max |p_torch - p_exported|" in result.output and "Traceback" not in result.output
    assert not any(tmp_path.iterdir())   # no bundle and no temporary folder at --out


def test_a_missing_onnx_extra_is_named(run, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    result = konbu_cli("export", run.path, "--out", tmp_path / "bundle")
    assert result.exit_code == 2
    assert "konbu export --format onnx needs the onnx extra: pip install 'konbu[onnx]'" in result.output
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("args", [("nothing-here",), ("file",), ("empty-folder",), ("RUN", "--format", "tflite"),
                                  ("RUN", "--out", "RUN")])
def test_bad_runs_and_options_exit_2(run, tmp_path, args):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty-folder").mkdir()
    args = [str(run.path) if arg == "RUN" else (arg if arg.startswith("-") or arg == "tflite" else tmp_path / arg)
            for arg in args]
    result = konbu_cli("export", *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert konbu.Run.load(run.path).classes   # `--out RUN` did not replace the run directory
