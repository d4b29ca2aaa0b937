"""The ONNX bundle's web page (konbu.bundle_web) in a real browser, used the way its README says: a
briefly trained digit model exported with konbu.export, the bundle folder served by http.server on
127.0.0.1, /web/ opened in the system's Chromium (headless, driven by Playwright).

    .venv/bin/python -m pytest tests/test_bundle_web.py -q

The page must hand the model the very bytes `konbu predict` does (pixels.js is pixels.py in
JavaScript), for PNG and JPEG files, a photo-like digit and a drawing alike, and for a colour model
pictures it must resize; answer with konbu's top-1 and konbu's probabilities; say "no digit found"
for a blank page; answer a drawing made with the mouse; and, in every test, request nothing but the
server (no CDN: the runtime is vendored) and log no console error. Chromium comes from the system (Debian package `chromium`); Playwright's
own browser download is never used.
"""

import base64
import contextlib
import functools
import http.server
import io
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from playwright import sync_api as playwright_api   # the test extra installs it: a missing one must fail, not skip

import konbu
from konbu.bundle_web import write_web_page
from konbu.data import load_dataset
from konbu.export import export
from konbu.models import build_model, get_model_entry
from konbu.predict import answer_images, predict_files
from konbu.runs import Run, create_run

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
ANSWER = 15_000   # ms: the page loads in ~1 s and answers in ~10 ms on a 2-core CPU; slack for a busy machine
# Largest |p_page - p_konbu| allowed. The page feeds the model the very bytes konbu does (asserted
# exactly), so what is left is ONNX Runtime Web's float32 arithmetic against PyTorch's, the same sums
# in another order: measured 6e-7 at most (1e-7 typical) over these images. 1e-5 leaves room for
# another CPU's PyTorch kernels; a wrong normalisation, layout or centring differs by 1e-2 and more.
TOLERANCE = 1e-5
RUNTIME = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm", "LICENSE", "README.md")
PAGE = ("index.html", "app.js", "pixels.js", "style.css")
# the npm registry's dist.integrity of onnxruntime-web-1.30.0.tgz, which the vendored files came from
INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """tfjs-mnist trained briefly (~90% on the sample's test split, ~10 s) and calibrated by fit."""
    out = tmp_path_factory.mktemp("runs") / "tfjs"
    return konbu.fit(model="tfjs-mnist", dataset="mnist-sample", steps=150, threads=2, out=str(out), quiet=True)


@pytest.fixture(scope="module")
def bundle(run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "bundle"
    result = export(run, folder)
    assert result["page"] == "web/index.html"
    return folder


def photo_like(digit: np.ndarray, seed: int) -> Image.Image:
    """An MNIST digit as a user photographs it: dark ink on light, unevenly lit paper, 4x larger,
    off-centre, blurred and noisy (so the paper plane, the polarity and the centring all work)."""
    rng = np.random.default_rng(seed)
    ink = np.asarray(Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BICUBIC), dtype=np.float64)
    paper = np.linspace(205, 235, 240)[None, :].repeat(180, 0) + rng.normal(0, 3, (180, 240))
    top, left = int(rng.integers(5, 63)), int(rng.integers(5, 123))
    paper[top:top + 112, left:left + 112] *= ink / 255
    return Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """16 real MNIST test digits as PNG, one as an RGB JPEG, 3 photo-like digits (PNG and JPEG), a blank page."""
    folder = tmp_path_factory.mktemp("images")
    test = load_dataset("mnist-sample", "test")
    paths = []
    for index in range(0, 1000, 63):
        paths.append(folder / f"digit{index}.png")
        Image.fromarray(test.images[index, 0].numpy()).save(paths[-1])
    paths.append(folder / "digit500-rgb.jpg")
    Image.fromarray(test.images[500, 0].numpy()).convert("RGB").resize((84, 84)).save(paths[-1], quality=90)
    for index, extension in ((3, "png"), (7, "jpg"), (11, "png")):
        paths.append(folder / f"photo{index}.{extension}")
        photo_like(test.images[index, 0].numpy(), index).save(paths[-1], quality=92)
    paths.append(folder / "blank.png")
    Image.fromarray(np.full((60, 60), 215, np.uint8)).save(paths[-1])
    return paths


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):   # keep pytest's output clean
        pass


