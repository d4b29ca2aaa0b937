"""The pretrained half of the Keras book from the command line: `konbu predict --model pretrained:NAME`
(a published classifier, no run), `konbu train --model pretrained:NAME --fine-tune`, `konbu summary
--fine-tune`, and the export of a fine-tuned run, its parity checked like any other's."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

import konbu
from konbu.cli.testing import invoke
from konbu.export import export


@pytest.fixture(autouse=True)
def own_konbu_home(tmp_path, monkeypatch):
    """Each test its own download cache: what one test downloaded is not another's cached copy."""
    monkeypatch.setenv("KONBU_HOME", str(tmp_path / "konbu-home"))


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for index, size in enumerate(((120, 90), (64, 64), (300, 200))):
        path = tmp_path / f"photo{index}.jpg"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=95)
        paths.append(path)
    return paths


def test_predict_with_a_published_classifier_and_no_run(http_server, published_classifier, photos):
    http_server.files[f"/weights/{published_classifier.file}"] = published_classifier.data
    result = invoke("predict", "--model", f"pretrained:{published_classifier.name}", *photos, "--json")
    assert result.exit_code == 0, result.output
    answers = json.loads(result.output)
    # what torchvision's own preprocessing and the model give: resize the shorter side, centre crop, normalise
    prepare = v2.Compose([v2.ToImage(), v2.Resize(72, antialias=True), v2.CenterCrop(64),
                          v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.485, 0.456, 0.406],
                                                                              [0.229, 0.224, 0.225])])
    with torch.no_grad():
        expected = torch.softmax(published_classifier.model(torch.stack([prepare(Image.open(p).convert("RGB"))
                                                                         for p in photos])), 1)
    for answer, probabilities in zip(answers, expected):
        assert len(answer["predictions"]) == 4                       # top-5 of a 4-class model: all four
        assert answer["label"] == published_classifier.categories[int(probabilities.argmax())]
        for prediction in answer["predictions"]:
            index = published_classifier.categories.index(prediction["label"])
            assert prediction["probability"] == pytest.approx(float(probabilities[index]), abs=0.02)
    text = invoke("predict", "--model", f"pretrained:{published_classifier.name}", photos[0], "--top", 2)
    assert text.exit_code == 0 and text.output.count("%") == 3        # the headline and two classes


def test_predict_offline_without_the_weights_names_the_url_and_exits_2(photos, monkeypatch):
    monkeypatch.delenv("KONBU_MIRROR", raising=False)
    monkeypatch.setattr("konbu.data.download.Remote.urls", lambda self, file: [f"http://127.0.0.1:9/{file.name}"])
    result = invoke("predict", "--model", "pretrained:vgg16", photos[0])
    assert result.exit_code == 2
    assert "vgg16-397923af.pth" in result.output and "weights" in result.output


def test_predict_usage_mistakes_exit_2(photos, tmp_path):
    assert "at least one image" in invoke("predict", tmp_path).output
    assert invoke("predict", "--model", "tfjs-mnist", photos[0]).exit_code == 2
    assert invoke("predict", "--model", "pretrained:resnet18", "--reject-below", 0.5, photos[0]).exit_code == 2


def test_summary_shows_trainable_and_frozen_per_stage():
    result = invoke("summary", "pretrained:resnet18", "--fine-tune", "--unfreeze", "top:1")
    assert result.exit_code == 0, result.output
    assert "Stage 1 (backbone frozen): 513,000 trainable, 11,176,512 frozen" in result.output
    assert "Stage 2 (backbone top:1 unfrozen (1 of 5 blocks)): 8,906,728 trainable, 2,782,784 frozen" in result.output
    assert "frozen: conv1-maxpool, layer1, layer2, layer3; trained: layer4, the head" in result.output
    assert invoke("summary", "tfjs-mnist", "--fine-tune").exit_code == 2


def test_train_fine_tune_then_export_with_parity(published_classifier, tmp_path):
    out = tmp_path / "run"
    result = invoke("train", "--model", f"pretrained:{published_classifier.name}", "--weights",
                    published_classifier.path, "--dataset", "mnist-sample", "--image-size", 32, "--steps", 6,
                    "--epochs", 2, "--fine-tune", "--freeze-epochs", 1, "--batch-size", 16, "--threads", 2,
                    "--out", out)
    assert result.exit_code == 0, result.output
    assert "stage 1 (epochs 1-1): backbone frozen" in result.output
    figures = export(out, tmp_path / "bundle")
    assert figures["top1_agree"] == figures["n"] and figures["max_abs_diff"] <= 1e-4


def test_train_refuses_weights_that_are_not_a_state_dict(published_classifier, tmp_path):
    torch.save({"weights": [1, 2, 3]}, tmp_path / "bad.pth")
    result = invoke("train", "--model", f"pretrained:{published_classifier.name}", "--weights", tmp_path / "bad.pth",
                    "--out", tmp_path / "never")
    assert result.exit_code == 2 and "expected a state dict" in result.output
    assert not (tmp_path / "never").exists()
