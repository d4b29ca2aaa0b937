"""Prediction: image files or arrays -> top-K classes with probabilities, for a loaded run.

    run = konbu.Run.load("runs/deep")
    predict(run, ["seven.jpg", "photo.png"], top=3)       # [[{"label", "index", "probability"}, ...], ...]
    predict(run, "kana.png", reject_below=0.6)            # {"label": None, "predictions": [...]}: unknown

Percentages are calibrated with the run's temperature (konbu.inspect.calibration).

The image -> model-input step (MNIST-style ink normalisation for digit models) is
konbu.preprocess, shared with the inspection figures.
"""

import torch

from .errors import ConfigError, KonbuError, ShapeError
from .inspect import plot_input_check
from .preprocess import image_shape, prepare_batch

__all__ = ["top_k", "predict", "predict_files", "describe"]


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

def _check_threshold(reject_below):
    if reject_below is None:
        return
    try:
        valid = not isinstance(reject_below, bool) and 0.0 <= float(reject_below) <= 1.0   # NaN fails too
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ConfigError(f"--reject-below is a probability: expected a number from 0 to 1 (e.g. 0.6), "
                          f"found {reject_below!r}")


def _classify(run, sources, top: int):
    """(uint8 batch the model saw, top-`top` answers per image).

    Percentages are calibrated: softmax(logits / T) with the run's temperature (calibration.json;
    1.0 for a run without one). T > 0 never changes which class comes first, only how sure it sounds.
    """
    batch = prepare_batch(sources, run.preprocess)
    return batch, top_k(run.probabilities(batch), run.classes, top)


def _decide(predictions: list, reject_below) -> dict:
    """The answer for one image: its best class, or label None ("I don't know") when the best
    probability is below `reject_below`. The candidates stay in "predictions" either way."""
    best = predictions[0]
    known = reject_below is None or best["probability"] >= reject_below
    return {"label": best["label"] if known else None, "index": best["index"] if known else None,
            "probability": best["probability"], "predictions": predictions}


def describe(answer: dict) -> str:
    """One line for a person: "7 (98%)", or "unknown (best guess 7, 41%)" for a rejected answer."""
    best = answer["predictions"][0]
    if answer["label"] is None:
        return f"unknown (best guess {best['label']}, {best['probability']:.0%})"
    return f"{answer['label']} ({answer['probability']:.0%})"


def predict(run, images, top: int = 5, reject_below: float | None = None):
    """Top-`top` classes for one image (-> list of dicts) or a list of images (-> list of lists).

    With `reject_below` (a probability, e.g. 0.6) each image's answer is instead a dict
    {"label", "index", "probability", "predictions"}: "label" and "index" are None when the top
    probability is below the threshold — a kana drawn into a digit model should come back as
    "I don't know", not "98% 7" — and "predictions" keeps the top-`top` candidates.
    """
    _check_threshold(reject_below)
    single = not isinstance(images, (list, tuple))
    _, answers = _classify(run, [images] if single else list(images), top)
    if reject_below is not None:
        answers = [_decide(predictions, reject_below) for predictions in answers]
    return answers[0] if single else answers


def predict_files(run, paths, top: int = 3, show_input=None, reject_below: float | None = None) -> list:
    """`konbu predict`: [{"image": path, "label", "index", "probability", "predictions": [...]}, ...].

    "label" is the best class, or None ("unknown") when its probability is below `reject_below`.
    With `show_input`, save the first image's model input beside training examples of its
    predicted class (the input checker)."""
    _check_threshold(reject_below)
    paths = [str(path) for path in paths]
    batch, answers = _classify(run, paths, top)
    if show_input is not None:
        best = answers[0][0]
        plot_input_check(batch[0], _training_examples(run, best["index"]), best["label"], best["probability"],
                         show_input)
    return [{"image": path, **_decide(predictions, reject_below)} for path, predictions in zip(paths, answers)]


def _training_examples(run, label: int, count: int = 8) -> torch.Tensor:
    """A few training images of class `label`, or none when the run's dataset isn't on disk here."""
    from .data import is_available

    name, data_dir = run.info.get("dataset"), (run.info.get("config") or {}).get("data_dir")
    try:
        if is_available(name, data_dir):
            train = run.dataset("train")
            return train.images[train.labels == label][:count]
    except KonbuError:  # a run copied from another machine: the figure shows the input alone
        pass
    return torch.empty((0, *image_shape(run.preprocess)), dtype=torch.uint8)
