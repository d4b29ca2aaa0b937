"""The images a model got wrong, worst first: the gallery the Keras book's readers asked for.

    from konbu.inspect.mistakes import find_mistakes, plot_mistakes
    mistakes = find_mistakes(run.logits(test.images), test.labels, n=36)
    mistakes[0]   # {"index": 412, "true": 8, "predicted": 9, "probability": 0.97,
                  #  "true_probability": 0.01, "loss": 4.6}
    plot_mistakes(test.images, mistakes, test.classes, run.path / "figures" / "mistakes.png")

    konbu show mistakes RUN [--n 36]

"Worst" means highest cross-entropy loss, i.e. the lowest probability given to the true class:
the confident mistakes come first, the near-misses last. Each cell is titled "true → predicted (p%)"
with p the probability of the (wrong) predicted class.
"""

from pathlib import Path

import torch
import torch.nn.functional as F

from .canvas import new_figure, save_figure
from .fonts import display_label
from .grids import plot_image_grid

MISTAKE_COLOR = "#b2182b"


def find_mistakes(logits: torch.Tensor, labels: torch.Tensor, n: int = 36) -> list:
    """Up to `n` misclassified rows of `logits` [N, K] (`labels` [N]), highest loss first.

    Each is {"index", "true", "predicted", "probability" (of the predicted class),
    "true_probability", "loss"} with plain Python numbers; ties keep index order.
    """
    logits, labels = torch.as_tensor(logits).detach().float().cpu(), torch.as_tensor(labels).detach().long().cpu()
    if logits.ndim != 2 or labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"expected logits [N, K] and labels [N], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    probabilities = logits.softmax(dim=1)
    losses = F.cross_entropy(logits, labels, reduction="none")
    predicted = logits.argmax(dim=1)
    wrong = (predicted != labels).nonzero().flatten()
    # stable sort: equal losses keep their dataset order, so the gallery is reproducible
    order = wrong[torch.sort(losses[wrong], descending=True, stable=True).indices][:n]
    return [
        {
            "index": int(i),
            "true": int(labels[i]),
            "predicted": int(predicted[i]),
            "probability": float(probabilities[i, predicted[i]]),
            "true_probability": float(probabilities[i, labels[i]]),
            "loss": float(losses[i]),
        }
        for i in order.tolist()
    ]


def mistake_title(mistake: dict, classes) -> str:
    """ "true → pred (p%)" with class names drawable in the figure's fonts."""
    true, predicted = (display_label(classes[mistake[key]]) for key in ("true", "predicted"))
    return f"{true} → {predicted} ({mistake['probability']:.0%})"


def plot_mistakes(images, mistakes: list, classes, path, title: str | None = None) -> Path:
    """A grid of the mistaken images (`images` uint8 [N, C, H, W], indexed by each mistake's
    "index"), each titled "true → predicted (p%)". Returns the path written."""
    if not mistakes:
        figure = new_figure(6, 2)
        ax = figure.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes: every image was classified correctly", ha="center", va="center",
                fontsize=12)
        return save_figure(figure, path)
    images = torch.as_tensor(images)
    chosen = images[torch.tensor([m["index"] for m in mistakes])]
    titles = [mistake_title(m, classes) for m in mistakes]
    columns = min(len(mistakes), 9)
    heading = title or (f"{len(mistakes)} mistakes, worst first: true → predicted (probability of the prediction)")
    return plot_image_grid(chosen, titles, path, columns=columns, title=heading,
                           title_colors=[MISTAKE_COLOR] * len(mistakes))
