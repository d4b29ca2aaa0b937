"""The web app in a real browser: `konbu serve` on a free port, the system's Chromium, headless,
driven by Playwright at a laptop's 1366x768.

    .venv/bin/python -m pytest tests/serve/test_browser.py -q
    KONBU_SCREENSHOTS=shots .venv/bin/python -m pytest tests/serve/test_browser.py -q   # keep the screenshots

Every test also checks what any page must do: request nothing but the server itself (no CDN: it
works offline), decode every <img> it shows, log no console error and throw no page error, and
never scroll sideways. Chromium comes from the system (Debian package `chromium`); Playwright's own
browser download is never used.
"""

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image, ImageDraw
from playwright import sync_api as playwright_api   # the test extra installs it: a missing one must fail, not skip

expect = playwright_api.expect

KANA = ("あ", "い", "う", "え", "お", "か", "き", "く", "け", "こ")   # the kana run's classes (conftest.py)
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
VIEWPORT = {"width": 1366, "height": 768}
ANSWER = 15_000        # ms: a prediction on a 2-core CPU answers in well under a second; slack for a busy machine
TRAINING = 90_000      # ms: the train test's job (3 short epochs of mnist-sample) with its process start: ~10-30 s

# Chromium logs every 4xx answer to fetch() as a console error; tests that ask for one on purpose allow it
FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    assert executable, "Chromium is not installed (Debian: apt-get install chromium)"
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shot_folders(tmp_path_factory):
    """Where screenshots go: a temporary folder, and $KONBU_SCREENSHOTS when set (for a person to look at)."""
    folders = [tmp_path_factory.mktemp("screenshots")]
    if os.environ.get("KONBU_SCREENSHOTS"):
        folders.append(Path(os.environ["KONBU_SCREENSHOTS"]))
        folders[-1].mkdir(parents=True, exist_ok=True)
    return folders


class Visit:
    """One browser tab on the server, recording what every page must not do."""

    def __init__(self, page, base, folders):
        self.page, self.base, self.folders = page, base, folders
        self.requests, self.console_errors, self.page_errors = [], [], []
        self.allowed_errors = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def goto(self, route: str):
        self.page.goto(f"{self.base}/{route}")
        self.page.wait_for_selector("main .page")

    def allow_failed_loads(self):
        self.allowed_errors.append(FAILED_LOAD)

    def check_images(self):
        """Every <img> on the page has loaded and decoded (data: URLs included)."""
        self.page.wait_for_function("[...document.images].every(i => i.complete)", timeout=ANSWER)
        images = self.page.eval_on_selector_all("img", "all => all.map(i => [i.src.slice(0, 80), i.naturalWidth])")
        broken = [src for src, width in images if width == 0]
        assert not broken, f"images that did not decode: {broken}"
        return len(images)

    def shot(self, name: str):
        """Checks the page as it stands (images decoded, no sideways scrolling), then screenshots it."""
        self.check_images()
        text = self.page.locator("main").inner_text()
        assert not re.search(r"\bundefined\b|\[object |\bNaN\b|^null$", text, re.M), f"{name}: a value went missing"
        scroll_width, inner_width = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll_width <= inner_width, f"{name}: the page scrolls sideways ({scroll_width} > {inner_width})"
        for folder in self.folders:
            self.page.screenshot(path=str(folder / f"{name}.png"))

    def check(self):
        """Nothing requested outside the server, no console error, no uncaught exception."""
        outside = [url for url in self.requests
                   if urlparse(url).scheme not in ("data", "blob") and urlparse(url).hostname != "127.0.0.1"]
        assert not outside, f"requests outside the server: {outside}"
        errors = [text for text in self.console_errors if not any(p.search(text) for p in self.allowed_errors)]
        assert not errors, f"console errors: {errors}"
        assert not self.page_errors, f"page errors: {self.page_errors}"


@pytest.fixture
def visit(browser, server, shot_folders):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(ANSWER)
    visit = Visit(page, server, shot_folders)
    yield visit
    context.close()   # before the server stops: an open event stream would hold its shutdown


# ----------------------------------------------------------------------------- helpers

def stroke(page, points, pause_ms=0, while_down=None):
    """Draws through `points` (fractions of the canvas) with the mouse: down, moves, up."""
    box = page.locator("#pad").bounding_box()
    at = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for i, point in enumerate(at[1:], 1):
        page.mouse.move(*point, steps=2)
        if pause_ms:
            page.wait_for_timeout(pause_ms)
        if while_down is not None and i == len(at) // 2:
            while_down()
    page.mouse.up()


