"""konbu.inspect.report: report.html from a generated run directory."""

import json
import re

import pytest

from konbu.errors import RunDirectoryError
from konbu.inspect.figures import plot_curves
from konbu.inspect.report import write_report

# The sections a run directory written by `konbu train` alone gives (run.json, metrics.jsonl, curves.png)
SECTIONS = ["Summary", "Final metrics", "Training curves", "Model summary", "Per-epoch metrics", "Config", "Versions"]
# Every section, in order, for a run with every file konbu.reporting.build_report writes
ALL_SECTIONS = ["Summary", "Why training stopped", "Final metrics", "Training curves", "Confusion matrix",
                "Per-class metrics", "Mistakes", "Filters", "Calibration", "Model summary", "Per-epoch metrics",
                "Config", "Versions", "Other figures"]

SUMMARY = {
    "rows": [
        {"name": "conv2d", "type": "Conv2D", "output_shape": [None, 26, 26, 32], "params": 320, "mult_adds": 194688},
        {"name": "max_pooling2d", "type": "MaxPooling2D", "output_shape": [None, 13, 13, 32], "params": 0,
         "mult_adds": 0},
        {"name": "flatten", "type": "Flatten", "output_shape": [None, 5408], "params": 0, "mult_adds": 0},
        {"name": "dense", "type": "Dense", "output_shape": [None, 17], "params": 91953, "mult_adds": 91936},
        {"name": "dense_1", "type": "Dense", "output_shape": [None, 59], "params": 1049, "mult_adds": 1003},
    ],
    "total_params": 93322,
    "trainable_params": 93322,
    "non_trainable_params": 0,
    "total_mult_adds": 287627,
    "param_bytes": 373288,
}


def records(epochs=3, steps_per_epoch=10):
    out, step = [], 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
            step += 1
            out.append({"kind": "batch", "epoch": epoch, "step": step, "loss": 1.0 / step, "accuracy": 0.5,
                        "lr": 0.001})
        out.append({"kind": "epoch", "epoch": epoch, "step": step, "train_loss": 0.4, "train_accuracy": 0.88,
                    "val_loss": 0.2, "val_accuracy": 0.9412, "seconds": 1.3, "images_per_second": 2900.0})
    return out


def make_run(tmp_path, name="mnist-cnn", **overrides):
    run_dir = tmp_path / "runs" / "mnist-cnn"
    (run_dir / "figures").mkdir(parents=True)
    run = {
        "name": name,
        "model": "mnist-cnn",
        "dataset": "mnist-sample",
        "config": {"epochs": 3, "batch_size": 128, "lr": 0.001, "optimizer": {"name": "adam", "betas": [0.9, 0.999]},
                   "source": "https://example.org/data"},
        "versions": {"konbu": "0.1.0", "torch": "2.14.1"},
        "device": "cpu",
        "started": "2025-11-23T09:18:00+00:00",
        "finished": "2025-11-23T09:19:05+00:00",
        "final": {"train_loss": 0.4, "train_accuracy": 0.88, "val_loss": 0.2, "val_accuracy": 0.9412,
                  "test_loss": 0.21, "test_accuracy": 0.9375},
        "best_epoch": 2,
        "seconds": 65.2,
        "summary": SUMMARY,
    }
    run.update(overrides)
    (run_dir / "run.json").write_text(json.dumps(run))
    lines = [json.dumps(r) for r in records()]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + '\n{"kind": "epo')   # torn last line
    plot_curves(records(), run_dir / "figures" / "curves.png")
    return run_dir


def test_report_sections_and_content(tmp_path):
    run_dir = make_run(tmp_path)
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    page = path.read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>")
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == SECTIONS                      # all present, in order
    assert "<h1>mnist-cnn</h1>" in page and "mnist-sample" in page and "2025-11-23 09:18" in page

    assert page.count("data:image/png;base64,") == 1
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", page, re.IGNORECASE)
    assert "<link" not in page and "<script" not in page

    # Keras-style model summary.
    for text in ["conv2d (Conv2D)", "(None, 26, 26, 32)", "(None, 5408)", "91,953", "194,688",
                 "Total params: 93,322", "Trainable params: 93,322", "Non-trainable params: 0",
                 "364.54 KB", "Total mult-adds: 287,627"]:
        assert text in page, text
    # Final metrics and per-epoch table (three full epochs; the torn line is skipped).
    assert "94.12%" in page and "93.75%" in page and "0.2100" in page
    assert page.count('<tr class="best">') == 1
    assert "2,900" in page
    # Config, flattened; versions.
    assert "optimizer.name" in page and "batch_size" in page and "2.14.1" in page


