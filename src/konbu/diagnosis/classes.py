"""Diagnose checks on the classes: the pairs the model mixes up, the classes it misses most, and a
training set with far more images of some classes than of others.

    import konbu
    konbu.diagnose("runs/deep", checks=["confused-pairs", "low-recall", "class-imbalance"])

    konbu diagnose runs/deep

The confusions and recalls are those of the test split in evaluation.json (written with the run's
report; without it these checks say nothing). The imbalance counts the training split's labels, so
it needs the run's dataset on this machine (otherwise it is skipped, like every check that needs data).
"""

import shlex

import torch

from ..inspect.confusion import most_confused_pairs
from . import BETTER, NOTE, Finding, check
from .commands import train_command

# A pair is a systematic confusion when it holds at least a fifth of all test errors: with K classes
# there are K(K-1) ways to be wrong (90 for digits), so errors spread by chance give each pair ~1%.
CONFUSED_SHARE = 0.2
# ...and at least this many images: the healthy digits run's 7 errors put 2 on one pair (29%), which
# is chance on 359 test images, not a pattern.
MIN_PAIR_COUNT = 5
PAIRS_SHOWN = 3

# A class is missed "well below the mean" when its recall is this far under the mean recall: one
# image in six more going elsewhere than on average is a pattern, while a healthy run's recalls sit
# within a few points of each other (the healthy digits run: 94-100% around a mean of 98%).
LOW_RECALL_GAP = 0.15
MIN_SUPPORT = 5          # a class with fewer test images has a recall too coarse (steps of 25%+) to judge

# Largest class / smallest class above this: at 2:1 a plain cross-entropy already leans toward the
# large class (it is right more often by guessing it), and balanced accuracy falls below accuracy.
IMBALANCE_RATIO = 2.0


def _run(ctx) -> str:
    return shlex.quote(str(ctx.path))


@check("confused-pairs")
def confused_pairs(ctx) -> list:
    evaluation = ctx.evaluation
    if not evaluation.get("confusion"):
        return []
    confusion = torch.as_tensor(evaluation["confusion"])
    errors = int(confusion.sum() - confusion.trace())
    if errors == 0:
        return []
    pairs = most_confused_pairs(confusion, ctx.run.classes, k=PAIRS_SHOWN)
    material = [pair for pair in pairs if pair["count"] >= MIN_PAIR_COUNT and pair["count"] / errors >= CONFUSED_SHARE]
    if not material:
        return []
    top = material[0]
    listed = "; ".join(f"{pair['true']} taken for {pair['predicted']} {pair['count']} times "
                       f"({pair['fraction']:.0%} of the {pair['true']}s, {pair['count'] / errors:.0%} of all errors)"
                       for pair in material)
    return [Finding(
        id="confused-pairs",
        severity=NOTE,
        title=f"the model mixes up {top['true']} and {top['predicted']}",
        evidence=f"of {errors} test errors: {listed}.",
        next=[f"konbu show confusion {_run(ctx)} --normalize", f"konbu show mistakes {_run(ctx)}"],
        data={"errors": errors, "share": CONFUSED_SHARE, "min_count": MIN_PAIR_COUNT,
              "pairs": [{**pair, "share_of_errors": pair["count"] / errors} for pair in material]},
    )]


@check("low-recall")
def low_recall(ctx) -> list:
    rows = [row for row in ctx.evaluation.get("per_class") or [] if row.get("support")]
    if len(rows) < 2:
        return []
    mean = sum(row["recall"] for row in rows) / len(rows)
    low = sorted((row for row in rows if row["support"] >= MIN_SUPPORT and row["recall"] <= mean - LOW_RECALL_GAP),
                 key=lambda row: row["recall"])
    if not low:
        return []
    config = ctx.config
    next_steps = [f"konbu show confusion {_run(ctx)} --normalize", f"konbu show mistakes {_run(ctx)}"]
    median_support = sorted(row["support"] for row in rows)[len(rows) // 2]
    if not config.get("class_weights") and any(row["support"] < median_support for row in low):
        # a missed class that is also a rare one (the test split is drawn like the training split) is
        # what a plain loss neglects; weighting it up is the cheapest fix. A common class missed is
        # a confusion, which weights do not cure.
        next_steps.append(train_command(config, class_weights="balanced"))
    listed = ", ".join(f"{row['label']} {row['recall']:.0%} of {row['support']}" for row in low)
    return [Finding(
        id="low-recall",
        severity=BETTER,
        title=f"class {low[0]['label']} is found far less often than the others",
        evidence=(f"test recall (share of each class's images labelled correctly): {listed}, against a mean of "
                  f"{mean:.0%} over {len(rows)} classes."),
        next=next_steps,
        data={"mean_recall": mean, "gap": LOW_RECALL_GAP,
              "classes": [{"class": row["label"], "recall": row["recall"], "support": row["support"]} for row in low]},
    )]


@check("class-imbalance")
def class_imbalance(ctx) -> list:
    train = ctx.data[0]
    classes = ctx.run.classes
    counts = torch.bincount(train.labels.long().cpu(), minlength=len(classes))
    largest, smallest = int(counts.argmax()), int(counts.argmin())
    ratio = float(counts[largest]) / max(int(counts[smallest]), 1)
    if ratio <= IMBALANCE_RATIO:
        return []
    config = ctx.config
    compensated = [flag for flag, on in (("--class-weights balanced", config.get("class_weights") == "balanced"),
                                         ("--sampler balanced", config.get("sampler") == "balanced")) if on]
    evaluation = ctx.evaluation
    scores = ""
    if "balanced_accuracy" in evaluation and "accuracy" in evaluation:
        scores = (f" Test accuracy {evaluation['accuracy']:.1%}, balanced accuracy (the mean of the per-class "
                  f"recalls, what a skewed test set cannot flatter) {evaluation['balanced_accuracy']:.1%}.")
    next_steps = []
    if not compensated:
        next_steps = [train_command(config, class_weights="balanced"), train_command(config, sampler="balanced")]
    next_steps.append(f"konbu show confusion {_run(ctx)} --normalize")
    how = f" The run compensates with {' and '.join(compensated)}." if compensated else ""
    return [Finding(
        id="class-imbalance",
        severity=NOTE if compensated else BETTER,
        title=f"the training set is imbalanced: {ratio:.1f} times more {classes[largest]} than {classes[smallest]}",
        evidence=(f"training images per class: {classes[largest]} {int(counts[largest]):,} (most), "
                  f"{classes[smallest]} {int(counts[smallest]):,} (fewest), median {int(counts.median()):,}."
                  f"{scores}{how}"),
        next=next_steps,
        data={"ratio": ratio, "threshold": IMBALANCE_RATIO, "counts": dict(zip(classes, counts.tolist())),
              "accuracy": evaluation.get("accuracy"), "balanced_accuracy": evaluation.get("balanced_accuracy"),
              "compensated": compensated},
    )]
