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
    web/              a page running model.onnx in a browser, ONNX Runtime Web included (konbu.bundle_web)

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
from .bundle import PREDICT_PY, readme
from .bundle_web import write_web_page
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

        {"format", "out", "files": [names], "page": "web/index.html" (onnx only),
         "images": "the first 256 test images of mnist-sample",
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
    atomic.write_text(folder / "README.md", readme(record, format))
    page = {"page": write_web_page(folder)} if format == "onnx" else {}   # web/: model.onnx in a browser
    # "files": the top-level files (the CLI lists their sizes); the page's folder is under "page"
    return {**figures, **page, "files": sorted(path.name for path in folder.iterdir() if path.is_file())}


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
