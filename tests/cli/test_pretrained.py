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


@pytest.fixture(scope="module")
def timm_classifier():
    """timm's mobilenetv3_small_050 with random weights, a head and BatchNorm statistics that answer
    differently per image (as trained ones do), saved as the Hub publishes it: model.safetensors."""
    import timm
    from safetensors.torch import save

    torch.manual_seed(0)
    model = timm.create_model("mobilenetv3_small_050", pretrained=False)
    with torch.no_grad():
        torch.nn.init.normal_(model.classifier.weight, std=1.0)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
        model.train()(torch.randn(8, 3, 224, 224))
    return model.eval(), save(model.state_dict())


TIMM_HUB = "/weights/timm/timm--mobilenetv3_small_050.lamb_in1k/model.safetensors"


def test_predict_with_a_timm_classifier_from_the_hub_as_timm_prepares_it(http_server, timm_classifier, photos):
    import timm.data

    model, data = timm_classifier
    http_server.files[TIMM_HUB] = data
    result = invoke("predict", "--model", "timm:mobilenetv3_small_050", *photos, "--json")
    assert result.exit_code == 0, result.output
    prepare = timm.data.create_transform(**timm.data.resolve_model_data_config(model))   # resize 256, crop 224
    with torch.no_grad():
        expected = torch.softmax(model(torch.stack([prepare(Image.open(p).convert("RGB")) for p in photos])), 1)
    for answer, probabilities in zip(json.loads(result.output), expected):
        assert len(answer["predictions"]) == 5
        top = probabilities.topk(5)
        assert answer["probability"] == pytest.approx(float(top.values[0]), abs=0.02)
        assert answer["label"] == timm.data.ImageNetInfo().index_to_description(int(top.indices[0])).split(",")[0]


def test_train_fine_tune_a_timm_backbone_then_predict_and_export(timm_classifier, tmp_path):
    from safetensors.torch import load

    weights = tmp_path / "mobilenetv3.safetensors"
    weights.write_bytes(timm_classifier[1])
    out = tmp_path / "run"
    result = invoke("train", "--model", "timm:mobilenetv3_small_050", "--weights", weights, "--dataset", "digits",
                    "--classes", "0,1", "--image-size", 32, "--epochs", 2, "--fine-tune", "--freeze-epochs", 1,
                    "--unfreeze", "top:2", "--batch-size", 32, "--threads", 2, "--out", out)
    assert result.exit_code == 0, result.output
    assert "stage 2 (epochs 2-2): backbone top:2 unfrozen" in result.output
    run = konbu.Run.load(out)
    saved = {key.removeprefix("features.backbone."): value for key, value in run.model.state_dict().items()}
    start = load(timm_classifier[1])
    assert torch.equal(saved["conv_stem.weight"], start["conv_stem.weight"])     # below top:2: never trained
    assert not torch.equal(saved["blocks.5.0.conv.weight"], start["blocks.5.0.conv.weight"])   # the top block was
    digit = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(digit)
    assert invoke("predict", out, digit).exit_code == 0
    figures = export(out, tmp_path / "bundle")
    assert figures["top1_agree"] == figures["n"] and figures["max_abs_diff"] <= 1e-4
    summary = invoke("summary", "timm:mobilenetv3_small_050", "--fine-tune", "--unfreeze", "top:2")
    assert "trained: blocks.4, blocks.5.0, the head" in summary.output, summary.output