def vertical_line(n=12):
    return [(0.5 + 0.01 * i / n, 0.18 + 0.64 * i / n) for i in range(n + 1)]


def top_label(page) -> str:
    return page.locator("#answer .bars li.top .bar-label").inner_text()


def bar_labels(page) -> list:
    return page.locator("#answer .bars .bar-label").all_inner_texts()


# ----------------------------------------------------------------------------- Draw

def test_a_drawn_one_is_read_while_drawing(visit):
    page = visit.page
    visit.goto("#/draw?run=digits")
    expect(page.locator("#run-select")).to_have_value("digits")
    predict_posts = []
    page.on("request", lambda r: r.method == "POST" and "/predict" in r.url and predict_posts.append(r.post_data_json))

    def answered_mid_stroke():
        # the answer arrives while the button is still down: predictions follow the pen
        expect(page.locator("#answer .bars li.top")).to_be_visible(timeout=ANSWER)

    stroke(page, vertical_line(), pause_ms=60, while_down=answered_mid_stroke)
    expect(page.locator("#answer .bars li.top .bar-label")).to_have_text("1", timeout=ANSWER)
    page.wait_for_load_state("networkidle")
    assert top_label(page) == "1"
    assert len(bar_labels(page)) == 5
    percentages = page.locator("#answer .bar-value").all_inner_texts()
    assert all(text.endswith("%") for text in percentages), percentages
    assert float(percentages[0].rstrip("%")) > 50
    # the canvas went as a PNG data URL in JSON
    assert predict_posts and predict_posts[-1]["image"].startswith("data:image/png;base64,")
    # the model's input, enlarged without smoothing, and training images of the predicted class
    model_input = page.locator("#model-input img")
    expect(model_input).to_have_count(1)
    assert model_input.evaluate("i => i.naturalWidth") == 28
    assert model_input.evaluate("i => getComputedStyle(i).imageRendering") in ("pixelated", "crisp-edges")
    # measured in the page, retried: an answer still in flight may replace the image meanwhile
    page.wait_for_function("() => document.querySelector('#model-input img')?.getBoundingClientRect().width >= 112",
                           timeout=ANSWER)
    expect(page.locator("#examples img")).to_have_count(8)
    visit.shot("draw-one")

    # Clear empties the answer; a blank drawing is never sent
    page.click("#clear")
    expect(page.locator("#answer .bars")).to_have_count(0)
    expect(page.locator("#model-input img")).to_have_count(0)
    visit.check()


def test_drawing_with_a_finger(browser, server, shot_folders):
    """Touch: real touch events (through the DevTools protocol, as a touchscreen sends them) draw too."""
    context = browser.new_context(viewport=VIEWPORT, has_touch=True)
    try:
        page = context.new_page()
        visit = Visit(page, server, shot_folders)
        visit.goto("#/draw?run=digits")
        expect(page.locator("#run-select")).to_have_value("digits")
        kinds = []
        page.expose_function("notePointer", lambda kind: kinds.append(kind))
        page.evaluate("document.querySelector('#pad').addEventListener('pointermove', e => notePointer(e.pointerType))")
        box = page.locator("#pad").bounding_box()
        touch = context.new_cdp_session(page)
        points = [{"x": box["x"] + x * box["width"], "y": box["y"] + y * box["height"]} for x, y in vertical_line()]
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [points[0]]})
        for point in points[1:]:
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        expect(page.locator("#answer .bars li.top .bar-label")).to_have_text("1", timeout=ANSWER)
        assert "touch" in kinds
        assert page.evaluate("window.scrollY") == 0   # the finger drew; it did not scroll the page
        visit.check()
    finally:
        context.close()


def test_a_dot_is_refused_with_the_reason(visit):
    """A digit run answers "no digit found" for a picture without a digit: the page shows why."""
    page = visit.page
    visit.goto("#/draw?run=digits")
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + 3, box["y"] + 3)   # a tap in a corner: a dot, not a digit
    page.mouse.down()
    page.mouse.up()
    reason = page.locator("#answer .reason, #answer .bars")
    expect(reason.first).to_be_visible(timeout=ANSWER)
    if page.locator("#answer .reason").count():
        assert "digit" in page.locator("#answer .reason").inner_text()
    visit.check()


