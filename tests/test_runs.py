"""Run.load, run.predict and run.evaluate: the run directory as the one contract."""

import json
import shutil

import numpy as np
import torch
import pytest
from PIL import Image, ImageFilter

import konbu
from konbu.data import load_dataset
from konbu.errors import RunDirectoryError
from konbu.runs import Run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "chollet"
    return konbu.fit(model="chollet-mnist", epochs=4, threads=2, out=str(out), quiet=True)


def render_as_photo(digit: np.ndarray, seed: int) -> Image.Image:
    """A 28x28 MNIST digit as a user would photograph it: dark ink on light, uneven paper,
    4x larger, off-centre in a wider frame, slightly blurred and noisy."""
    rng = np.random.default_rng(seed)
    ink = Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BICUBIC)
    height, width = 180, 240
    paper = np.linspace(205, 235, width)[None, :].repeat(height, 0) + rng.normal(0, 3, (height, width))
    canvas = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
    top, left = int(rng.integers(5, height - 117)), int(rng.integers(5, width - 117))
    region = np.asarray(canvas.crop((left, top, left + 112, top + 112)), dtype=np.float64)
    darkened = region * np.asarray(ink, dtype=np.float64) / 255   # ink multiplies the paper, like a pen
    canvas.paste(Image.fromarray(darkened.astype(np.uint8)), (left, top))
    return canvas.filter(ImageFilter.GaussianBlur(0.8))


def test_load_reproduces_the_saved_accuracy(run):
    loaded = Run.load(run.path)
    assert loaded.evaluate()["accuracy"] == pytest.approx(run.info["final"]["test_accuracy"], abs=1e-9)
    assert loaded.classes == [str(d) for d in range(10)]


def test_a_copied_run_directory_works_elsewhere(run, tmp_path):
    copy = shutil.copytree(run.path, tmp_path / "elsewhere")
    assert Run.load(copy).evaluate()["accuracy"] == pytest.approx(run.info["final"]["test_accuracy"], abs=1e-9)


def test_photos_of_test_digits_are_predicted_like_the_originals(run, tmp_path):
    test = load_dataset("mnist-sample", "test")
    originals, photos = [], []
    for i in range(0, 1000, 25):                                    # 40 digits, 4 of each class
        digit = test.images[i, 0].numpy()
        originals.append(digit)
        path = tmp_path / f"photo{i}.{'jpg' if i % 2 else 'png'}"
        render_as_photo(digit, i).save(path, quality=90)
        photos.append(path)
    from_originals = [p[0]["index"] for p in run.predict(originals, top=1)]
    from_photos = [p[0]["index"] for p in run.predict(photos, top=1)]
    agree = np.mean(np.array(from_originals) == np.array(from_photos))
    assert agree >= 0.85, agree


def test_predict_one_image_gives_sorted_probabilities(run):
    digit = load_dataset("mnist-sample", "test").images[0, 0].numpy()
    predictions = run.predict(digit, top=10)
    assert len(predictions) == 10
    assert sum(p["probability"] for p in predictions) == pytest.approx(1.0, abs=1e-5)
    assert [p["probability"] for p in predictions] == sorted((p["probability"] for p in predictions), reverse=True)


def test_missing_incomplete_and_damaged_runs(run, tmp_path):
    with pytest.raises(RunDirectoryError, match="not found"):
        Run.load(tmp_path / "nothing")
    incomplete = shutil.copytree(run.path, tmp_path / "incomplete")
    (incomplete / "weights.safetensors").unlink()
    with pytest.raises(RunDirectoryError, match="missing weights.safetensors"):
        Run.load(incomplete)
    damaged = shutil.copytree(run.path, tmp_path / "damaged")
    (damaged / "preprocess.json").write_text("{not json")
    with pytest.raises(RunDirectoryError, match="preprocess.json is not valid JSON"):
        Run.load(damaged)
    mismatched = shutil.copytree(run.path, tmp_path / "mismatched")
    spec = json.loads((mismatched / "model.json").read_text())
    spec["layers"][0]["filters"] = 16
    (mismatched / "model.json").write_text(json.dumps(spec))
    with pytest.raises(RunDirectoryError, match="do not fit together"):
        Run.load(mismatched)


