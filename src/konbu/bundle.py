"""The text files of an export bundle (konbu.export): its README.md and its predict.py.

predict.py runs without konbu: numpy, PIL, pixels.py (konbu.pixels, copied verbatim beside it) and
the model's runtime (onnxruntime; torch for a TorchScript bundle). It is kept here as a string, the
file it will be, so a bundle never depends on where konbu is installed.
"""


def readme(record: dict, format: str) -> str:
    """README.md of the bundle, from export.json's record."""
    run, parity, exported = record["run"], record["parity"], record["exported"]
    channels, height, width = record["inputs"]["images"][1:]
    onnx = format == "onnx"
    needs = "onnxruntime numpy pillow" if onnx else "torch numpy pillow"
    accuracy = f", test accuracy {run['test_accuracy']:.2%}" if isinstance(run["test_accuracy"], float) else ""
    model_row = (f"| `model.onnx` | the network with its input normalisation and calibration inside (ONNX, opset "
                 f"{exported.get('opset')}): input `images` uint8 [N, {channels}, {height}, {width}], any N; "
                 "outputs `probabilities` [N, K] and `logits` [N, K] |" if onnx else
                 f"| `model.pt` | the network with its input normalisation and calibration inside (TorchScript): "
                 f"uint8 [N, {channels}, {height}, {width}] in, (probabilities, logits) [N, K] out |")
    web_row = "| `web/` | a page that runs the model in a browser, its runtime included (see below) |\n" if onnx else ""
    python = ('    import numpy as np, onnxruntime\n'
              '    session = onnxruntime.InferenceSession("model.onnx")\n'
              '    probabilities, logits = session.run(None, {"images": batch})   # batch: uint8 [N, C, H, W]\n'
              if onnx else
              '    import torch\n'
              '    module = torch.jit.load("model.pt")\n'
              '    probabilities, logits = module(torch.from_numpy(batch))          # batch: uint8 [N, C, H, W]\n')
    return f"""# {run['name']}: {run['model']} on {run['dataset']}, exported by konbu

A classifier trained with konbu ({run['model']} on {run['dataset']}{accuracy}), exported as
{'ONNX' if onnx else 'TorchScript'} so that it runs without konbu.

## Files

| file | what it is |
|---|---|
{model_row}
| `preprocess.json` | the run's serving contract: input shape, mean/std (applied inside the model), ink, classes |
| `classes.json` | the class names, in the order of the model's outputs |
| `predict.py` | classifies image files: `python predict.py IMAGE...`; needs only {', '.join(needs.split())} |
| `pixels.py` | konbu's own image reading and MNIST-style ink normalisation (konbu/pixels.py, unchanged) |
| `export.json` | the figures below and where the model came from, for programs |
| `README.md` | this page |
{web_row}
## Run it

    pip install {needs}
    python predict.py digit.png photo.jpg --top 3
    python predict.py digit.png --json        # one JSON object per image, as `konbu predict --json`

predict.py prepares each image exactly as `konbu predict` does, with the same code (pixels.py):
EXIF orientation, grey or RGB, resizing, and for a run with `"ink": "mnist"` in preprocess.json the
MNIST-style normalisation (white ink on black, fitted in a box, centred by mass), so a photo of a
digit on paper is read as konbu reads it. From your own code, feed the model what
`pixels.model_input(pixels.to_grey_or_rgb(image), preprocess)` gives, stacked into a batch:

{python}
{_calibration(record['temperature'])}
{_web_page() if onnx else ''}
## Parity

Checked at export on {parity['images']}:
{parity['runtime']} against konbu on {parity['reference']} (CPU). Largest difference of any
probability: {parity['max_abs_diff']:.2g} (allowed {parity['tolerance']:g}); top-1 class agrees on
{parity['top1_agree']} of {parity['n']} images{_ties(parity)}.

## Where it came from

- run: `{run['name']}` ({run['path']}), model {run['model']}, dataset {run['dataset']}
- trained with konbu {run['trained_with'].get('konbu', '?')}, torch {run['trained_with'].get('torch', '?')}
- exported {exported['time']} with konbu {exported['konbu']}, torch {exported['torch']}
"""


def _web_page() -> str:
    """The ONNX bundle's web/ folder (konbu.bundle_web), for people."""
    return """
## In a browser

`web/` is a page that runs `model.onnx` in the browser, with ONNX Runtime Web (WebAssembly, CPU, one
thread) included in `web/ort/`: nothing is fetched from the internet and no picture leaves the
machine. Draw on its canvas or open an image: it is prepared exactly as predict.py prepares it
(`web/pixels.js` is pixels.py in JavaScript, to the byte) and the top 3 classes are shown. Browsers
refuse to run it from a file, so serve this folder (the page reads `model.onnx`, `preprocess.json`
and `classes.json` from it) and open the page:

    python -m http.server --bind 127.0.0.1 8000     # in this folder; from elsewhere add -d FOLDER
    # then open http://127.0.0.1:8000/web/

To put it on a website, publish the whole folder. A page script can call `konbuPredict(imageUrlOrBlob)`
for the probabilities, in the order of classes.json.
"""


