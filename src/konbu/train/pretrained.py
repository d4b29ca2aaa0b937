"""`--model pretrained:NAME`: start from a torchvision backbone's ImageNet weights (or `--weights FILE`).

    run = konbu.fit(model="pretrained:resnet18", dataset="cifar10", image_size=64, fine_tune=True)
    konbu train --model pretrained:mobilenet_v3_small --dataset mnist-sample --image-size 64

What a pretrained run takes from the backbone, like a --from-run run takes it from its run
(from_run.Start): the input, (3, S, S) with S the backbone's published input size or --image-size
(grey data is repeated to three channels, small images upsampled as --image-size resizes them); the
input statistics the weights were trained with (ImageNet's mean/std, not the data's); and the
backbone's weights. The head (global average pooling, dropout, dense) is new, for the data's classes.
preprocess.json records the backbone's metadata, so predict, serve and export use the same input.
"""

from ..errors import ConfigError
from ..models import model_spec
from ..models.backbones import PREFIX
from ..models.weights import backbone_state, check_fits, published
from .from_run import Start, _head_index


def pretrained_start(config) -> Start:
    """The model, input and backbone weights of a new `--model pretrained:NAME` run."""
    arch = config.model.removeprefix(PREFIX)
    info = published(arch)
    side = config.image_size or info.crop_size
    if side < info.min_size:
        raise ConfigError(f"--image-size {side}: {arch} needs images of at least {info.min_size}x{info.min_size} "
                          f"(it was trained on {info.crop_size}x{info.crop_size})")
    spec = model_spec(config.model)
    state = backbone_state(arch, config.weights)
    check_fits(arch, state, config.weights or info.file)   # refused here, before the data loads
    source = config.weights or info.url
    record = {"arch": arch, "weights": source, "published": info.url, "input_size": info.crop_size,
              "resize_size": info.resize_size, "interpolation": info.interpolation}
    prefixed = {f"features.backbone.{key}": value for key, value in state.items()}
    # num_classes -1: never the data's, so the head is always the new one (from_run.load_weights)
    return Start(spec, (3, side, side), tuple(info.mean), tuple(info.std), -1, _head_index(spec["layers"], arch),
                 record, prefixed)
