"""report.html in a real browser: the system's Chromium, headless, driven by Playwright.

    .venv/bin/python -m pytest tests/inspect/test_report_browser.py -q

The run directory is generated with konbu's own figure functions on synthetic data (a small conv
net's filters, kana class names, a stop reason), so every section is on the page. At laptop sizes
(1366x768 and 1920x1080) the page must show every section, never scroll sideways, decode every
image, make no network request, and screenshot to a non-blank PNG. Chromium comes from the system
(Debian package `chromium`); Playwright's own browser download is never used.
"""

import json
import shutil

import pytest
import torch
from PIL import Image, ImageStat

from konbu.inspect.calibration import calibration_summary, fit_temperature, plot_reliability
from konbu.inspect.figures import plot_confusion, plot_curves
from konbu.inspect.filters import plot_filters
from konbu.inspect.metrics import classification_metrics
from konbu.inspect.mistakes import find_mistakes, plot_mistakes
from konbu.inspect.report import write_report

SECTIONS = {"summary": "Summary", "stopped": "Why training stopped", "final-metrics": "Final metrics",
            "curves": "Training curves", "confusion": "Confusion matrix", "per-class": "Per-class metrics",
            "mistakes": "Mistakes", "filters": "Filters", "calibration": "Calibration",
            "model-summary": "Model summary", "epochs": "Per-epoch metrics", "config": "Config", "versions": "Versions"}
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
CLASSES = ["あ", "い", "う", "え", "お", "か", "き", "く", "け", "こ"]


def metric_records(epochs=4, steps=15):
    records, step = [], 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps):
            step += 1
            records.append({"kind": "batch", "epoch": epoch, "step": step, "loss": 2.3 / step ** 0.5,
                            "accuracy": min(0.98, 0.1 + 0.015 * step)})
        records.append({"kind": "epoch", "epoch": epoch, "step": step, "train_loss": 2.3 / step ** 0.5,
                        "train_accuracy": 0.5 + 0.1 * epoch, "val_loss": 2.0 / step ** 0.5,
                        "val_accuracy": 0.55 + 0.1 * epoch, "seconds": 2.5, "images_per_second": 1800.0})
    return records


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A run directory with every file the report reads, drawn by konbu's own figure functions."""
    run_dir = tmp_path_factory.mktemp("browser") / "hiragana-cnn"
    figures = run_dir / "figures"
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 10
    logits = torch.randn(300, 10, generator=generator) + 3 * torch.nn.functional.one_hot(labels, 10)
    logits = logits * 3                                                 # over-confident on purpose
    images = (torch.rand(300, 1, 28, 28, generator=generator) * 255).to(torch.uint8)
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(16 * 26 * 26, 10))

    records = metric_records()
    (run_dir / "figures").mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    plot_curves(records, figures / "curves.png")
    metrics = classification_metrics(logits, labels, CLASSES)
    plot_confusion(torch.tensor(metrics["confusion"]), CLASSES, figures / "confusion.png")
    plot_mistakes(images, find_mistakes(logits, labels, n=36), CLASSES, figures / "mistakes.png")
    plot_filters(conv, figures / "filters.png")
    temperature = fit_temperature(logits[:150], labels[:150])
    plot_reliability(logits[:150], labels[:150], temperature, figures / "calibration.png")
    (run_dir / "calibration.json").write_text(json.dumps(calibration_summary(logits[:150], labels[:150], temperature)))
    evaluation = {"dataset": "etl8g-hiragana", "split": "test", **metrics, "temperature": temperature}
    (run_dir / "evaluation.json").write_text(json.dumps(evaluation, ensure_ascii=False), encoding="utf-8")
    long_value = "/a/very/long/path/" + "without-any-break-" * 12 + "end"
    run = {
        "name": "hiragana-cnn", "model": "deep-mnist", "dataset": "etl8g-hiragana", "device": "cpu",
        "started": "2026-11-23T09:18:00+00:00", "finished": "2026-11-23T09:31:05+00:00", "seconds": 785.2,
        "status": "stopped", "stopped": {"reason": "loss diverged (nan)", "step": 15000, "epoch": 3},
        "data": {"train": 10000, "validation": 1000, "test": 300},
        "config": {"epochs": 20, "batch_size": 50, "lr": 1e-4, "data_dir": long_value,
                   "lr_schedule": [[0, 1e-3], [1000, 1e-4], [5000, 1e-5], [10000, 1e-6]]},
        "versions": {"konbu": "0.1.0", "torch": "2.x"},
        "final": {"train_loss": 0.3, "train_accuracy": 0.9, "val_loss": 0.35, "val_accuracy": 0.88,
                  "test_loss": metrics["loss"], "test_accuracy": metrics["accuracy"]},
        "best_epoch": 2,
        "summary": {"rows": [{"name": "conv2d", "type": "Conv2D", "output_shape": [None, 26, 26, 16], "params": 160,
                              "mult_adds": 97344},
                             {"name": "dense", "type": "Dense", "output_shape": [None, 10], "params": 108170,
                              "mult_adds": 108160}],
                    "total_params": 108330, "trainable_params": 108330, "non_trainable_params": 0},
    }
    (run_dir / "run.json").write_text(json.dumps(run, ensure_ascii=False), encoding="utf-8")
    return write_report(run_dir)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Chromium is not installed (Debian: apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("width, height", [(1366, 768), (1920, 1080)])
def test_report_on_a_laptop_screen(report, browser, tmp_path, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    url = report.resolve().as_uri()
    page.goto(url)
    page.wait_for_load_state("load")

    # every section, in order, present and visible once scrolled to
    assert page.eval_on_selector_all("section", "all => all.map(s => s.id)") == list(SECTIONS)
    for key, title in SECTIONS.items():
        section = page.locator(f"section#{key}")
        section.scroll_into_view_if_needed()
        assert section.is_visible(), key
        assert section.locator("h2").inner_text() == title
        box = section.bounding_box()
        assert box["width"] > 0.5 * min(width, 1100) and box["height"] > 30, (key, box)
    page.evaluate("window.scrollTo(0, 0)")

    # no sideways scrolling: long config values wrap, wide tables scroll inside their box
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width
    # every image decoded and inside the page width
    images = page.eval_on_selector_all(
        "img", "all => all.map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().right])")
    assert len(images) == 5
    for complete, natural_width, right in images:
        assert complete and natural_width > 0 and right <= inner_width
    # nothing fetched but the page itself (images are data: URIs, CSS is inline)
    assert requests == [url]
    # kana class names reach the page as text
    assert "あ" in page.locator("section#per-class").inner_text()

    shot = tmp_path / f"report-{width}.png"
    page.screenshot(path=str(shot))
    with Image.open(shot) as image:
        assert image.size == (width, height)
        grey = image.convert("L")
        low, high = grey.getextrema()
        assert high - low > 100 and ImageStat.Stat(grey).stddev[0] > 10   # text on a page, not a blank one
    page.close()