def test_uploading_an_image(visit, tmp_path):
    image = Image.new("L", (200, 200), 0)
    ImageDraw.Draw(image).rectangle([88, 30, 112, 170], fill=255)   # a thick white vertical bar on black
    path = tmp_path / "bar.png"
    image.save(path)

    page = visit.page
    visit.goto("#/draw?run=digits")
    uploads = []
    page.on("request", lambda r: "/predict" in r.url and uploads.append(r.headers.get("content-type", "")))
    page.set_input_files("#upload", str(path))
    expect(page.locator("#answer .bars li.top")).to_be_visible(timeout=ANSWER)
    assert uploads and uploads[-1].startswith("multipart/form-data")
    assert top_label(page) == "1"
    expect(page.locator("#model-input img")).to_have_count(1)
    assert "bar.png" in page.locator(".upload-note").inner_text()
    visit.shot("draw-upload")
    visit.check()


def test_look_inside_and_grad_cam(visit):
    page = visit.page
    visit.goto("#/draw?run=digits")
    stroke(page, vertical_line())
    expect(page.locator("#answer .bars li.top")).to_be_visible(timeout=ANSWER)
    page.click("#look-inside")

    # one layer at a time: the input first, then each layer in the model's order
    expect(page.locator("#inside article.layer")).to_have_count(1, timeout=ANSWER)
    expect(page.locator("#inside article.layer")).to_have_attribute("data-layer", "input")
    page.click("#next-layer")
    first = page.locator("#inside article.layer")
    expect(first).to_have_attribute("data-layer", "conv2d")
    assert "Conv2D" in first.inner_text() and "16 maps of 26×26" in first.inner_text()
    assert first.locator(".explain").inner_text()
    assert first.locator(".maps img").count() == 16
    page.click("#prev-layer")
    expect(page.locator("#inside article.layer")).to_have_attribute("data-layer", "input")

    # Grad-CAM beside it: the heat map over the input, with its layer and class
    cam = page.locator("#gradcam img")
    expect(cam).to_have_count(1)
    assert cam.evaluate("i => i.naturalWidth") == 224
    assert "conv2d_2" in page.locator("#gradcam").inner_text()
    visit.shot("draw-inside-step")

    # all layers stacked: every layer, maps for the conv layers, a strip of values for the dense ones
    page.click("#mode-all")
    layers = page.locator("#inside article.layer")
    names = [layers.nth(i).get_attribute("data-layer") for i in range(layers.count())]
    assert names[0] == "input" and names[-1] == "output"
    assert names[1:4] == ["conv2d", "conv2d_relu", "max_pooling2d"]
    assert "dense" in names and "flatten" in names
    assert page.locator("#inside .maps img").count() >= 8 * 16
    assert page.locator("#inside canvas.strip").count() >= 3
    assert page.locator("#inside article[data-layer='output'] .bars li").count() == 10

    # Grad-CAM for another class than the predicted one
    page.select_option("#cam-target", "7")
    expect(page.locator("#gradcam")).to_contain_text("towards 7", timeout=ANSWER)
    page.locator("#inside").scroll_into_view_if_needed()
    visit.shot("draw-inside-all")
    visit.check()


def test_kana_run_shows_glyphs(visit):
    page = visit.page
    visit.goto("#/draw?run=kana")
    expect(page.locator("#run-select")).to_have_value("kana")
    # the hint names the run's classes, as text
    expect(page.locator("#answer .known")).to_have_text(" ".join(KANA))
    stroke(page, [(0.3, 0.3), (0.7, 0.3), (0.5, 0.5), (0.3, 0.75), (0.7, 0.75)])
    expect(page.locator("#answer .bars li.top")).to_be_visible(timeout=ANSWER)
    labels = bar_labels(page)
    assert len(labels) == 5 and all(label in KANA for label in labels), labels
    expect(page.locator("#examples h3")).to_contain_text(labels[0])
    visit.shot("draw-kana")
    visit.check()


def test_a_run_still_before_its_first_epoch_says_so(visit, runs):
    """A "running" run without weights yet answers 409: the Draw page shows the server's message."""
    wip = runs / "wip"
    shutil.copytree(runs / "digits", wip)
    (wip / "weights.safetensors").unlink()
    info = json.loads((wip / "run.json").read_text())
    (wip / "run.json").write_text(json.dumps({**info, "name": "wip", "status": "running"}))

    page = visit.page
    visit.allow_failed_loads()
    visit.goto("#/draw?run=wip")
    expect(page.locator("#run-select")).to_have_value("wip")
    stroke(page, vertical_line())
    message = page.locator(".draw-grid .message.error")
    expect(message.first).to_contain_text("weights", timeout=ANSWER)
    expect(page.locator("#answer .bars")).to_have_count(0)
    visit.check()


# ----------------------------------------------------------------------------- Runs

