"""Export a run as a bundle that classifies images without konbu, checked against konbu itself.

    konbu export runs/deep                               # -> runs/deep/export-onnx/
    konbu export runs/deep --format torchscript --out deep-ts

    from konbu.export import export
    figures = export("runs/deep", "deep-onnx")           # {"max_abs_diff": 3e-08, "top1_agree": 256, "n": 256, ...}

The bundle (`--format onnx`; the ONNX pieces are the optional extra `konbu[onnx]`):

    model.onnx        uint8 images [N, C, H, W] (any N) -> "probabilities" [N, K] and "logits" [N, K]
    preprocess.json   the run's serving contract: input shape, mean/std, ink style, class names
    classes.json      the class names, in the order of the model's outputs
    predict.py        `python predict.py IMAGE... [--top 3] [--json]`: needs onnxruntime, numpy, pillow
    pixels.py         konbu.pixels copied verbatim: image modes + MNIST-style ink normalisation
    export.json       the parity figures and where the model came from, for programs
    README.md         the same for people: the files, how to run predict.py, the figures

`--format torchscript` writes model.pt (torch.jit.trace of the same module) instead of model.onnx;
its predict.py then needs torch instead of onnxruntime. PyTorch deprecates TorchScript in favour
of torch.export, so ONNX is the format to reach for.

Two choices shape the model file, both so that a user of the bundle has nothing to get wrong:
- It takes uint8 pixels, not normalised floats: (x / 255 - mean) / std is inside the graph, done by
  konbu.inference.normalise itself, so a consumer in any language (onnxruntime-web, C#, C++) feeds
  what pixels.model_input gives, and the parity check below covers the normalisation too.
- It answers calibrated probabilities, softmax(logits / T) with the run's calibration temperature
  exactly as Run.probabilities computes them, beside the raw logits: what `konbu predict` shows is
  what the bundle shows. A run calibrated again later needs exporting again (export.json keeps T).

Parity: the written file is loaded back (ONNX Runtime, or torch.jit.load) and run on test images
against Run.probabilities on the CPU; the export fails, leaving nothing at `out`, unless every
probability agrees within TOLERANCE and the top-1 class agrees on every image. The images: the
first PARITY_IMAGES of the run's test split when its dataset is on this machine, else as many
random uint8 images of the input shape (the result's "images" says which), or the caller's own.
The bundle is filled in a temporary folder beside `out` and renamed into place (konbu.atomic).
"""

import importlib.util
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from . import atomic, pixels
from .errors import ConfigError, KonbuError, ShapeError
from .inference import normalise
from .runs import Run

__all__ = ["export", "default_out", "require_onnx", "compare", "Servable", "FORMATS", "TOLERANCE"]

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}   # format -> its model file in the bundle
ONNX_EXTRA = ("onnx", "onnxruntime", "onnxscript")   # onnxscript: torch's (dynamo) ONNX exporter writes with it
# Largest |p_torch - p_exported| accepted. The same float32 arithmetic in another order differs by
# ~1e-7; a wrong operator, layout or normalisation differs by 1e-2 and more.
TOLERANCE = 1e-4
# Two classes whose probabilities (konbu's) are this close have no defined top-1: a flip between
# them is float rounding, not a disagreement (a random-weight model answers near-uniform scores).
TIE = 1e-6
PARITY_IMAGES = 256   # enough to catch a wrong operator, a second or two on a CPU
PARITY_BATCH = 100    # compared 100 at a time, so the file answers batches of more than one size
# A protobuf stops at 2 GiB: parameters beyond 1 GiB go to model.onnx.data beside the graph
INLINE_LIMIT = 1 << 30
BUNDLE_FILE = "export.json"   # also the mark of a bundle: only a folder holding it is ever replaced
SEED = 0                      # the random parity images are the same on every export

EXTRA_MESSAGE = "konbu export --format onnx needs the onnx extra: pip install 'konbu[onnx]'"


# ---------------------------------------------------------------------------------------------
# The exported module: uint8 pixels in, calibrated probabilities and logits out
# ---------------------------------------------------------------------------------------------

class Servable(torch.nn.Module):
    """A run's model with its input normalisation and calibration around it, as one module."""

    def __init__(self, model: torch.nn.Module, mean, std, temperature: float):
        super().__init__()
        self.model = model
        self.mean, self.std = list(mean), list(std)   # per channel, baked into the graph as constants
        self.temperature = float(temperature)

    def forward(self, images: torch.Tensor):   # uint8 (N, C, H, W)
        logits = self.model(normalise(images, self.mean, self.std)).float()   # (N, K)
        # the very formula of Run.probabilities
        return (logits / self.temperature).softmax(dim=-1), logits


def _servable(run: Run) -> Servable:
    return Servable(run.model, run.preprocess["mean"], run.preprocess["std"], run.temperature).eval()


