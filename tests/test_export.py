"""konbu.export: every zoo model exports to ONNX and TorchScript with its probabilities equal to
konbu's (Run.probabilities is the answer key, ONNX Runtime and torch.jit.load read the files back),
for any batch size; a bundle that disagrees is refused and leaves nothing behind.

    .venv/bin/python -m pytest tests/test_export.py -q

Runs are random-weight models saved with konbu.runs.create_run: parity is about the file format,
not about what the weights learned (tests/cli/test_export.py exports a trained digit model).
"""

import ast
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

import konbu.export as export_module
from konbu import pixels
from konbu.errors import ConfigError, KonbuError, ShapeError
from konbu.export import FORMATS, TOLERANCE, compare, export
from konbu.models import build_model, get_model_entry, list_models
from konbu.runs import Run, create_run

BUNDLE = {"README.md", "classes.json", "export.json", "pixels.py", "predict.py", "preprocess.json"}


def make_run(folder: Path, model: str, temperature: float = 0.7) -> Path:
    """A run of `model` at its own input shape with random weights, calibrated with `temperature`.
    Grey 28x28 models claim mnist-sample (embedded: parity on its test split), the others cifar10
    (not on disk in tests: parity on random images)."""
    entry = get_model_entry(model)
    channels = entry.input_shape[0]
    torch.manual_seed(0)
    net = build_model(model, entry.input_shape, entry.num_classes)
    dataset = "mnist-sample" if entry.input_shape == (1, 28, 28) else "cifar10"
    preprocess = {"image_shape": list(entry.input_shape), "mean": [0.13, 0.5, 0.45][:channels],
                  "std": [0.31, 0.25, 0.2][:channels], "classes": [f"class {i}" for i in range(entry.num_classes)],
                  "ink": "mnist" if channels == 1 else "", "ink_box": 20}
    create_run(folder, {"model": model, "dataset": dataset, "config": {}}, {"name": model, "layers": net.spec},
               preprocess, net)
    (folder / "calibration.json").write_text(json.dumps({"temperature": temperature}))
    return folder


def random_images(shape, count, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, *shape), dtype=torch.uint8, generator=generator)


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "chollet", "chollet-mnist")


# ---------------------------------------------------------------------------------------------
# Parity for the whole zoo
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("format", list(FORMATS))
@pytest.mark.parametrize("model", list_models())
def test_every_zoo_model_exports_with_parity(tmp_path, model, format):
    run_dir = make_run(tmp_path / model, model)
    result = export(run_dir, tmp_path / "bundle", format=format)
    assert result["max_abs_diff"] <= TOLERANCE and result["top1_agree"] + result["top1_ties"] == result["n"] == 256
    assert set(result["files"]) == BUNDLE | {FORMATS[format]}
    source = "test images of mnist-sample" if get_model_entry(model).input_shape == (1, 28, 28) else "random images"
    assert source in result["images"]
    record = json.loads((tmp_path / "bundle" / "export.json").read_text())
    assert record["parity"]["max_abs_diff"] == result["max_abs_diff"] and record["temperature"] == 0.7
    assert not list(tmp_path.glob(".bundle*"))   # no temporary folder left beside it