def test_run_page(visit):
    page = visit.page
    visit.goto("#/runs")
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(2)
    assert {rows.nth(i).get_attribute("data-run") for i in range(2)} == {"digits", "kana"}
    assert re.search(r"\d+\.\d%", page.locator("tr[data-run='digits']").inner_text())   # its test accuracy
    visit.shot("runs")

    page.click("tr[data-run='digits'] a")
    expect(page).to_have_url(re.compile(r"#/runs/digits$"))
    # curves drawn by uPlot from the metrics
    expect(page.locator("#curves .uplot canvas")).to_have_count(2)
    expect(page.locator("#curves")).to_have_attribute("data-records", re.compile(r"^[1-9]\d*$"))
    assert page.locator("#curves .u-title").all_inner_texts() == ["Loss", "Accuracy"]

    # the confusion matrix: a cell opens its test images
    matrix = page.locator("table.confusion")
    expect(matrix).to_be_visible()
    assert matrix.locator("tbody tr").count() == 10
    wrong = matrix.locator("td.cell.wrong.filled").first
    count = int(wrong.get_attribute("data-count"))
    wrong.click()
    images = page.locator("#cell-images img")
    expect(images).to_have_count(min(count, 48), timeout=ANSWER)
    assert "predicted as" in page.locator("#cell-images h3").inner_text()
    right = matrix.locator("td.cell.right.filled").first
    right.click()
    expect(page.locator("#cell-images h3")).to_contain_text("read correctly", timeout=ANSWER)
    assert page.locator("#cell-images img").count() > 0
    page.locator("#confusion").scroll_into_view_if_needed()
    visit.shot("run-confusion")

    # mistakes, worst first, each with its true and predicted class
    mistakes = page.locator("#mistakes-images img")
    expect(mistakes.first).to_be_visible(timeout=ANSWER)
    assert mistakes.count() > 0
    assert "→" in page.locator("#mistakes-images figcaption").first.inner_text()
    # filters before and after, the model summary, the config, the report link
    expect(page.locator("#filters img")).to_have_count(2)
    summary = page.locator("#summary tbody tr")
    assert summary.count() >= 5 and "Conv2D" in summary.first.inner_text()
    assert "(None, 26, 26, 16)" in summary.first.inner_text()
    assert "tfjs-mnist" in page.locator("#config").inner_text()
    assert page.locator("#report-link").get_attribute("href") == "/runs/digits/report.html"
    page.locator("#mistakes").scroll_into_view_if_needed()
    visit.shot("run-mistakes")
    page.evaluate("window.scrollTo(0, 0)")
    visit.shot("run-top")
    visit.check()


