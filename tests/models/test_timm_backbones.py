"""`timm:NAME` backbones (konbu.models.timm_backbones): a timm CNN cut into its trunk and timm's own
blocks, its weights from the Hugging Face Hub checked by the hash the Hub sends, refused models named."""

import hashlib
import sys

import pytest
import timm
import torch
from safetensors.torch import save

from konbu.data.download import konbu_home
from konbu.errors import ConfigError, MissingDataError, ModelSpecError, UnknownNameError
from konbu.models import build_model, is_pretrained, model_spec
from konbu.models.backbones import build_backbone, get_backbone
from konbu.models.weights import backbone_state, check_fits, published, published_file

HUB_PATH = "/weights/timm/timm--mobilenetv3_small_050.lamb_in1k/model.safetensors"


@pytest.fixture(autouse=True)
def own_konbu_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KONBU_HOME", str(tmp_path / "konbu-home"))


@pytest.mark.parametrize("name, blocks", [
    ("resnet18", ["conv1+bn1", "layer1", "layer2", "layer3", "layer4"]),
    ("efficientnet_b0", ["conv_stem+bn1", "blocks.0.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5",
                         "blocks.6.0+conv_head+bn2"]),
    ("convnext_atto", ["stem", "stages.0.blocks", "stages.1", "stages.2", "stages.3"]),
])
def test_the_backbone_computes_timm_s_forward_features_in_timm_s_blocks(name, blocks):
    torch.manual_seed(0)
    full = timm.create_model(name, pretrained=False).eval()
    backbone = build_backbone(f"timm:{name}")
    state = {key: value for key, value in full.state_dict().items() if key.split(".")[0] in backbone._modules}
    backbone.load_state_dict(state, strict=True)             # timm's names, key for key
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(backbone.eval()(x), full.forward_features(x))
    assert backbone.block_names == blocks
    in_blocks = {id(p) for block in backbone.freeze_blocks for module in block for p in module.parameters()}
    assert in_blocks == {id(p) for p in backbone.parameters()}        # every weight can be frozen


def test_a_timm_model_is_a_pretrained_spec_named_as_given():
    spec = model_spec("timm:resnet18")
    assert is_pretrained("timm:resnet18") and spec["name"] == "timm:resnet18"
    assert spec["layers"][0] == {"type": "backbone", "arch": "timm:resnet18"}
    net = build_model("timm:resnet18", (3, 32, 32), 7)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_published_metadata_comes_from_the_pretrained_cfg():
    info = published("timm:resnet18")
    assert info.url == "https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors"
    assert info.folder == "weights/timm/timm--resnet18.a1_in1k"
    # timm's eval transform: resize to floor(224 / crop_pct 0.95), centre crop 224, bicubic
    assert (info.crop_size, info.resize_size, info.interpolation) == (224, 235, "bicubic")
    assert len(info.categories) == 1000 and info.categories[:2] == ("tench", "goldfish")


@pytest.mark.parametrize("name, reason", [
    ("vit_tiny_patch16_224", "keeps weights outside its layers (cls_token, pos_embed)"),
    ("swin_tiny_patch4_window7_224", "its features are (1, 7, 7, 768)"),
])
def test_models_that_are_not_a_chain_of_layers_are_refused_with_the_reason(name, reason):
    with pytest.raises(ModelSpecError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        get_backbone(f"timm:{name}")


def test_an_unknown_name_suggests_timm_s_close_ones():
    with pytest.raises(UnknownNameError, match="did you mean .*timm:efficientnet_b0"):
        get_backbone("timm:efficientnet")
    with pytest.raises(UnknownNameError, match="list_models"):
        get_backbone("timm:no_such_net")


def test_without_timm_the_message_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)      # `import timm` raises ImportError, as when not installed
    with pytest.raises(ConfigError, match=r"pip install 'konbu\[timm\]'"):
        get_backbone("timm:resnet34")


def hub_file():
    torch.manual_seed(0)
    return save(timm.create_model("mobilenetv3_small_050", pretrained=False).state_dict())


def test_hub_weights_download_once_checked_by_the_hash_in_the_redirect(http_server):
    data = hub_file()
    http_server.redirects[HUB_PATH] = ("/cdn/blob", {"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"'})
    http_server.files["/cdn/blob"] = data
    path = published_file("timm:mobilenetv3_small_050")
    assert path == konbu_home() / "weights/timm/timm--mobilenetv3_small_050.lamb_in1k/model.safetensors"
    assert path.read_bytes() == data
    published_file("timm:mobilenetv3_small_050")
    assert http_server.requests == [HUB_PATH, "/cdn/blob"]             # cached: asked for once
    state = backbone_state("timm:mobilenetv3_small_050")
    check_fits("timm:mobilenetv3_small_050", state, "hub")
    assert not any(key.startswith("classifier") for key in state)


def test_a_hub_download_that_is_not_the_file_the_hub_hashed_is_not_kept(http_server):
    data = hub_file()
    http_server.redirects[HUB_PATH] = ("/cdn/blob", {"X-Linked-Etag": f'"{hashlib.sha256(b"other").hexdigest()}"'})
    http_server.files["/cdn/blob"] = data
    with pytest.raises(MissingDataError, match="X-Linked-Etag"):
        published_file("timm:mobilenetv3_small_050")
    assert not list(konbu_home().rglob("model.safetensors*"))          # neither the file nor its .part