def test_initial_filters_are_kept_and_drawn_before_and_after(tmp_path):
    """initial.safetensors holds the conv kernels exactly as initialised (the seed rebuilds them), the
    trained ones differ, and `konbu show filters --initial` and the report draw both."""
    from PIL import Image
    from konbu.cli.testing import invoke
    from konbu.models import build_model, model_spec

    run = konbu.fit(model="tfjs-mnist", epochs=1, seed=3, quiet=True, threads=1, out=str(tmp_path / "run"))
    initial = run.initial_model()
    torch.manual_seed(3)
    fresh = build_model(model_spec("tfjs-mnist"), (1, 28, 28), 10)
    for name, tensor in fresh.state_dict().items():
        if name.endswith("weight") and tensor.ndim == 4:          # conv kernels: as initialised
            assert torch.equal(initial.state_dict()[name], tensor), name
            assert not torch.equal(run.model.state_dict()[name], tensor), name   # training moved them
    head = [name for name in fresh.state_dict() if name.startswith("head")][0]
    assert torch.equal(initial.state_dict()[head], run.model.state_dict()[head])  # only the kernels are swapped
    assert (run.path / "figures" / "filters-initial.png").is_file()
    assert "before training" in (run.path / "report.html").read_text()
    result = invoke("show", "filters", run.path, "--initial", "--out", tmp_path / "before.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "before.png") as image:
        assert image.format == "PNG"


def test_the_run_directory_is_written_and_read_through_runs(tmp_path):
    from konbu.errors import ConfigError
    from konbu.runs import (create_run, mark_finished, mark_interrupted, mark_resumed, read_info, saved_config)

    model = konbu.build_model("softmax", (1, 8, 8), 10)
    preprocess = {"image_shape": [1, 8, 8], "mean": [0.3], "std": [0.4], "classes": [str(i) for i in range(10)]}
    info = create_run(tmp_path / "r", {"model": "softmax", "dataset": "digits", "config": {"epochs": 2}},
                      {"name": "softmax", "layers": model.spec}, preprocess, model)
    assert read_info(tmp_path / "r")["status"] == "running" and info["name"] == "r"
    assert Run.load(tmp_path / "r").classes == preprocess["classes"]     # loadable from its very start
    with pytest.raises(ConfigError, match="already holds a run"):
        create_run(tmp_path / "r", {}, {}, preprocess, model)
    mark_interrupted(tmp_path / "r", info, step=7)
    assert read_info(tmp_path / "r")["interrupted"]["step"] == 7
    mark_resumed(tmp_path / "r", info, step=7, epoch=2, config={"epochs": 2})
    stored = read_info(tmp_path / "r")
    assert stored["status"] == "running" and stored["resumed"][0]["step"] == 7
    mark_finished(tmp_path / "r", info, final={"test_accuracy": 0.5})
    stored = read_info(tmp_path / "r")
    assert stored["status"] == "finished" and stored["final"] == {"test_accuracy": 0.5}
    assert saved_config(stored) == {"epochs": 2, "dataset": "digits"}
    (tmp_path / "r" / "run.json").write_text("[1, 2]")
    with pytest.raises(RunDirectoryError, match="expected a JSON object"):
        read_info(tmp_path / "r")


def test_dataset_name_is_stored_once_and_the_run_reloads_its_data(run):
    info = json.loads((run.path / "run.json").read_text())
    assert info["dataset"] == "mnist-sample" and "dataset" not in info["config"]
    train, test = run.data()
    assert (len(train), len(test)) == (4000, 1000) and torch.equal(run.dataset("test").labels, test.labels)


def test_probabilities_are_the_calibrated_softmax(run):
    loaded = Run.load(run.path)
    assert loaded.device == torch.device("cpu")      # device="auto" on a machine without a GPU
    images = load_dataset("mnist-sample", "test").images[:16]
    logits = loaded.logits(images)
    assert loaded.temperature != 1.0
    expected = (logits / loaded.temperature).softmax(dim=1)
    assert torch.allclose(loaded.probabilities(images), expected)
    assert torch.allclose(loaded.probabilities(logits=logits), expected)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "weights.safetensors").write_bytes(b"PK\x03\x04 a torch.save zip"), "pickled PyTorch file"),
    (lambda d: (d / "weights.safetensors").write_bytes(b"\x80\x04\x95 a pickle"), "never loads pickles"),
    (lambda d: (d / "weights.safetensors").write_bytes(b"{}garbage"), "not a readable safetensors file"),
    (lambda d: ((d / "weights.safetensors").rename(d / "model.pth")), "never loads pickled weights"),
    (lambda d: _edit(d / "preprocess.json", image_shape="28x28"), "image_shape"),
    (lambda d: _edit(d / "preprocess.json", mean=[0.1, 0.2]), "one finite number per channel"),
    (lambda d: _edit(d / "preprocess.json", std=[0.0]), "must be positive"),
    (lambda d: _edit(d / "preprocess.json", classes=["only"]), "at least two"),
    (lambda d: (d / "model.json").write_text('"conv"'), "\"layers\" list"),
    (lambda d: _edit(d / "run.json", format=2, versions={"konbu": "9.1.0"}), "konbu 9.1.0 \\(run format 2\\)"),
])
def test_a_damaged_or_foreign_run_is_a_clear_error(run, tmp_path, damage, message):
    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    damage(copy)
    with pytest.raises(RunDirectoryError, match=message):
        Run.load(copy)