def _calibration(temperature: float) -> str:
    if temperature == 1.0:
        return ("The probabilities are the plain softmax of the logits, as `konbu predict` shows them for this run\n"
                "(it has no calibration temperature).")
    return (f"The probabilities are calibrated, softmax(logits / T) with the run's temperature T = {temperature:.4g},\n"
            "as `konbu predict` shows them. T is built into the model: do not divide again.")


def _ties(parity: dict) -> str:
    ties = parity["top1_ties"]
    return f" ({ties} more are exact ties between two classes)" if ties else ""


# ---------------------------------------------------------------------------------------------
# The bundle's predict.py: numpy, PIL and the model's runtime only (no konbu, no torch for ONNX)
# ---------------------------------------------------------------------------------------------

PREDICT_PY = '''"""Classify images with the model in this folder (exported by `konbu export`), without konbu.

    pip install onnxruntime numpy pillow        # for model.pt (TorchScript): torch numpy pillow
    python predict.py digit.png photo.jpg --top 3
    python predict.py digit.png --json          # a JSON list, one object per image, as `konbu predict --json`

Each image is prepared exactly as `konbu predict` prepares it, by konbu's own code (pixels.py,
copied unchanged): EXIF orientation, grey or RGB, resizing, and for digit models the MNIST-style ink
normalisation. The model takes those uint8 pixels and answers calibrated probabilities. An image
with no stroke on it (digit models) is answered "no digit found"; a file that can't be read gets an
error of its own and exit code 1, and the other images are answered.

From Python, with this folder on sys.path:

    from predict import Model
    Model().predict(["digit.png"], top=3)
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import pixels

HERE = Path(__file__).resolve().parent


class Model:
    """The exported model with its preprocessing: image files -> top classes."""

    def __init__(self, folder=HERE):
        folder = Path(folder)
        self.preprocess = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
        self.classes = json.loads((folder / "classes.json").read_text(encoding="utf-8"))
        self.probabilities = load_model(folder)   # uint8 [N, C, H, W] -> float32 [N, K]

    def predict(self, paths, top=3):
        """One answer per path, in order, as `konbu predict --json` gives them."""
        inputs = [prepare(path, self.preprocess) for path in paths]
        ready = [item for item in inputs if isinstance(item, np.ndarray)]
        probabilities = iter(self.probabilities(np.stack(ready)) if ready else [])
        return [answer(str(path), next(probabilities), self.classes, top) if isinstance(item, np.ndarray)
                else {"image": str(path), **item} for path, item in zip(paths, inputs)]


def load_model(folder):
    """The model file's runtime: ONNX Runtime for model.onnx, PyTorch for model.pt (TorchScript)."""
    if (folder / "model.onnx").is_file():
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        return lambda images: session.run(["probabilities"], {"images": images})[0]
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch.jit is deprecated upstream; it still loads
        module = torch.jit.load(str(folder / "model.pt"), map_location="cpu")

    def probabilities(images):
        with torch.inference_mode():
            return module(torch.from_numpy(images))[0].numpy()
    return probabilities


def prepare(path, preprocess):
    """The model input (uint8 [C, H, W]) for one file, or what to answer instead: {"error": ...}
    for a file that can't be read; "no digit found" for an image without a stroke (a digit model is
    not asked about blank paper: its best guess would read as a digit)."""
    if not Path(path).is_file():
        return {"error": "no such file"}
    try:
        with Image.open(path) as image:
            image.load()   # decode every byte now: a truncated file fails here
            image = pixels.to_grey_or_rgb(pixels.upright(image))
    except Exception as error:   # a damaged file can make a decoder fail with almost any exception
        return {"error": f"not a readable image ({type(error).__name__}: {error})"}
    try:
        return pixels.model_input(image, preprocess)
    except pixels.NoInkFound as error:
        return {"label": None, "index": None, "probability": None, "predictions": [], "reason": str(error)}


def answer(name, probabilities, classes, top):
    """{"image", "label", "index", "probability", "predictions": the top classes, best first}."""
    order = np.argsort(-probabilities, kind="stable")[:top]
    predictions = [{"label": str(classes[i]), "index": int(i), "probability": float(probabilities[i])}
                   for i in order]
    best = predictions[0]
    return {"image": name, "label": best["label"], "index": best["index"], "probability": best["probability"],
            "predictions": predictions}


def describe(result):
    if "error" in result:
        return f"error: {result['error']}"
    if not result["predictions"]:
        return result["reason"]
    return f"{result['label']} ({result['probability']:.0%})"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Classify images with the exported model in this folder.")
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, GIF, TIFF, WebP)")
    parser.add_argument("--top", type=int, default=3, help="how many classes to show (default 3)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top needs at least 1, found {args.top}")
    results = Model().predict(args.images, top=args.top)
    if args.json:
        print(json.dumps(results))
    else:
        for result in results:
            print(f"{result['image']}: {describe(result)}")
            for prediction in result.get("predictions", []):
                print(f"  {prediction['label']:>10}  {100 * prediction['probability']:6.2f}%")
    return 1 if any("error" in result for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
'''
