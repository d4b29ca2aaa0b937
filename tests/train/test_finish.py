"""konbu.train.finish: what run.json says when a run ends — its final numbers, and why it stopped early."""

from types import SimpleNamespace

from konbu.train.finish import diverged_advice, early_stopping, final_metrics

EPOCHS = [{"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.7, "val_loss": 0.5, "val_accuracy": 0.8},
          {"epoch": 2, "train_loss": 0.4, "train_accuracy": 0.9, "val_loss": 0.6, "val_accuracy": 0.75}]
TEST = {"loss": 0.55, "accuracy": 0.79, "n": 100, "top5_accuracy": 0.99, "balanced_accuracy": 0.7}


def test_final_metrics_take_the_last_epochs_training_and_the_kept_epochs_validation():
    final = final_metrics(TEST, EPOCHS, weights_epoch=1, headline_metric="accuracy")
    assert final == {"train_loss": 0.4, "train_accuracy": 0.9, "test_loss": 0.55, "test_accuracy": 0.79,
                     "test_n": 100, "val_loss": 0.5, "val_accuracy": 0.8, "test_top5_accuracy": 0.99}
    imbalanced = final_metrics(TEST, EPOCHS, weights_epoch=2, headline_metric="balanced_accuracy")
    assert imbalanced["test_balanced_accuracy"] == 0.7 and imbalanced["val_accuracy"] == 0.75
    assert "val_loss" not in final_metrics(TEST, [], weights_epoch=0, headline_metric="accuracy")


def test_why_a_run_stopped():
    monitor = SimpleNamespace(name="val_loss", best=0.5, best_epoch=1)
    config = SimpleNamespace(min_delta=0.01, patience=2)
    stop = early_stopping(monitor, config, {"epoch": 3, "step": 30})
    assert stop["reason"] == "early_stopping" and stop["epoch"] == 3 and stop["best_epoch"] == 1
    assert "for 2 epochs" in stop["message"] and "0.5000 at epoch 1" in stop["message"]
    advice = diverged_advice({"lr": 0.5, "step": 12, "detail": "loss is nan"}, best_epoch=0)
    assert advice["suggested_lr"] == 0.05 and "--lr 0.05" in advice["message"]
    assert "none: the initial weights" in advice["message"]
