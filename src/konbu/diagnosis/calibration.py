"""Diagnose check on the model's percentages: over- or under-confidence before temperature scaling,
and what label smoothing did to it.

    import konbu
    konbu.diagnose("runs/deep", checks=["calibration"])

    konbu diagnose runs/deep

It reads calibration.json, written when the run finished: the temperature T fitted on the validation
split (inspect/calibration.py) and the expected calibration error (ECE, the mean gap between how sure
the model says it is and how often it is right) before and after dividing the logits by T. T > 1:
the raw softmax was over-confident (its logits had to be shrunk); T < 1: under-confident. `konbu
predict` and `run.predict` divide by T already, so their percentages are the calibrated ones; this
check says what the raw network says, and what training change makes it right by itself.

    .venv/bin/python -m pytest -q tests/diagnosis/test_calibration.py
"""

import math
import shlex

from ..train.config import TrainConfig
from . import BETTER, NOTE, Finding, check
from .commands import train_command

# Miscalibration is material above an ECE of 3% ("90% sure" right 87% of the time), and above what
# chance alone shows on n validation images (`_noise`).
MATERIAL_ECE = 0.03
# ...and systematic: fitting T must lower the validation NLL by more than chance. 2 n (NLL(1) - NLL(T))
# is a likelihood ratio, chi-squared with one degree of freedom when T = 1 is right; 6.63 is its 99%
# point. (Runs at chance level show ECEs of 1-3% with T near 3 and a ratio of 2: no direction at all.)
LIKELIHOOD_RATIO = 6.63
# konbu trains with this smoothing by default; the under-confidence it causes is by design and
# predict's temperature takes it out (the healthy digits run: ECE 18% raw, 1.8% with T = 0.28).
DEFAULT_SMOOTHING = TrainConfig.label_smoothing
# The smoothing suggested to an over-confident run: konbu's default, or double the run's (up to 0.2,
# past which the raw softmax can no longer reach 80% on anything for 10 classes).
MAX_SMOOTHING = 0.2


def _noise(n: int) -> float:
    """An ECE that n images show by chance: a perfectly calibrated model with a trained classifier's
    confidences measures under 1/sqrt(n) in 95% of draws (simulated with 15 bins: 7.8% at n = 143, the
    digits' validation split; 3.0% at 1,000; 1.5% at 4,000)."""
    return 1 / math.sqrt(max(n, 1))


@check("calibration")
def calibration(ctx) -> list:
    stored = ctx.calibration
    keys = ("temperature", "ece_before", "ece_after", "n", "val_nll_before", "val_nll_after")
    if not all(isinstance(stored.get(key), (int, float)) for key in keys):
        return []
    temperature, before, after, n = (stored[key] for key in keys[:4])
    threshold = max(MATERIAL_ECE, _noise(n))
    ratio = 2 * n * (stored["val_nll_before"] - stored["val_nll_after"])
    if before <= threshold or ratio < LIKELIHOOD_RATIO:
        return []
    config = ctx.config
    smoothing = config.get("label_smoothing") or 0.0
    over = temperature > 1
    if not over and 0 < smoothing <= DEFAULT_SMOOTHING:
        return []
    data = {"temperature": temperature, "ece_before": before, "ece_after": after, "n": n, "threshold": threshold,
            "likelihood_ratio": ratio, "label_smoothing": smoothing}
    figure = "figures/calibration.png" if (ctx.path / "figures" / "calibration.png").is_file() else None
    show = f"konbu show calibration {shlex.quote(str(ctx.path))}"
    measured = (f"ECE {before:.1%} on the {n:,} validation images; dividing the logits by the fitted temperature "
                f"T = {temperature:.3g} brings it to {after:.1%}, and konbu predict applies T already.")
    if over:
        suggested = DEFAULT_SMOOTHING if smoothing < DEFAULT_SMOOTHING else min(2 * smoothing, MAX_SMOOTHING)
        did = ("It trained without label smoothing, which pulls the targets off 100% and keeps the logits calm."
               if not smoothing else f"Even with label smoothing {smoothing:g} the logits grew large (overfitting "
                                     f"makes a model sure of its training images).")
        # predict's percentages are right once T is applied; the raw network's are not, and a run whose
        # T leaves a material error behind has percentages to distrust even in predict
        severity = BETTER if after > threshold else NOTE
    else:
        suggested = DEFAULT_SMOOTHING if smoothing > DEFAULT_SMOOTHING else None
        did = (f"Label smoothing {smoothing:g} trains the model to give the true class only "
               f"{1 - smoothing + smoothing / max(len(ctx.run.classes), 2):.0%}, so its raw percentages run low."
               if smoothing else "Without label smoothing this is a run stopped early or trained under heavy "
                                 "regularisation (dropout, augmentation): its percentages have not caught up.")
        severity = NOTE
    changes = [train_command(config, label_smoothing=suggested)] if suggested not in (None, smoothing) else []
    side = "over" if over else "under"
    return [Finding(id=f"{side}confident", severity=severity,
                    title=f"the raw softmax is {side}-confident: T = {temperature:.2f} had to "
                          f"{'soften' if over else 'sharpen'} it",
                    evidence=f"{measured} {did}", next=changes + [show], data=data, figure=figure)]