# ---------------------------------------------------------------------------------------------
# Writing and reading back the model file
# ---------------------------------------------------------------------------------------------

def require_onnx():
    """A KonbuError naming the extra when onnx, onnxruntime or onnxscript is not installed."""
    missing = [name for name in ONNX_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise KonbuError(f"{EXTRA_MESSAGE} (not installed: {', '.join(missing)})")


def _write_onnx(servable: Servable, example: torch.Tensor, path: Path) -> dict:
    """torch.onnx.export (the dynamo exporter) with the batch dimension dynamic -> path; {"opset": ...}."""
    large = sum(p.numel() * p.element_size() for p in servable.parameters()) > INLINE_LIMIT
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the exporter's notes are for torch's developers, not for a user
            program = torch.onnx.export(servable, (example,), input_names=["images"],
                                        output_names=["probabilities", "logits"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},),
                                        external_data=large, verbose=False)
            program.save(str(path), external_data=large)
    except Exception as error:   # torch.export and onnxscript raise many kinds; the first line says which
        raise KonbuError(f"cannot export the model to ONNX ({type(error).__name__}: "
                         f"{str(error).strip().splitlines()[0] if str(error).strip() else 'no message'}); "
                         "try --format torchscript") from None
    return {"opset": program.model.opset_imports.get("")}


def _write_torchscript(servable: Servable, example: torch.Tensor, path: Path) -> dict:
    """torch.jit.trace -> path. Tracing records the batch size as a variable for these layers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # torch.jit is deprecated upstream; it still works
        # the tracer's note that mean and std become constants: they are constants, by design
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(servable, (example,))
        torch.jit.save(traced, str(path))
    return {}


def _onnx_runner(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run(["probabilities"], {"images": images})[0]


def _torchscript_runner(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")

    def probabilities(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(images))[0].numpy()
    return probabilities


WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript}
RUNNERS = {"onnx": _onnx_runner, "torchscript": _torchscript_runner}


# ---------------------------------------------------------------------------------------------
# Parity: the written file against konbu
# ---------------------------------------------------------------------------------------------

def _parity_images(run: Run, images) -> tuple[torch.Tensor, str]:
    """(uint8 [N, C, H, W], what they are): the caller's, the run's test split, or random ones."""
    shape = tuple(run.preprocess["image_shape"])
    if images is not None:
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != shape or not len(images):
            raise ShapeError(f"parity images must be uint8 [N, {', '.join(map(str, shape))}] with N >= 1, found "
                             f"{images.dtype} {tuple(images.shape)}")
        return images, f"{len(images)} given images"
    test = _test_split(run)
    if test is not None and tuple(test.images.shape[1:]) == shape and len(test):
        count = min(PARITY_IMAGES, len(test))
        return test.images[:count], f"the first {count} test images of {run.info['dataset']}"
    generator = torch.Generator().manual_seed(SEED)
    random = torch.randint(0, 256, (PARITY_IMAGES, *shape), dtype=torch.uint8, generator=generator)
    return random, f"{PARITY_IMAGES} random images (the run's dataset is not on this machine)"


def _test_split(run: Run):
    """The run's test split when its dataset loads here without a network, else None."""
    from .data import is_available

    name, data_dir = run.info.get("dataset"), (run.info.get("config") or {}).get("data_dir")
    try:
        return run.dataset("test") if name and is_available(name, data_dir) else None
    except KonbuError:   # a run copied from another machine, a folder dataset moved away: random images
        return None


def compare(reference: np.ndarray, exported: np.ndarray) -> dict:
    """Probabilities [N, K] from konbu and from the exported file -> the parity figures."""
    difference = float(np.abs(reference - exported).max()) if reference.size else 0.0
    top_reference, top_exported = reference.argmax(axis=1), exported.argmax(axis=1)
    rows = np.arange(len(reference))
    flipped = top_reference != top_exported
    ties = flipped & (reference[rows, top_reference] - reference[rows, top_exported] <= TIE)
    return {"max_abs_diff": difference, "top1_agree": int((~flipped).sum()), "top1_ties": int(ties.sum()),
            "n": len(reference), "tolerance": TOLERANCE}


def _check_parity(run: Run, images: torch.Tensor, runner) -> dict:
    reference = run.probabilities(images).numpy()
    exported = np.concatenate([runner(images[start:start + PARITY_BATCH].numpy())
                               for start in range(0, len(images), PARITY_BATCH)])
    figures = compare(reference, exported)
    # `not <=`: a NaN difference fails too
    if not figures["max_abs_diff"] <= TOLERANCE or figures["top1_agree"] + figures["top1_ties"] < figures["n"]:
        raise KonbuError(f"the exported model does not match konbu's: max |p_torch - p_exported| "
                         f"{figures['max_abs_diff']:.3g} (allowed {TOLERANCE:g}), top-1 agrees on "
                         f"{figures['top1_agree']} of {figures['n']} images; nothing was written. "
                         "Please report it with the run's model.json")
    return figures