@contextlib.contextmanager
def serving(folder: Path):
    """`python -m http.server --bind 127.0.0.1 -d FOLDER`, in a thread: the README's own command."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(bundle):
    with serving(bundle) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    assert executable, "Chromium is not installed (Debian: apt-get install chromium)"
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def open_page(browser, base):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(ANSWER)
    visit = Visit(page, base)
    visit.open()
    return context, visit


class Visit:
    """The page open in one tab, recording every request, console error and uncaught exception."""

    def __init__(self, page, base):
        self.page, self.base = page, base
        self.requests, self.console_errors, self.page_errors = [], [], []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def open(self):
        self.page.goto(f"{self.base}/web/")
        self.page.wait_for_function("document.documentElement.dataset.state !== 'loading'")
        assert self.page.evaluate("document.documentElement.dataset.state") == "ready", self.page.inner_text("#status")

    def check(self):
        """Nothing requested outside the server, no console error, no uncaught exception."""
        outside = [url for url in self.requests
                   if urlparse(url).scheme not in ("data", "blob") and urlparse(url).hostname != "127.0.0.1"]
        assert not outside, f"requests outside the server: {outside}"
        assert not self.console_errors, f"console errors: {self.console_errors}"
        assert not self.page_errors, f"page errors: {self.page_errors}"


@pytest.fixture(scope="module")
def visit(browser, server):
    context, visit = open_page(browser, server)
    yield visit
    context.close()


def data_url(path: Path) -> str:
    kind = "jpeg" if path.suffix == ".jpg" else "png"
    return f"data:image/{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def in_the_page(visit, source: str) -> dict:
    """The page's model input and probabilities for an image URL, or the message it refused it with."""
    return visit.page.evaluate("""async (source) => {
        try { return {input: await konbuPrepare(source), probabilities: await konbuPredict(source)}; }
        catch (error) { return {error: error.message}; }
    }""", source)


# ---------------------------------------------------------------------------------------------
# The bundle's files
# ---------------------------------------------------------------------------------------------

def test_the_onnx_bundle_holds_the_page_and_its_runtime(run, bundle, tmp_path):
    static = Path(konbu.__file__).parent / "static"
    for name in PAGE:
        assert (bundle / "web" / name).read_bytes() == (static / "bundle_web" / name).read_bytes(), name
    for name in RUNTIME:
        assert (bundle / "web" / "ort" / name).read_bytes() == (static / "onnxruntime-web" / name).read_bytes(), name
    assert (bundle / "web" / "ort" / "ort-wasm-simd-threaded.wasm").stat().st_size > 10_000_000
    notes = (bundle / "web" / "ort" / "README.md").read_text()
    assert "1.30.0" in notes and INTEGRITY in notes
    assert "MIT License" in (bundle / "web" / "ort" / "LICENSE").read_text()
    # the page's own files name no server but the one it is opened from (the runtime is in ort/)
    for name in PAGE:
        text = (bundle / "web" / name).read_text()
        urls = re.findall(r"[a-z]+://[^\s\"'`<>)]*", text)
        assert all(url.startswith("http://127.0.0.1:8000/") for url in urls), (name, urls)
    readme = (bundle / "README.md").read_text()
    assert "## In a browser" in readme and "python -m http.server --bind 127.0.0.1 8000" in readme
    assert "http://127.0.0.1:8000/web/" in readme
    # a TorchScript bundle has no page (it has no model.onnx to run)
    result = export(run, tmp_path / "ts", format="torchscript")
    assert "page" not in result and not (tmp_path / "ts" / "web").exists()
    assert "In a browser" not in (tmp_path / "ts" / "README.md").read_text()
    # and write_web_page alone fills any folder, for a bundle made before it existed
    assert write_web_page(tmp_path / "old") == "web/index.html"
    assert sorted(path.name for path in (tmp_path / "old" / "web" / "ort").iterdir()) == sorted(RUNTIME)


