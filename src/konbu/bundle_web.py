"""The web page of an ONNX export bundle (konbu.export): model.onnx answering in a browser.

    konbu export runs/deep --out deep-onnx
    python -m http.server --bind 127.0.0.1 -d deep-onnx 8000      # then open http://127.0.0.1:8000/web/

The bundle gains a folder `web/`:

    web/index.html, app.js, style.css   the page: draw on a canvas or open an image, see the top classes
    web/pixels.js                       konbu/pixels.py in JavaScript, to the byte: what predict.py feeds
    web/ort/                            ONNX Runtime Web (WebAssembly, CPU), vendored: no CDN, works offline

The page reads the bundle's own model.onnx, preprocess.json, classes.json and export.json from the
folder above it rather than copies, so it cannot drift from them; hence the whole bundle is served,
not web/ alone. It must be served over HTTP: browsers refuse to run modules or WebAssembly from
file://. Both source folders ship inside konbu (konbu/static/, package data), so writing the page
needs neither a network nor a build step.
"""

from importlib import resources
from pathlib import Path

from . import atomic

FOLDER = "web"   # in the bundle
# package folder (under konbu/static) -> where its files go in the bundle's web folder
SOURCES = {"bundle_web": ".", "onnxruntime-web": "ort"}


def write_web_page(folder: Path) -> str:
    """Copy the page and the runtime into `folder`/web; returns the page's path inside the bundle."""
    static = resources.files("konbu") / "static"
    for package_folder, target in SOURCES.items():
        for item in (static / package_folder).iterdir():
            if item.is_file():   # the runtime's wasm is ~14 MB: one read, one write
                atomic.write_bytes(Path(folder) / FOLDER / target / item.name, item.read_bytes())
    return f"{FOLDER}/index.html"
