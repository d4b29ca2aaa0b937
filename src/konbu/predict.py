"""Prediction: image files or arrays -> top-K classes with probabilities, for a loaded run.

    run = konbu.Run.load("runs/deep")
    predict(run, ["seven.jpg", "photo.png"], top=3)       # [[{"label", "index", "probability"}, ...], ...]

The image -> model-input step (MNIST-style ink normalisation for digit models) is
konbu.preprocess, shared with the inspection figures.
"""

import torch

from .errors import ConfigError, KonbuError, ShapeError
from .images import read_image
from .ink import mnist_normalise
from .inspect import plot_input_check
from .preprocess import image_shape, prepare_batch, to_model_input

__all__ = ["read_image", "mnist_normalise", "to_model_input", "prepare_batch", "top_k", "predict", "predict_files"]


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
    return torch.empty((0, *image_shape(run.preprocess)), dtype=torch.uint8)