# ---------------------------------------------------------------------------------------------
# The page against `konbu predict`
# ---------------------------------------------------------------------------------------------

def test_the_page_answers_image_files_as_konbu_predict_does(visit, run, image_files):
    """Through the path the "Open an image" button takes (fetch -> Blob -> decode -> pixels.js ->
    model.onnx), every file gets konbu's exact model input, konbu's top-1 and konbu's probabilities."""
    konbu_answers = predict_files(run, image_files, top=10)
    _, konbu_inputs = answer_images(run, [str(path) for path in image_files], [str(path) for path in image_files])
    differences = []
    for path, expected, expected_input in zip(image_files, konbu_answers, konbu_inputs):
        ours = in_the_page(visit, data_url(path))
        if expected_input is None:   # the blank page: konbu says why it did not answer, and so does the page
            assert expected["reason"].startswith("no digit found") and ours["error"].startswith("no digit found")
            continue
        assert "error" not in ours, (path.name, ours)
        assert ours["input"] == expected_input.flatten().tolist(), f"{path.name}: the model input differs"
        probabilities = np.array(ours["probabilities"])
        assert probabilities.shape == (10,) and int(probabilities.argmax()) == expected["index"], path.name
        theirs = np.zeros(10)
        for prediction in expected["predictions"]:
            theirs[prediction["index"]] = prediction["probability"]
        differences.append(np.abs(probabilities - theirs).max())
    assert len(differences) == len(image_files) - 1 >= 20
    assert max(differences) <= TOLERANCE, f"largest probability difference {max(differences):.2g}"
    visit.check()


def shown(visit) -> list:
    """The answer on screen: [(label, percent)], best first."""
    items = visit.page.locator("#results li")
    return [(items.nth(i).locator(".label").inner_text(), float(items.nth(i).locator(".probability").inner_text()[:-1]))
            for i in range(items.count())]


def test_opening_files_shows_konbus_top_3(visit, run, image_files):
    page = visit.page
    for path in (image_files[1], image_files[-2]):   # a digit, a photo-like digit
        page.set_input_files("#file", str(path))
        expect_from = f"file {path.name}"
        page.wait_for_function("from => document.getElementById('results').dataset.from === from", arg=expect_from)
        (expected,) = predict_files(run, [path], top=3)
        answer = shown(visit)
        assert [label for label, _ in answer] == [p["label"] for p in expected["predictions"]], path.name
        for (_, percent), prediction in zip(answer, expected["predictions"]):
            # shown with one decimal: 0.05 of rounding, and the runtimes' difference
            assert percent == pytest.approx(100 * prediction["probability"], abs=0.05 + 100 * TOLERANCE)
        # the model's input is shown as it is: konbu's, pixel for pixel
        seen = page.evaluate("""() => {
            const canvas = document.getElementById('seen');
            const rgba = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            return Array.from(rgba).filter((_, i) => i % 4 === 0);   // grey: the red channel
        }""")
        _, (expected_input,) = answer_images(run, [str(path)], [path.name])
        assert seen == expected_input.flatten().tolist()
    page.set_input_files("#file", str(image_files[-1]))   # the blank page
    page.wait_for_function("document.getElementById('status').textContent.startsWith('no digit found')")
    assert page.locator("#results li").count() == 0
    visit.check()