def onnx_probabilities(bundle: Path, images: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    probabilities, logits = session.run(["probabilities", "logits"], {"images": images.numpy()})
    assert logits.shape == probabilities.shape
    return probabilities


def torchscript_probabilities(bundle: Path, images: torch.Tensor) -> np.ndarray:
    with pytest.warns(FutureWarning):   # torch.jit is deprecated upstream; the bundle still loads
        module = torch.jit.load(str(bundle / "model.pt"))
    return module(images)[0].detach().numpy()


@pytest.mark.parametrize("format, read", [("onnx", onnx_probabilities), ("torchscript", torchscript_probabilities)])
def test_the_batch_size_is_free(grey_run, tmp_path, format, read):
    export(grey_run, tmp_path / format, format=format)
    run = Run.load(grey_run, device="cpu")
    for count in (1, 7):
        images = random_images((1, 28, 28), count, seed=count)
        probabilities = read(tmp_path / format, images)
        assert probabilities.shape == (count, 10)
        np.testing.assert_allclose(probabilities, run.probabilities(images).numpy(), atol=TOLERANCE, rtol=0)


def test_the_onnx_model_takes_uint8_pixels_and_answers_calibrated_probabilities(grey_run, tmp_path):
    export(grey_run, tmp_path / "bundle")
    session = onnxruntime.InferenceSession(str(tmp_path / "bundle" / "model.onnx"))
    (images,) = session.get_inputs()
    assert images.name == "images" and images.type == "tensor(uint8)"
    assert isinstance(images.shape[0], str) and images.shape[1:] == [1, 28, 28]   # a named, dynamic batch
    assert [output.name for output in session.get_outputs()] == ["probabilities", "logits"]
    batch = random_images((1, 28, 28), 5)
    probabilities, logits = session.run(None, {"images": batch.numpy()})
    np.testing.assert_allclose(probabilities, torch.from_numpy(logits / 0.7).softmax(-1).numpy(), atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The bundle's files
# ---------------------------------------------------------------------------------------------

def test_the_bundle_holds_konbus_own_pixels_module_and_the_runs_contract(grey_run, tmp_path):
    result = export(grey_run, tmp_path / "bundle")
    bundle = tmp_path / "bundle"
    assert (bundle / "pixels.py").read_bytes() == Path(pixels.__file__).read_bytes()
    run = Run.load(grey_run)
    assert json.loads((bundle / "preprocess.json").read_text()) == run.preprocess
    assert json.loads((bundle / "classes.json").read_text()) == run.classes
    readme = (bundle / "README.md").read_text()
    for words in ("pip install onnxruntime numpy pillow", "python predict.py", f"{result['max_abs_diff']:.2g}",
                  "256 of 256", "chollet-mnist", "mnist-sample", "konbu 0.1.0", "T = 0.7"):
        assert words in readme, words
    compile((bundle / "predict.py").read_text(), "predict.py", "exec")


def test_pixels_needs_only_numpy_and_pil():
    """The bundle runs pixels.py without konbu or torch: it may import nothing else."""
    tree = ast.parse(Path(pixels.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported - set(sys.stdlib_module_names) == {"numpy", "PIL"}


def test_a_bundle_is_replaced_but_no_other_folder(grey_run, tmp_path):
    first = export(grey_run, tmp_path / "bundle", format="torchscript")
    second = export(grey_run, tmp_path / "bundle")            # an earlier bundle: replaced whole
    assert "model.pt" in first["files"] and set(second["files"]) == BUNDLE | {"model.onnx"}
    assert not (tmp_path / "bundle" / "model.pt").exists()
    with pytest.raises(ConfigError, match="not a bundle"):
        export(grey_run, grey_run)                            # the run directory itself: never replaced
    assert Run.load(grey_run).classes
    with pytest.raises(ConfigError, match="unknown export format"):
        export(grey_run, tmp_path / "other", format="tflite")


def test_default_out_is_inside_the_run(grey_run):
    result = export(grey_run, format="torchscript")
    assert Path(result["out"]) == grey_run / "export-torchscript" and (grey_run / "export-torchscript").is_dir()


# ---------------------------------------------------------------------------------------------
# Parity: its figures, its images, and a bundle that fails it
# ---------------------------------------------------------------------------------------------

def test_compare_counts_disagreements_and_forgives_exact_ties():
    # row 1: 3e-7 apart, a flip of float rounding; row 2: a real disagreement
    reference = np.array([[0.7, 0.2, 0.1], [0.5, 0.4999997, 3e-7], [0.6, 0.3, 0.1]], dtype=np.float32)
    exported = np.array([[0.7, 0.2, 0.1], [0.4999997, 0.5, 3e-7], [0.3, 0.6, 0.1]], dtype=np.float32)
    figures = compare(reference, exported)
    assert figures["top1_agree"] == 1 and figures["top1_ties"] == 1 and figures["n"] == 3
    assert figures["max_abs_diff"] == pytest.approx(0.3)


def test_given_images_are_used_and_checked(grey_run, tmp_path):
    result = export(grey_run, tmp_path / "bundle", format="torchscript", images=random_images((1, 28, 28), 3))
    assert result["n"] == 3 and result["images"] == "3 given images"
    with pytest.raises(ShapeError, match="uint8"):
        export(grey_run, tmp_path / "other", images=random_images((1, 28, 28), 3).float())
    with pytest.raises(ShapeError, match=r"\[N, 1, 28, 28\]"):
        export(grey_run, tmp_path / "other", images=random_images((3, 28, 28), 3))
    assert not (tmp_path / "other").exists()


def test_a_model_that_disagrees_is_refused_and_nothing_is_written(grey_run, tmp_path, monkeypatch):
    good = export(grey_run, tmp_path / "kept")

    def wrong(run):   # a graph normalising with another mean: what a broken exporter would write
        return export_module.Servable(run.model, [0.6], run.preprocess["std"], run.temperature).eval()
    monkeypatch.setattr(export_module, "_servable", wrong)
    for format in FORMATS:
        with pytest.raises(KonbuError, match=r"does not match konbu's: max \|p_torch - p_exported\| .*top-1 agrees"):
            export(grey_run, tmp_path / "bundle", format=format)
        assert not (tmp_path / "bundle").exists()
        with pytest.raises(KonbuError, match="does not match"):
            export(grey_run, tmp_path / "kept", format=format)   # an earlier bundle stays as it was
        assert json.loads((tmp_path / "kept" / "export.json").read_text())["parity"]["n"] == good["n"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept"]   # no temporary folders either


def test_a_nan_is_a_disagreement(grey_run, tmp_path, monkeypatch):
    def nan_runner(path):
        return lambda images: np.full((len(images), 10), np.nan, dtype=np.float32)
    monkeypatch.setitem(export_module.RUNNERS, "torchscript", nan_runner)
    with pytest.raises(KonbuError, match="max .* nan"):
        export(grey_run, tmp_path / "bundle", format="torchscript")


def test_a_missing_extra_is_named(grey_run, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    expected = r"needs the onnx extra: pip install 'konbu\[onnx\]' \(not installed: onnxscript\)"
    with pytest.raises(KonbuError, match=expected):
        export(grey_run, tmp_path / "bundle")
    assert "model.pt" in export(grey_run, tmp_path / "bundle", format="torchscript")["files"]   # needs no extra