# ---------------------------------------------------------------------------------------------
# The bundle
# ---------------------------------------------------------------------------------------------

def default_out(run_path, format: str = "onnx") -> Path:
    """Where `konbu export RUN` writes: RUN/export-FORMAT, so the bundle travels with its run."""
    return Path(run_path) / f"export-{format}"


def _check_out(out: Path):
    """Refuse an `out` whose contents are not a bundle: replacing it would delete someone's files
    (`--out RUN` would replace the run directory itself)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder for the bundle")
    if out.is_dir() and any(out.iterdir()) and not (out / BUNDLE_FILE).is_file():
        raise ConfigError(f"--out {out} holds other files and is not a bundle `konbu export` wrote (no "
                          f"{BUNDLE_FILE}); pass a new or empty folder")


def _load(run_or_path) -> Run:
    """A Run on the CPU (where the parity is measured: a GPU's kernels round differently)."""
    if not isinstance(run_or_path, Run):
        return Run.load(run_or_path, device="cpu")
    if run_or_path.device.type == "cpu":
        return run_or_path
    import copy

    return Run(run_or_path.path, run_or_path.info, run_or_path.spec, run_or_path.preprocess,
               copy.deepcopy(run_or_path.model).cpu(), temperature=run_or_path.temperature)


def export(run_or_path, out=None, format: str = "onnx", images=None) -> dict:
    """Write the bundle of a run (a Run or its directory) to `out` (default RUN/export-FORMAT) and
    check it against konbu; returns the figures:

        {"format", "out", "files": [names], "images": "the first 256 test images of mnist-sample",
         "n", "max_abs_diff", "top1_agree", "top1_ties", "tolerance", "temperature", "seconds", ...}

    `images`: uint8 [N, C, H, W] to compare on, instead of the run's test split or random images.
    Raises KonbuError, leaving `out` as it was, for a missing extra, a model that won't export, or
    a file that disagrees with konbu.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    if format == "onnx":
        require_onnx()
    started = time.monotonic()
    run = _load(run_or_path)
    out = Path(out) if out is not None else default_out(run.path, format)
    _check_out(out)
    parity_images, described = _parity_images(run, images)
    result = {"format": format, "out": str(out), "images": described}

    def fill(folder: Path):
        result.update(_write_bundle(run, folder, format, parity_images, described))
    atomic.replace_dir(out, fill)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def _write_bundle(run: Run, folder: Path, format: str, images: torch.Tensor, described: str) -> dict:
    """Model file, parity check, then the rest; returns the figures and the files written."""
    model_file = folder / FORMATS[format]
    # an example batch of 2: torch.export fixes a dimension that is 1 in the example as a constant
    example = images[:2] if len(images) >= 2 else images[:1].repeat(2, 1, 1, 1)
    details = WRITERS[format](_servable(run), example, model_file)
    figures = _check_parity(run, images, RUNNERS[format](model_file))
    figures.update(details, temperature=run.temperature)
    atomic.write_json(folder / "preprocess.json", run.preprocess)
    atomic.write_json(folder / "classes.json", run.classes)
    atomic.write_bytes(folder / "pixels.py", Path(pixels.__file__).read_bytes())   # verbatim: the same code
    atomic.write_text(folder / "predict.py", PREDICT_PY)
    record = _record(run, format, figures, described)
    atomic.write_json(folder / BUNDLE_FILE, record)
    atomic.write_text(folder / "README.md", _readme(record, format))
    return {**figures, "files": sorted(path.name for path in folder.iterdir())}


def _record(run: Run, format: str, figures: dict, described: str) -> dict:
    """export.json: what was exported, from where, and how well it matches."""
    from . import __version__

    runtime = ("onnxruntime", _version("onnxruntime")) if format == "onnx" else ("torch", torch.__version__)
    info = run.info
    return {
        "format": format, "model_file": FORMATS[format],
        "inputs": {"images": ["N", *run.preprocess["image_shape"]], "dtype": "uint8"},
        "outputs": {"probabilities": ["N", len(run.classes)], "logits": ["N", len(run.classes)]},
        "temperature": run.temperature,
        "parity": {**{key: figures[key] for key in ("max_abs_diff", "top1_agree", "top1_ties", "n", "tolerance")},
                   "images": described, "reference": f"torch {torch.__version__}", "runtime": " ".join(runtime)},
        "run": {"name": info.get("name", run.path.name), "path": str(run.path.resolve()), "model": info.get("model"),
                "dataset": info.get("dataset"), "test_accuracy": (info.get("final") or {}).get("test_accuracy"),
                "trained_with": info.get("versions") or {}},
        "exported": {"konbu": __version__, "torch": torch.__version__, "time": _now(),
                     **({"onnx": _version("onnx"), "opset": figures.get("opset")} if format == "onnx" else {})},
    }


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _readme(record: dict, format: str) -> str:
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