def _edit(path, **fields):
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_a_run_path_that_is_a_file(run):
    with pytest.raises(RunDirectoryError, match="is a file"):
        Run.load(run.path / "run.json")


def test_metrics_follower_takes_whole_lines_in_order_and_restarts_after_a_shorter_rewrite(tmp_path):
    from konbu.atomic import write_text
    from konbu.runs import MetricsFollower

    path, follower = tmp_path / "metrics.jsonl", MetricsFollower(tmp_path)
    lines = [json.dumps({"kind": "batch", "step": step}) + "\n" for step in range(1, 8)]

    def append(text):
        with open(path, "a") as f:
            f.write(text)

    assert follower.poll() == (False, [])                                   # no file yet
    write_text(path, "")                                                    # the start's rewrite
    append(lines[0] + lines[1])
    assert follower.poll() == (False, [{"kind": "batch", "step": 1}, {"kind": "batch", "step": 2}])
    append(lines[2] + lines[3][:9])                                         # a line being appended: torn
    assert follower.poll() == (False, [{"kind": "batch", "step": 3}])
    assert follower.poll() == (False, [])
    append(lines[3][9:])                                                    # now complete
    assert follower.poll() == (False, [{"kind": "batch", "step": 4}])
    write_text(path, "".join(lines[:5]))                                    # an epoch's end: the same lines, and more
    assert follower.poll() == (False, [{"kind": "batch", "step": 5}])
    write_text(path, "".join(lines[:2]))                                    # a resume: shorter
    assert follower.poll() == (True, [{"kind": "batch", "step": 1}, {"kind": "batch", "step": 2}])
    append(lines[2])
    assert follower.poll() == (False, [{"kind": "batch", "step": 3}])
    write_text(path, lines[0] + lines[6] + lines[6] + lines[6])            # longer, but not going on from them
    assert follower.poll() == (True, [{"kind": "batch", "step": s} for s in (1, 7, 7, 7)])
    with open(path, "w") as f:                                              # cut shorter in place (same inode)
        f.write(lines[0] + lines[5])
    assert follower.poll() == (True, [{"kind": "batch", "step": 1}, {"kind": "batch", "step": 6}])


def test_read_progress_is_empty_when_missing_or_damaged(tmp_path):
    from konbu.runs import read_progress

    assert read_progress(tmp_path) == {}
    (tmp_path / "progress.json").write_text('{"step": 3, "sta')
    assert read_progress(tmp_path) == {}
    (tmp_path / "progress.json").write_text('{"step": 3, "state": "training"}')
    assert read_progress(tmp_path) == {"step": 3, "state": "training"}
