"""Prediction: image files or arrays -> top-K classes with probabilities, for a loaded run.

    run = konbu.Run.load("runs/deep")
    predict(run, ["seven.jpg", "photo.png"], top=3)       # [[{"label", "index", "probability"}, ...], ...]
    predict(run, "kana.png", reject_below=0.6)            # {"label": None, "predictions": [...]}: unknown
    predict_files(run, ["a.png", "noise.png"])            # one answer per file, an "error" for a bad one

Percentages are calibrated with the run's temperature (konbu.inspect.calibration).

The image -> model-input step (MNIST-style ink normalisation for digit models) is
konbu.preprocess, shared with the inspection figures.

Images that can't be answered, and what each entry point does with them:
- A file that can't be read (missing, 0 bytes, text named .png, truncated, too large):
  `predict_files` (`konbu predict`) answers it {"image": path, "error": reason} and goes on with the
  others; `predict` (in-memory images, `Run.predict`) raises its ImageError, as a caller passing
  arrays or PIL images wants to hear about a bad one at once.
- An image with no digit on it (an MNIST-style run shown blank paper, one flat colour, or pixel
  noise: konbu.ink's NoInkError) is an answer, not an error, in both: label None, no candidates and a
  "reason" ("no digit found (...)"). The model is not asked: its "best guess" for an empty canvas
  would read as a digit. Noise with blobs in it passes as ink and gets a normal, usually unsure,
  answer (`reject_below` makes it unknown). A run without MNIST-style ink answers every readable
  image normally.
"""

import torch

from .errors import ConfigError, ImageError, KonbuError, ShapeError
from .images import file_error_reason
from .ink import NoInkError
from .preprocess import image_shape, to_model_input

__all__ = ["top_k", "predict", "predict_files", "answer_images", "training_examples", "describe"]


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


def _read_each(sources, preprocess: dict, errors_as_answers: bool) -> list:
    """Per source, its model input (uint8 [C, H, W]) or, when there is none, what to answer instead:
    {"reason": ...} for an image with no digit on it (NoInkError), {"error": ...} for a file that
    can't be read when `errors_as_answers` (else its ImageError is raised)."""
    image_shape(preprocess)   # a broken preprocess.json is the run's fault, not each image's: raise once
    inputs = []
    for source in sources:
        try:
            inputs.append(to_model_input(source, preprocess))
        except NoInkError as error:
            inputs.append({"reason": str(error)})
        except ImageError as error:
            if not errors_as_answers:
                raise
            inputs.append({"error": file_error_reason(error, source)})
    return inputs


def _classify(run, sources, top: int, errors_as_answers: bool = False):
    """(per source: its model input or what _read_each answers instead; per source: its top-`top`
    answers, or that dict again).

    The readable images go through the model as one batch. Percentages are calibrated:
    softmax(logits / T) with the run's temperature (calibration.json; 1.0 for a run without one).
    T > 0 never changes which class comes first, only how sure it sounds.
    """
    inputs = _read_each(sources, run.preprocess, errors_as_answers)
    images = [item for item in inputs if isinstance(item, torch.Tensor)]
    # with no readable image, top_k of an empty [0, K] still checks `top`: --top 0 stays a usage error
    probabilities = run.probabilities(torch.stack(images)) if images else torch.empty((0, len(run.classes)))
    answers = iter(top_k(probabilities, run.classes, top))
    return inputs, [next(answers) if isinstance(item, torch.Tensor) else item for item in inputs]


def _decide(predictions: list, reject_below) -> dict:
    """The answer for one image: its best class, or label None ("I don't know") when the best
    probability is below `reject_below`. The candidates stay in "predictions" either way."""
    best = predictions[0]
    known = reject_below is None or best["probability"] >= reject_below
    return {"label": best["label"] if known else None, "index": best["index"] if known else None,
            "probability": best["probability"], "predictions": predictions}


def _no_digit(reason: str) -> dict:
    """The answer for an image with no digit on it: unknown, with no candidates, and why."""
    return {"label": None, "index": None, "probability": None, "predictions": [], "reason": reason}


def describe(answer: dict) -> str:
    """One line for a person: "7 (98%)", "unknown (best guess 7, 41%)" for a rejected answer, the
    reason for an image with no digit ("no digit found (...)"), "error: ..." for an unreadable file."""
    if "error" in answer:
        return f"error: {answer['error']}"
    if not answer["predictions"]:
        return answer["reason"]
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

    An image that can't be read raises its ImageError (the batch is not answered). An image with no
    digit on it (MNIST-style runs) has no candidates: [] in the plain form, and with `reject_below`
    {"label": None, "index": None, "probability": None, "predictions": [], "reason": "no digit found (...)"}.
    """
    _check_threshold(reject_below)
    single = not isinstance(images, (list, tuple))
    _, answers = _classify(run, [images] if single else list(images), top)
    if reject_below is None:
        answers = [[] if isinstance(answer, dict) else answer for answer in answers]
    else:
        answers = [_no_digit(answer["reason"]) if isinstance(answer, dict) else _decide(answer, reject_below)
                   for answer in answers]
    return answers[0] if single else answers


def predict_files(run, paths, top: int = 3, show_input=None, reject_below: float | None = None) -> list:
    """`konbu predict`: one answer per file, in order, every file answered however bad the others.

    A readable image: {"image": path, "label", "index", "probability", "predictions": [...]}, where
    "label" is the best class, or None ("unknown") when its probability is below `reject_below`.
    An image with no digit on it (MNIST-style runs): label, index and probability None, predictions
    [] and a "reason". A file that can't be read: {"image": path, "error": reason}, nothing else.
    With `show_input`, save the first classified image's model input beside training examples of
    its predicted class (the input checker); nothing is saved when no image was classified.
    Raises (nothing answered) only for the run's or the options' faults: a bad `reject_below` or
    `top`, a broken preprocess.json.
    """
    paths = [str(path) for path in paths]
    results, inputs = answer_images(run, paths, paths, top, reject_below)
    classified = [(image, result) for image, result in zip(inputs, results) if image is not None]
    if show_input is not None and classified:
        from .inspect.figures import plot_input_check   # imported here: matplotlib only for --show-input

        image, result = classified[0]
        best = result["predictions"][0]
        plot_input_check(image, training_examples(run, best["index"]), best["label"], best["probability"],
                         show_input)
    return results


def answer_images(run, sources, names, top: int = 3, reject_below: float | None = None) -> tuple[list, list]:
    """predict_files for any sources (paths, PIL images, arrays) named by `names` (what each answer's
    "image" says: a path, an upload's file name): (the answers, as predict_files gives them; per
    source, the uint8 [C, H, W] the model saw, or None when it saw nothing). The web app answers
    uploads with it, and shows the model input beside the answer."""
    _check_threshold(reject_below)
    inputs, answers = _classify(run, list(sources), top, errors_as_answers=True)
    results = []
    for name, answer in zip(names, answers):
        if isinstance(answer, list):
            results.append({"image": name, **_decide(answer, reject_below)})
        elif "error" in answer:
            results.append({"image": name, "error": answer["error"]})
        else:
            results.append({"image": name, **_no_digit(answer["reason"])})
    return results, [image if isinstance(image, torch.Tensor) else None for image in inputs]


def training_examples(run, label: int, count: int = 8) -> torch.Tensor:
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
