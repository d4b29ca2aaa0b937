"""Predict with a pretrained ImageNet classifier as published, without a run: the Keras book's
"classify an image with VGG16 in a few lines".

    answers = classify("vgg16", ["elephant.jpg"], top=5)
    konbu predict --model pretrained:vgg16 elephant.jpg

The whole torchvision model (its classifier too) is built on the meta device and its published
weights (weights.py: downloaded once, hash-checked) are assigned into it. A photo is prepared as
torchvision's weights say: its shorter side resized to `resize_size`, the centre `crop_size` square
cut out, scaled to [0, 1] and normalised with the weights' mean and std. Class names come from the
weights' metadata (ImageNet's 1,000).
"""

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, ImageError
from ..images import file_error_reason, read_image
from .backbones import PREFIX, get_backbone
from .weights import Published, published, published_file, read_weights_file

RESAMPLING = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def load_classifier(arch: str, weights_file=None) -> torch.nn.Module:
    """The full published classifier `arch` in eval mode, its weights from the cache or `weights_file`."""
    entry = get_backbone(arch)
    path = weights_file or published_file(arch)
    state = read_weights_file(path)
    with torch.device("meta"):
        model = entry.build()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise ConfigError(f"{path}: not the weights of a whole {arch} classifier "
                          f"({' '.join(str(error).split())[:300]})") from None
    return model.eval()


def photo_input(image: Image.Image, info: Published) -> torch.Tensor:
    """float [3, crop, crop]: shorter side to resize_size, centre crop, [0, 1], normalised."""
    image = image.convert("RGB")
    width, height = image.size
    scale = info.resize_size / min(width, height)
    size = (max(info.crop_size, round(width * scale)), max(info.crop_size, round(height * scale)))
    image = image.resize(size, RESAMPLING.get(info.interpolation, Image.BILINEAR))
    left, top = (size[0] - info.crop_size) // 2, (size[1] - info.crop_size) // 2
    image = image.crop((left, top, left + info.crop_size, top + info.crop_size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(info.mean).view(3, 1, 1)) / torch.tensor(info.std).view(3, 1, 1)


@torch.inference_mode()
def classify(model_name: str, paths, top: int | None = None, weights_file=None) -> list:
    """Per image: {"image", "label", "probability", "predictions": [{"label", "probability"}] (top `top`,
    default 5)},
    or {"image", "error"} for a file that cannot be read."""
    arch = model_name.removeprefix(PREFIX)
    info = published(arch)
    top = min(5, len(info.categories)) if top is None else top   # the book's top-5
    if not 1 <= top <= len(info.categories):
        raise ConfigError(f"--top must be between 1 and {len(info.categories)}, got {top}")
    model = load_classifier(arch, weights_file)
    answers, inputs = [], []
    for path in paths:
        try:
            inputs.append(photo_input(read_image(path), info))
            answers.append({"image": str(path)})
        except ImageError as error:
            answers.append({"image": str(path), "error": file_error_reason(error, path)})
    if inputs:
        probabilities = torch.softmax(model(torch.stack(inputs)).float(), dim=1)
        values, indices = probabilities.topk(top, dim=1)
        readable = iter(zip(values.tolist(), indices.tolist()))
        for answer in answers:
            if "error" not in answer:
                row_values, row_indices = next(readable)
                answer["predictions"] = [{"label": info.categories[i], "probability": round(v, 6)}
                                         for v, i in zip(row_values, row_indices)]
                answer.update(label=answer["predictions"][0]["label"],
                              probability=answer["predictions"][0]["probability"])
    return answers