def make_full_run(tmp_path):
    """A run with every file konbu.reporting.build_report writes, plus run.json["stopped"]."""
    run_dir = make_run(tmp_path, stopped={"reason": "validation loss diverged (nan)", "step": 1234, "epoch": 3})
    figures = run_dir / "figures"
    png = (figures / "curves.png").read_bytes()
    for name in ("confusion", "mistakes", "filters", "calibration", "gradcam"):
        (figures / f"{name}.png").write_bytes(png)
    classes = ["あ", "い", "う"]
    evaluation = {
        "dataset": "hiragana", "split": "test", "n": 30, "loss": 0.5, "accuracy": 0.7, "balanced_accuracy": 0.7,
        "per_class": [{"label": c, "precision": p, "recall": r, "f1": f, "support": 10}
                      for c, p, r, f in zip(classes, (0.9, 0.6, 0.62), (0.8, 0.7, 0.6), (0.847, 0.646, 0.61))],
        "confusion": [[8, 2, 0], [1, 7, 2], [0, 4, 6]],
        "temperature": 1.7, "calibrated_loss": 0.42, "ece": 0.123, "calibrated_ece": 0.021,
    }
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation, ensure_ascii=False), encoding="utf-8")
    calibration = {"temperature": 1.7, "val_nll_before": 0.61, "val_nll_after": 0.43, "ece_before": 0.151,
                   "ece_after": 0.018, "bins": 15, "n": 400}
    (run_dir / "calibration.json").write_text(json.dumps(calibration))
    return run_dir


def test_report_holds_every_section(tmp_path):
    page = write_report(make_full_run(tmp_path)).read_text(encoding="utf-8")
    assert re.findall(r"<h2>(.*?)</h2>", page) == ALL_SECTIONS
    # Every section has an id the contents links to.
    ids = re.findall(r'<section id="([^"]+)">', page)
    assert len(ids) == len(ALL_SECTIONS) and re.findall(r'<a href="#([^"]+)">', page) == ids
    assert page.count("data:image/png;base64,") == 6
    # Stop reason, in the summary and its own call-out.
    assert page.count("validation loss diverged (nan) (at epoch 3, step 1234)") == 2
    # Per-class table: kana labels as text, the three worst F1 rows marked.
    per_class = page.split('id="per-class"')[1].split("</section>")[0]
    for text in ("あ", "0.900", "0.847", "balanced accuracy 70.00%", "30 images"):
        assert text in per_class, text
    # Most-confused pairs: う taken for い 4 times (40% of う), first.
    confusion = page.split('id="confusion"')[1].split("</section>")[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td class=\"num\">(.*?)</td>", confusion)
    assert rows[0] == ("う", "い", "4") and ("い", "う", "2") in rows and len(rows) == 4
    # Calibration: temperature, NLL and ECE before and after, on validation and test.
    calibration = page.split('id="calibration"')[1].split("</section>")[0]
    for text in ("T = 1.7", "over-confident", "0.6100", "0.4300", "15.10%", "1.80%", "12.30%", "2.10%"):
        assert text in calibration, text
    summary = page.split('id="summary"')[1].split("</section>")[0]
    assert "1.7 (calibrated)" in summary and "70.00%" in summary


def test_report_names_class_weights_for_a_dense_model(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "figures" / "class_weights.png").write_bytes((run_dir / "figures" / "curves.png").read_bytes())
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "<h2>Class weights</h2>" in page and "Other figures" not in page


def test_report_ignores_a_damaged_evaluation_json(tmp_path):
    run_dir = make_full_run(tmp_path)
    (run_dir / "evaluation.json").write_text("{torn")
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "Per-class metrics" not in page and "<h2>Confusion matrix</h2>" in page


def test_report_escapes_run_text(tmp_path):
    run_dir = make_run(tmp_path, name='<script>alert("x")</script>', config={"note": "a & b <b>"})
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "a &amp; b &lt;b&gt;" in page


def test_report_with_only_run_json(tmp_path):
    run_dir = tmp_path / "bare"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"name": "bare"}))
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "<h1>bare</h1>" in page
    assert re.findall(r"<h2>(.*?)</h2>", page) == []
    assert "data:image" not in page


def test_report_figure_order_and_captions(tmp_path):
    run_dir = make_run(tmp_path)
    figures = run_dir / "figures"
    curves = (figures / "curves.png").read_bytes()
    for name in ["zz_filters.png", "confusion.png", "feature-maps.png"]:
        (figures / name).write_bytes(curves)
    page = write_report(run_dir).read_text(encoding="utf-8")
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert captions[0].startswith("Training curves") and captions[1].startswith("Confusion matrix")
    assert captions[2:] == ["Feature maps", "Zz filters"]
    assert re.findall(r"<h2>(.*?)</h2>", page)[-1] == "Other figures"


def test_missing_run_json_raises(tmp_path):
    with pytest.raises(RunDirectoryError, match="run.json"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_corrupt_run_json_raises(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunDirectoryError, match="run.json"):
        write_report(tmp_path)


def test_inspect_imports_point_one_way():
    # train/cli/predict import inspect, never the reverse; inspect reads run directories through
    # konbu.runs, which sits below it (see DESIGN.md) and never imports inspect.
    import ast
    from pathlib import Path

    import konbu.inspect

    forbidden = {"konbu.train", "konbu.cli", "konbu.predict", "konbu.serve"}
    for source in Path(konbu.inspect.__file__).parent.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                # Resolve relative imports: level 1 is konbu.inspect, level 2 is konbu.
                base = ["", "konbu.inspect", "konbu"][node.level] if node.level <= 2 else "?"
                module = ".".join(part for part in (base, node.module) if part)
                imported |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        clashes = {name for name in imported for bad in forbidden if name == bad or name.startswith(bad + ".")}
        assert not clashes, f"{source.name} imports {clashes}"
    runs_source = Path(konbu.inspect.__file__).parent.parent / "runs.py"
    assert "inspect" not in {node.module for node in ast.walk(ast.parse(runs_source.read_text()))
                             if isinstance(node, ast.ImportFrom)}
