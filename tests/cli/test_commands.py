"""The CLI through its runner: listings, summary, train -> evaluate -> predict, and every error
case exiting 2 with a message instead of a traceback."""

import json

import numpy as np
import pytest
from PIL import Image

from konbu.cli.testing import invoke as konbu
from konbu.data import load_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = konbu("train", "--model", "tfjs-mnist", "--epochs", "2", "--threads", "2", "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_datasets_and_models_listings():
    result = konbu("datasets")
    assert result.exit_code == 0
    assert "mnist-sample" in result.output and "4,000" in result.output and "digits" in result.output
    result = konbu("models")
    assert result.exit_code == 0
    for name in ("softmax", "mlp", "deep-mnist", "chollet-mnist", "tfjs-mnist", "lenet", "cifar10-net", "cifar10-deep"):
        assert name in result.output
    assert "Deep Learning with Python" in result.output and "93,322" in result.output


def test_summary():
    result = konbu("summary", "chollet-mnist")
    assert result.exit_code == 0
    for text in ("conv2d (Conv2D)", "(None, 26, 26, 32)", "18,496", "36,928", "Total params: 93,322", "Mult-adds"):
        assert text in result.output
    result = konbu("summary", "softmax", "--dataset", "digits")
    assert "Total params: 650" in result.output   # 8 x 8 pixels -> 10 classes


def test_train_prints_rows_final_metrics_and_next_commands(trained):
    out, output = trained
    assert "val_acc" in output and "images/s" in output
    assert f"run directory: {out}" in output.replace("\n", "")
    assert "test accuracy" in output
    assert f"konbu evaluate {out}" in output and f"konbu predict {out}" in output
    assert (out / "report.html").is_file()


def test_evaluate_json_and_table(trained):
    out, _ = trained
    result = konbu("evaluate", out, "--json")
    assert result.exit_code == 0
    metrics = json.loads(result.output)
    assert {"accuracy", "loss", "n", "top5_accuracy", "balanced_accuracy", "per_class"} <= set(metrics)
    assert metrics["n"] == 1000 and 0.5 < metrics["accuracy"] <= 1
    result = konbu("evaluate", out)
    assert "precision" in result.output and "balanced accuracy" in result.output
    assert (out / "figures" / "confusion.png").is_file()


def test_evaluate_with_test_time_augmentation(trained):
    out, _ = trained
    plain = json.loads(konbu("evaluate", out, "--json").output)
    result = konbu("evaluate", out, "--tta", "flip-shift", "--json")
    assert result.exit_code == 0, result.output
    augmented = json.loads(result.stdout)              # the JSON alone on stdout; the warning on stderr
    assert augmented["tta"] == "flip-shift" and "tta" not in plain and augmented["loss"] != plain["loss"]
    assert "warning: --tta flip-shift on mnist-sample (digits) also scores each test image mirrored" in result.stderr
    assert "test-time augmentation flip" in konbu("evaluate", out, "--tta", "flip").output
    result = konbu("evaluate", out, "--tta", "spin")
    assert result.exit_code == 2 and "--tta must be one of none, flip, flip-shift" in result.output


def test_predict_json_top_k(trained, tmp_path):
    out, _ = trained
    test = load_dataset("mnist-sample", "test")
    paths = []
    for i in range(3):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).save(path)
        paths.append(path)
    result = konbu("predict", out, *paths, "--top", "3", "--json")
    assert result.exit_code == 0, result.output
    answers = json.loads(result.output)
    assert [a["image"] for a in answers] == [str(p) for p in paths]
    for answer in answers:
        probabilities = [p["probability"] for p in answer["predictions"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert {"label", "index", "probability"} == set(answer["predictions"][0])
    result = konbu("predict", out, paths[0], "--show-input", tmp_path / "check.png")
    assert result.exit_code == 0 and "%" in result.output
    assert Image.open(tmp_path / "check.png").size[0] > 100


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "resnet-9000", "--epochs", "1"], "unknown model 'resnet-9000'"),
    (["train", "--dataset", "imagenet", "--epochs", "1"], "unknown dataset 'imagenet'"),
    (["train", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "--optimizer", "adagrad"], "unknown optimizer 'adagrad'"),
    (["train", "--model", "cifar10-deep", "--dataset", "digits", "--epochs", "1"], "too small"),
    (["train", "--tta", "spin", "--epochs", "1"], "--tta must be one of none, flip, flip-shift"),
    (["summary", "nope"], "unknown model 'nope'"),
    (["evaluate", "no/such/run"], "run directory no/such/run not found"),
])
def test_errors_exit_2_with_a_message(args, message, tmp_path):
    result = konbu(*args, *(["--out", tmp_path / "r"] if args[0] == "train" else []))
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", " ")
    assert "Traceback" not in result.output


def test_missing_data_files(tmp_path):
    result = konbu("train", "--dataset", "mnist", "--data-dir", tmp_path, "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "train-images-idx3-ubyte" in result.output and "--data-dir" in result.output


def test_incomplete_run_and_bad_images(trained, tmp_path):
    out, _ = trained
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{}")
    result = konbu("predict", broken, "x.png")
    assert result.exit_code == 2 and "incomplete" in result.output and "weights.safetensors" in result.output
    # an image that cannot be read is that image's error (exit 1), not a usage error (exit 2)
    result = konbu("predict", out, tmp_path / "missing.png")
    assert result.exit_code == 1 and "missing.png: error:" in result.output
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("these are not pixels")
    result = konbu("predict", out, not_an_image)
    assert result.exit_code == 1 and "notes.png: error:" in result.output
    blank = tmp_path / "blank.png"   # a blank page is an answer: no digit on it
    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(blank)
    result = konbu("predict", out, blank)
    assert result.exit_code == 0 and "no digit found" in result.output and "ink" in result.output
    result = konbu("evaluate", out, "--dataset", "digits")
    assert result.exit_code == 2 and "shape" in result.output
