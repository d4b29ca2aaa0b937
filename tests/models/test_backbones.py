"""Pretrained backbones (konbu.models.backbones): torchvision's networks without their top, one layer of a spec."""

import pytest
import torch
import torchvision

from konbu.errors import ModelSpecError, UnknownNameError
from konbu.models import BACKBONES, build_model, default_input, model_spec, summary
from konbu.models.backbones import build_backbone
from konbu.models.weights import check_fits

ARCHS = ["vgg16", "inception_v3", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"]
BLOCKS = {"vgg16": 5, "inception_v3": 12, "resnet18": 5, "resnet50": 5, "mobilenet_v3_small": 13,
          "efficientnet_b0": 9, "convnext_tiny": 4}


def test_the_issue_s_architectures_are_all_there():
    assert set(ARCHS) <= set(BACKBONES)


@pytest.mark.parametrize("arch", ARCHS)
def test_torchvision_weights_load_key_for_key(arch):
    """A torchvision state dict (random weights here) fits the backbone once its classifier keys are
    left out, every tensor of its shape; so do the published files, which have the same keys."""
    full = torchvision.models.get_model(arch, weights=None, **({"init_weights": False} if arch == "inception_v3" else {}))
    backbone = build_backbone(arch)
    trunk = {k: v for k, v in full.state_dict().items() if k.split(".", 1)[0] in backbone._modules}
    check_fits(arch, trunk, "test")
    backbone.load_state_dict(trunk)
    assert len(backbone.freeze_blocks) == BLOCKS[arch]
    # the blocks cover the whole trunk, each module once, bottom to top
    in_blocks = [id(m) for block in backbone.freeze_blocks for m in block]
    assert len(in_blocks) == len(set(in_blocks))
    assert {id(p) for block in backbone.freeze_blocks for m in block for p in m.parameters()} == {
        id(p) for p in backbone.parameters()}


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "vgg16"])
def test_a_pretrained_net_is_backbone_pool_dropout_dense_for_the_data(arch):
    net = build_model(f"pretrained:{arch}", (3, 64, 64), 7)
    assert [layer.name for layer in net.layers] == ["backbone", "global_average_pooling2d", "dropout", "dense"]
    assert [layer.part for layer in net.layers] == ["features", "head", "head", "head"]
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 7)


def test_summary_counts_the_backbone_like_torchvision():
    net = build_model("pretrained:resnet18", (3, 224, 224), 1000)
    table = summary(net, (3, 224, 224))
    own = sum(p.numel() for p in torchvision.models.resnet18().parameters())
    assert table.trainable_params == own                       # 512 * 1000 + 1000: the same size of head
    assert table.rows[0].output_shape == [None, 7, 7, 512]
    assert table.rows[0].mult_adds > 1.8e9                       # ResNet-18's 1.8 GMACs are counted inside it
    assert default_input("pretrained:resnet18") == ((3, 224, 224), 1000)


def test_set_trainable_freezes_from_the_bottom_and_keeps_frozen_batchnorm_in_eval():
    backbone = build_backbone("resnet18")
    backbone.set_trainable(2)                                   # layer3 and layer4 train
    frozen, trained = backbone.freeze_blocks[:3], backbone.freeze_blocks[3:]
    assert all(not p.requires_grad for block in frozen for m in block for p in m.parameters())
    assert all(p.requires_grad for block in trained for m in block for p in m.parameters())
    backbone.train()
    norms = lambda blocks: [m for block in blocks for top in block for m in top.modules()
                            if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms(frozen) and not any(m.training for m in norms(frozen))
    assert all(m.training for m in norms(trained))
    before = [m.running_mean.clone() for m in norms(frozen)]
    backbone(torch.rand(4, 3, 32, 32))
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norms(frozen)))


def test_grey_or_unknown_input_is_refused_with_the_reason():
    with pytest.raises(ModelSpecError, match="RGB"):
        build_model("pretrained:resnet18", (1, 64, 64), 10)
    with pytest.raises(ModelSpecError, match="larger --image-size"):
        build_model("pretrained:inception_v3", (3, 32, 32), 10)
    with pytest.raises(UnknownNameError, match="resnet18"):
        model_spec("pretrained:resnet-18")