def test_a_drawing_made_with_the_mouse_is_answered_as_konbu_answers_it(visit, run):
    page = visit.page
    page.click("#clear")
    box = page.locator("#pad").bounding_box()

    def at(x, y):
        return box["x"] + x * box["width"], box["y"] + y * box["height"]
    # a "7": the bar, then the stem, each a stroke of mouse moves
    for stroke in ([(0.3, 0.25), (0.5, 0.25), (0.7, 0.25)], [(0.7, 0.25), (0.6, 0.45), (0.5, 0.65), (0.45, 0.8)]):
        page.mouse.move(*at(*stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*at(*point), steps=4)
        page.mouse.up()
    page.wait_for_function("document.getElementById('results').dataset.from === 'drawing'")
    # queued after the last stroke's answer, so that answer is on screen when this returns
    probabilities = np.array(page.evaluate("konbuPredict(document.getElementById('pad'))"))
    answer = shown(visit)
    assert len(answer) == 3 and answer[0][0] == run.classes[int(probabilities.argmax())]

    # konbu, given the same drawing as a PNG, sees the same input and gives the same answer
    png = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    drawing = Image.open(io.BytesIO(base64.b64decode(png.split(",", 1)[1])))
    drawing.load()
    (expected,), (expected_input,) = answer_images(run, [drawing], ["drawing"], top=10)
    assert page.evaluate("konbuPrepare(document.getElementById('pad'))") == expected_input.flatten().tolist()
    assert expected["index"] == int(probabilities.argmax())
    konbu_probabilities = run.probabilities(expected_input[None]).numpy()[0]
    assert np.abs(probabilities - konbu_probabilities).max() <= TOLERANCE
    visit.check()


def test_the_runtime_comes_from_the_bundle_and_runs_on_one_thread(visit, run):
    """The vendored files answered, from the bundle's web/ort/; no SharedArrayBuffer was needed."""
    paths = {urlparse(url).path for url in visit.requests}
    assert {"/web/ort/ort.wasm.min.mjs", "/web/ort/ort-wasm-simd-threaded.mjs",
            "/web/ort/ort-wasm-simd-threaded.wasm", "/model.onnx", "/preprocess.json", "/classes.json"} <= paths
    assert visit.page.evaluate("[konbu.ort.env.wasm.numThreads, crossOriginIsolated]") == [1, False]
    assert visit.page.evaluate("konbu.ort.env.versions.web") == "1.30.0"
    assert visit.page.inner_text("#title") == run.path.name   # export.json's run name
    visit.check()


def test_a_colour_model_sees_its_pictures_resized_as_konbu_resizes_them(browser, tmp_path):
    """No ink normalisation: RGB pictures of other sizes are resized by PIL's bilinear filter,
    which pixels.js reproduces (weights, fixed-point rounding, the order of the two passes)."""
    torch.manual_seed(0)
    entry = get_model_entry("cifar10-net")
    net = build_model("cifar10-net", entry.input_shape, entry.num_classes)
    preprocess = {"image_shape": list(entry.input_shape), "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26],
                  "classes": [f"class {i}" for i in range(entry.num_classes)], "ink": ""}
    create_run(tmp_path / "run", {"model": "cifar10-net", "dataset": "cifar10", "config": {}},
               {"name": "cifar10-net", "layers": net.spec}, preprocess, net)
    run = Run.load(tmp_path / "run", device="cpu")
    export(run, tmp_path / "bundle")
    rng = np.random.default_rng(0)
    paths = []
    for width, height, extension in ((64, 48, "png"), (7, 90, "png"), (50, 41, "jpg"), (20, 20, "png")):
        paths.append(tmp_path / f"picture{width}x{height}.{extension}")
        smooth = Image.fromarray(rng.integers(0, 256, (height // 4 + 2, width // 4 + 2, 3), dtype=np.uint8))
        smooth.resize((width, height), Image.Resampling.BICUBIC).save(paths[-1])
    konbu_answers, konbu_inputs = answer_images(run, [str(path) for path in paths], [path.name for path in paths],
                                                top=10)
    with serving(tmp_path / "bundle") as base:
        context, visit = open_page(browser, base)
        for path, expected, expected_input in zip(paths, konbu_answers, konbu_inputs):
            ours = in_the_page(visit, data_url(path))
            assert ours["input"] == expected_input.flatten().tolist(), f"{path.name}: the model input differs"
            theirs = run.probabilities(expected_input[None]).numpy()[0]
            assert np.abs(np.array(ours["probabilities"]) - theirs).max() <= TOLERANCE, path.name
            assert expected["predictions"][0]["probability"] == pytest.approx(theirs.max())
        visit.check()
        context.close()