def test_a_diverged_run_still_has_curves(visit, runs):
    """A run whose loss became NaN (the hiragana learner's divergence) logs bare NaN in metrics.jsonl,
    which is not JSON: the run page still draws every record, the NaN as a gap."""
    diverged = runs / "diverged"
    shutil.copytree(runs / "digits", diverged)
    lines = (diverged / "metrics.jsonl").read_text().splitlines()
    lines.append('{"kind": "batch", "epoch": 4, "step": 172, "loss": NaN, "accuracy": 0.1, "lr": 0.001}')
    (diverged / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    page = visit.page
    visit.allowed_errors.append(re.compile(r"Failed to load resource: the server responded with a status of 500"))
    visit.goto("#/runs/diverged")
    expect(page.locator("#curves")).to_have_attribute("data-records", str(len(lines)), timeout=ANSWER)
    expect(page.locator("#curves .uplot canvas")).to_have_count(2)
    visit.check()


def test_compare_two_runs(visit):
    page = visit.page
    visit.goto("#/runs")
    expect(page.locator("#compare")).to_be_disabled()
    page.check("tr[data-run='digits'] input[type=checkbox]")
    page.check("tr[data-run='kana'] input[type=checkbox]")
    page.click("#compare")
    expect(page).to_have_url(re.compile(r"#/compare\?runs=(digits,kana|kana,digits)$"))
    table = page.locator("#compare-table table")
    expect(table).to_be_visible()
    text = table.inner_text()
    assert "digits" in text and "kana" in text and "test acc" in text
    expect(page.locator("#compare-curves .uplot canvas")).to_have_count(2)
    visit.shot("compare")
    visit.check()


# ----------------------------------------------------------------------------- Train

def records(page) -> int:
    return int(page.locator("#train-records").inner_text() or 0)


def test_train_watch_stop_resume(visit):
    page = visit.page
    visit.goto("#/train")
    # datasets say whether they work offline
    expect(page.locator("#dataset option[value='mnist-sample']")).to_contain_text("offline")
    page.select_option("#dataset", "mnist-sample")
    page.select_option("#model", "tfjs-mnist")
    # 3 epochs of small batches: ~5-10 s of training after the process starts, so Stop lands mid-training
    # (one epoch of mnist-sample trains in ~1 s here: a stop would come after its last step)
    page.fill("#epochs", "3")
    page.fill("#batch_size", "16")
    page.fill("#run-name", "web-run")
    starts = []
    page.on("request", lambda r: r.url.endswith("/api/train") and r.method == "POST" and starts.append(r.post_data_json))
    page.click("#start")
    expect(page.locator("#job h2")).to_contain_text("web-run")
    assert starts[0] == {"dataset": "mnist-sample", "model": "tfjs-mnist", "epochs": 3, "batch_size": 16, "name": "web-run"}

    # the live chart receives per-batch records while it trains
    page.wait_for_function("Number(document.querySelector('#train-records').textContent) > 0", timeout=TRAINING)
    expect(page.locator("#train-curves .uplot canvas")).to_have_count(2)
    expect(page.locator("#train-progress")).to_contain_text("images/s", timeout=ANSWER)
    visit.shot("train-live")

    # Stop: a clean checkpoint, the run interrupted, and a Resume button
    page.click("#stop")
    expect(page.locator("#job-status")).to_have_text("interrupted", timeout=TRAINING)
    expect(page.locator("#resume")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()
    seen = records(page)
    visit.shot("train-stopped")

    # Resume: the curves go on from the checkpoint
    page.click("#resume")
    expect(page.locator("#job-status")).to_have_text(re.compile("running|finished"), timeout=ANSWER)
    page.wait_for_function(f"Number(document.querySelector('#train-records').textContent) > {seen}",
                           timeout=TRAINING)

    # its run page follows it live (or shows it finished, if it was quick), then its evaluation
    page.click("#job .links a >> text=the run's page")
    expect(page.locator("h1")).to_contain_text("web-run")
    expect(page.locator("#curves .uplot canvas")).to_have_count(2)
    expect(page.locator("table.confusion")).to_be_visible(timeout=TRAINING)
    expect(page.locator("h1 .badge.live")).to_have_count(0, timeout=TRAINING)   # its process is done
    expect(page.locator("h1 .badge")).to_have_text("finished")
    expect(page.locator("#report-link")).to_be_visible()
    assert int(page.locator("#curves").get_attribute("data-records")) > seen
    visit.shot("train-run-page")

    # back on the Train page, the job is shown again, finished, with its curves
    page.click("nav a[data-section=train]")
    expect(page.locator("#job-status")).to_have_text("finished")
    page.wait_for_function(f"Number(document.querySelector('#train-records').textContent) > {seen}")
    expect(page.locator("#train-progress")).to_contain_text("Finished")
    expect(page.locator("#job .links a")).to_have_count(2)
    visit.shot("train-finished")
    visit.check()


def test_train_errors_are_shown(visit):
    page = visit.page
    visit.allow_failed_loads()
    visit.goto("#/train")
    page.select_option("#dataset", "mnist-sample")
    page.fill("#run-name", "digits")   # taken
    page.click("#start")
    expect(page.locator("#train-errors .message.error")).to_contain_text("exists already")
    page.fill("#run-name", "")
    page.fill("#lr", "1e9")   # over the largest learning rate konbu accepts
    page.click("#start")
    expect(page.locator("#train-errors .message.error")).to_contain_text("--lr")
    expect(page.locator("#train-errors .message.error")).to_have_count(1)   # the old message went
    visit.shot("train-error")
    visit.check()


def test_a_failed_job_shows_its_error(visit):
    """A job whose process fails (here: a model spec file that isn't there, which only the training
    process finds out) ends "failed", and its error is on the page."""
    page = visit.page
    visit.goto("#/train")
    expect(page.locator("#dataset option[value='mnist-sample']")).to_have_count(1)
    # the form offers zoo models only; a layer-spec path is what the API also takes
    page.evaluate("document.querySelector('#model').append(new Option('missing', '/nonexistent/model.yaml'))")
    page.select_option("#dataset", "mnist-sample")
    page.select_option("#model", "/nonexistent/model.yaml")
    page.click("#start")
    expect(page.locator("#job-status")).to_have_text("failed", timeout=TRAINING)
    expect(page.locator("#job-errors .message.error")).to_contain_text("model.yaml not found")
    expect(page.locator("#stop")).to_be_hidden()
    expect(page.locator("#resume")).to_be_hidden()
    visit.shot("train-failed")
    visit.check()
