"""Prediction input: an image file or array -> exactly the uint8 tensor a trained model sees.

    run = konbu.Run.load("runs/deep")
    predict(run, ["seven.jpg", "photo.png"], top=3)       # [[{"label", "index", "probability"}, ...], ...]

    images = prepare_batch(["seven.jpg"], run.preprocess)  # uint8 [N, C, H, W]: what the model sees

`preprocess` is the run's preprocess.json: {"image_shape": [C, H, W], "mean", "std", "classes",
"ink": "mnist" or "", "ink_box": 20}. With ink="mnist" a user's photo of a digit (dark pen on
light paper, off-centre, any size) is normalised the way MNIST itself was made: white ink on
black, fitted into an ink_box square, centred by mass. Without it the image is only converted to
the model's channels and resized.
"""

import numpy as np
import torch
from PIL import Image

from .errors import ConfigError, KonbuError, ShapeError
from .images import read_image
from .ink import mnist_normalise
from .inspect import plot_input_check

__all__ = ["read_image", "mnist_normalise", "to_model_input", "prepare_batch", "top_k", "predict", "predict_files"]


# ---------------------------------------------------------------------------------------------
# Model input
# ---------------------------------------------------------------------------------------------

def to_model_input(source, preprocess: dict) -> torch.Tensor:
    """One image -> uint8 [C, H, W] exactly as the model was trained on."""
    channels, height, width = _image_shape(preprocess)
    image = read_image(source)
    if preprocess.get("ink") == "mnist" and channels == 1:
        box = int(preprocess.get("ink_box") or round(min(height, width) * 20 / 28))
        if height != width:
            raise ShapeError(f"MNIST-style ink needs a square input, found image_shape {[channels, height, width]}")
        grey = np.asarray(image.convert("L"))
        return torch.from_numpy(mnist_normalise(grey, size=height, box=box)).unsqueeze(0)
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        # PIL's bilinear widens its filter when shrinking, i.e. anti-aliases like
        # torchvision's Resize(antialias=True)
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    array = np.asarray(image)
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)   # (C, H, W)
    return torch.from_numpy(array.copy())   # a writable copy: PIL's buffer is read-only


def _image_shape(preprocess: dict):
    shape = preprocess.get("image_shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(isinstance(v, (int, np.integer)) and v > 0 for v in shape)):
        raise ShapeError(f"preprocess image_shape must be [C, H, W] of positive integers, found {shape!r}")
    if shape[0] not in (1, 3):
        raise ShapeError(f"konbu feeds images as 1 (grey) or 3 (RGB) channels, the model expects {shape[0]}")
    return tuple(int(v) for v in shape)


def prepare_batch(sources, preprocess: dict) -> torch.Tensor:
    """Many images -> uint8 [N, C, H, W]."""
    images = [to_model_input(source, preprocess) for source in sources]
    if not images:
        return torch.empty((0, *_image_shape(preprocess)), dtype=torch.uint8)
    return torch.stack(images)


def top_k(probabilities: torch.Tensor, classes, k: int) -> list:
    """[N, K] probabilities -> per row, the k best {"label", "index", "probability"}, best first."""
    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes):
        raise ShapeError(f"expected probabilities [N, {len(classes)}] for {len(classes)} classes, "
                         f"found {tuple(probabilities.shape)}")
    if k < 1:
        raise ConfigError(f"top-k needs k >= 1, found {k}")
    values, indices = probabilities.detach().float().cpu().topk(min(k, len(classes)), dim=1)
    return [[{"label": str(classes[index]), "index": index, "probability": value}
             for value, index in zip(row_values, row_indices)]
            for row_values, row_indices in zip(values.tolist(), indices.tolist())]


# ---------------------------------------------------------------------------------------------
# Prediction with a run
# ---------------------------------------------------------------------------------------------

def _classify(run, sources, top: int):
    """(uint8 batch the model saw, top-`top` answers per image)."""
    batch = prepare_batch(sources, run.preprocess)
    return batch, top_k(run.logits(batch).softmax(dim=1), run.classes, top)


def predict(run, images, top: int = 5):
    """Top-`top` classes for one image (-> list of dicts) or a list of images (-> list of lists)."""
    single = not isinstance(images, (list, tuple))
    _, answers = _classify(run, [images] if single else list(images), top)
    return answers[0] if single else answers


def predict_files(run, paths, top: int = 3, show_input=None) -> list:
    """`konbu predict`: [{"image": path, "predictions": [...]}, ...]. With `show_input`, save the
    first image's model input beside training examples of its predicted class (the input checker)."""
    paths = [str(path) for path in paths]
    batch, answers = _classify(run, paths, top)
    if show_input is not None:
        best = answers[0][0]
        plot_input_check(batch[0], _training_examples(run, best["index"]), best["label"], best["probability"],
                         show_input)
    return [{"image": path, "predictions": predictions} for path, predictions in zip(paths, answers)]


def _training_examples(run, label: int, count: int = 8) -> torch.Tensor:
    """A few training images of class `label`, or none when the run's dataset isn't on disk here."""
    from .data import is_available, load_dataset

    name, data_dir = run.info.get("dataset"), run.info.get("config", {}).get("data_dir")
    try:
        if is_available(name, data_dir):
            train = load_dataset(name, "train", data_dir)
            return train.images[train.labels == label][:count]
    except KonbuError:  # a run copied from another machine: the figure shows the input alone
        pass
    return torch.empty((0, *_image_shape(run.preprocess)), dtype=torch.uint8)
