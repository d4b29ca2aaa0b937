"""Inspecting a trained classifier: metrics, figures and the run's report.html.

    from konbu.inspect import classification_metrics, plot_curves, plot_confusion, write_report
    metrics = classification_metrics(logits, targets, classes)      # JSON-ready dict
    plot_curves(records, run_dir / "figures" / "curves.png")          # records: metrics.jsonl lines
    plot_confusion(metrics["confusion"], classes, run_dir / "figures" / "confusion.png")
    write_report(run_dir)                                             # run_dir / "report.html"
    temperature = fit_temperature(val_logits, val_labels)            # calibrated softmax: logits / T

Metrics are pure functions of tensors; figures are matplotlib (Agg) PNGs; the report is one
self-contained HTML page. This package reads a run directory but never imports the training loop,
the run loader or the CLI: those import it.
"""

from .figures import plot_confusion, plot_curves, plot_input_check
from .metrics import (
    accuracy,
    balanced_accuracy,
    classification_metrics,
    confusion_matrix,
    normalized_confusion,
    per_class_report,
    top_k_accuracy,
)
from .calibration import expected_calibration_error, fit_temperature, plot_reliability, reliability
from .compare import compare_table, plot_curves_overlay
from .confusion import most_confused_pairs
from .features import feature_maps, plot_activations
from .filters import class_weight_images, filter_weights, plot_class_weights, plot_filters
from .gradcam import gradcam, plot_gradcam
from .mistakes import find_mistakes, plot_mistakes
from .report import render_report, write_report

__all__ = [
    "expected_calibration_error",
    "fit_temperature",
    "plot_reliability",
    "reliability",
    "class_weight_images",
    "compare_table",
    "feature_maps",
    "filter_weights",
    "find_mistakes",
    "gradcam",
    "most_confused_pairs",
    "plot_activations",
    "plot_class_weights",
    "plot_curves_overlay",
    "plot_filters",
    "plot_gradcam",
    "plot_mistakes",
    "accuracy",
    "balanced_accuracy",
    "classification_metrics",
    "confusion_matrix",
    "normalized_confusion",
    "per_class_report",
    "plot_confusion",
    "plot_curves",
    "plot_input_check",
    "render_report",
    "top_k_accuracy",
    "write_report",
]
