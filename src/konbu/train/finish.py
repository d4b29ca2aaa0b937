"""The end of `fit()`: why a run stopped early, and finishing it — evaluate the kept weights on the
untouched test split, calibrate the percentages on the validation split, write run.json's final
numbers, then every figure and the report.

    run = finish_run(run_dir, info, test, val, history.epochs, weights_epoch, device, seconds=12.3)
"""

from ..inspect import classification_metrics
from ..reporting import build_report, fit_calibration
from ..runs import Run, mark_finished


def early_stopping(monitor, config, record: dict) -> dict:
    """run.json's "stopped" when --patience epochs passed without improvement."""
    return {"reason": "early_stopping", "step": record["step"], "epoch": record["epoch"], "monitor": monitor.name,
            "best": monitor.best, "best_epoch": monitor.best_epoch,
            "message": f"early stopping: {monitor.name} has not improved by more than {config.min_delta:g} for "
                       f"{config.patience} epochs (best {monitor.best:.4f} at epoch {monitor.best_epoch})"}


def diverged_advice(stop: dict, best_epoch: int) -> dict:
    """What a diverged run's "stopped" adds: a tenth of the rate to try, and the message."""
    lr = stop["lr"]
    return {"suggested_lr": float(f"{lr / 10:.1g}"),
            "message": f"training diverged at step {stop['step']}: {stop['detail']}. The best weights (epoch "
                       f"{best_epoch or 'none: the initial weights'}) are kept. The learning rate was {lr:.3g}: try "
                       f"--lr {lr / 10:.1g}, a warm-up (--warmup), --clip-grad 1, or `konbu lr-find` to pick one"}


def final_metrics(test_metrics: dict, epochs: list, weights_epoch: int, headline_metric: str) -> dict:
    """run.json's "final": the last epoch's training numbers, the kept epoch's validation numbers and
    the test split's."""
    final = {"test_loss": test_metrics["loss"], "test_accuracy": test_metrics["accuracy"], "test_n": test_metrics["n"]}
    if epochs:
        final = {"train_loss": epochs[-1]["train_loss"], "train_accuracy": epochs[-1]["train_accuracy"], **final}
    chosen = [r for r in epochs if r["epoch"] == weights_epoch and "val_loss" in r]
    if chosen:
        final.update(val_loss=chosen[0]["val_loss"], val_accuracy=chosen[0]["val_accuracy"])
    if "top5_accuracy" in test_metrics:
        final["test_top5_accuracy"] = test_metrics["top5_accuracy"]
    if headline_metric != "accuracy":   # k49: imbalanced, judged by balanced accuracy
        final[f"test_{headline_metric}"] = test_metrics[headline_metric]
    return final


def finish_run(run_dir, info: dict, test, val, epochs: list, weights_epoch: int, device, **fields) -> Run:
    """Evaluate, calibrate, mark the run finished (with `fields`: best epoch, seconds, ...) and write
    its figures and report. The run is loaded on the training device, so a GPU run is evaluated there."""
    run = Run.load(run_dir, device=device)
    test_logits = run.logits(test.images, tta=run.tta)
    test_metrics = classification_metrics(test_logits, test.labels, list(test.classes))
    final = final_metrics(test_metrics, epochs, weights_epoch, test.info.headline_metric)
    if run.tta != "none":   # the headline is the augmented one (as airbench reports); one plain pass beside it
        plain = run.logits(test.images).argmax(1) == test.labels
        final.update(tta=run.tta, test_accuracy_without_tta=plain.float().mean().item())
    fields.update(weights_epoch=weights_epoch, final=final)
    reliability = None
    if val is not None:   # the temperature now (run.json holds it); its figure is drawn with the others
        calibration, reliability = fit_calibration(run, val)
        fields["calibration"] = {key: calibration[key] for key in ("temperature", "ece_before", "ece_after")}
    run.info = mark_finished(run_dir, info, **fields)
    build_report(run, test, test_logits=test_logits, test_metrics=test_metrics, reliability=reliability)
    return run
