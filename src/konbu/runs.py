"""The run directory: the one contract between training and everything that reads a model.

    runs/<name>/
      run.json            dataset, model, config, versions, seed, device, times, final metrics
      model.json          the layer spec: the model is rebuilt from it without pickle or code
      preprocess.json     input shape, channels, mean/std, ink style, class names (serving contract)
      weights.safetensors best weights by validation accuracy (never pickle)
      last.ckpt/          latest full training state: weights, optimizer, RNG, epoch/step
      metrics.jsonl       one JSON line per training step and per epoch
      calibration.json    the softmax temperature fitted on the validation split (optional)
      evaluation.json     test-split metrics the report shows: per-class table, confusion (optional)
      figures/*.png       curves, confusion, ...
      report.html         one self-contained page

    run = Run.load("runs/deep")
    run.predict("digit.jpg", top=3)      # [[{"label": "7", "index": 7, "probability": 0.98}, ...]]
    run.evaluate()                       # {"accuracy": ..., "loss": ..., "n": ...}

Every file is written atomically (konbu.atomic), so a killed run leaves complete files behind.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from . import atomic
from .errors import RunDirectoryError
from .models import build_model

REQUIRED_FILES = ("run.json", "model.json", "preprocess.json", "weights.safetensors")
CALIBRATION_FILE = "calibration.json"
INITIAL_FILE = "initial.safetensors"   # the conv kernels before training: `konbu show filters --initial`


def save_weights(path, model) -> Path:
    """Weights as safetensors (tensors made contiguous: channels_last weights are strided)."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    return atomic.write_bytes(path, save(state))


def save_initial_filters(path, model) -> Path | None:
    """The conv layers' kernels as initialised, before any step (small: 52k numbers for deep-mnist);
    None for a model without a conv layer. The before/after pair shows what training learned."""
    state = {f"{name}.weight": module.weight.detach().cpu().contiguous()
             for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)}
    return atomic.write_bytes(path, save(state)) if state else None


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirectoryError(f"{path} is missing; this is not a complete konbu run directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirectoryError(f"{path} is not valid JSON ({e}); the run directory is damaged") from None


def read_metrics(path) -> list:
    """metrics.jsonl records; a torn last line (a run killed mid-write) is skipped, not an error."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_temperature(path) -> float:
    """The temperature in `path`/calibration.json, or 1.0 when the run has none."""
    file = Path(path) / CALIBRATION_FILE
    if not file.is_file():
        return 1.0
    stored = read_json(file)
    temperature = stored.get("temperature") if isinstance(stored, dict) else None
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < float("inf"):
        raise RunDirectoryError(f"{file}: expected a positive number under \"temperature\", found {temperature!r}; "
                                f"delete the file and run `konbu show calibration {Path(path)}` to fit it again")
    return float(temperature)


class Run:
    """A finished (or running) training run, loaded from its directory: model + preprocessing."""

    def __init__(self, path, info: dict, spec: dict, preprocess: dict, model, temperature: float = 1.0):
        self.path = Path(path)
        self.info = info              # run.json
        self.spec = spec              # model.json
        self.preprocess = preprocess  # preprocess.json
        self.model = model            # a konbu Net in eval mode, on the CPU
        # calibration.json's softmax temperature: predict reports softmax(logits / T). 1.0 (the raw
        # softmax) for runs trained before calibration existed or without a validation split.
        self.temperature = temperature

    @classmethod
    def load(cls, path, device="cpu") -> "Run":
        path = Path(path)
        if not path.is_dir():
            raise RunDirectoryError(f"run directory {path} not found; pass the folder `konbu train` wrote "
                                    "(it prints it at the end, e.g. runs/chollet-mnist-...)")
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if missing:
            raise RunDirectoryError(f"{path} is incomplete: missing {', '.join(missing)}. A run still "
                                    "training writes weights.safetensors after its first epoch.")
        info, spec, preprocess = (read_json(path / name) for name in REQUIRED_FILES[:3])
        try:
            model = build_model(spec, tuple(preprocess["image_shape"]), len(preprocess["classes"]))
            state = load_file(path / "weights.safetensors", device=str(device))
            model.load_state_dict(state)
        except (KeyError, RuntimeError, OSError, ValueError) as e:
            raise RunDirectoryError(f"{path}: model.json, preprocess.json and weights.safetensors do not fit "
                                    f"together ({str(e).splitlines()[0]})") from None
        model.to(device).eval()
        return cls(path, info, spec, preprocess, model, temperature=read_temperature(path))

    @property
    def classes(self):
        return list(self.preprocess["classes"])

    @property
    def history(self):
        """The per-epoch records of metrics.jsonl."""
        return [r for r in read_metrics(self.path / "metrics.jsonl") if r.get("kind") == "epoch"]

    def dataset(self, split: str = "test", data_dir=None):
        """A split of the dataset this run was trained on, loaded with the run's own options (its
        data folder, --image-size, --classes), so the images fit the model. `data_dir` overrides
        the folder (a run copied to a machine that keeps the data elsewhere)."""
        from .data import load_dataset

        config = self.info.get("config") or {}
        options = {key: config[key] for key in ("image_size", "classes") if config.get(key) is not None}
        return load_dataset(self.info["dataset"], split, data_dir or config.get("data_dir"), **options)

    def initial_model(self):
        """A copy of the model with its conv kernels as they were before training (initial.safetensors)."""
        import copy

        path = self.path / INITIAL_FILE
        if not path.is_file():
            raise RunDirectoryError(f"{path} is missing: the run was trained before konbu kept the initial "
                                    "filters, or its model has no conv layer")
        model = copy.deepcopy(self.model)
        model.load_state_dict(load_file(path), strict=False)   # only the conv kernels; the rest stays
        return model

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        from .inference import logits
        return logits(self.model, images, self.preprocess["mean"], self.preprocess["std"])

    def predict(self, images, top: int = 5, reject_below: float | None = None):
        """Top-`top` predictions for one image (path, PIL image, array) or a list of them, with
        calibrated percentages. With `reject_below`, each answer is a dict whose "label" is None
        ("I don't know") when the top probability is below it (see konbu.predict.predict)."""
        from .predict import predict
        return predict(self, images, top=top, reject_below=reject_below)

    def evaluate(self, dataset=None, split: str = "test", data_dir=None, figures: bool = False) -> dict:
        """Loss, accuracy, top-5, per-class report and confusion on a Dataset (default: the run's
        own dataset's test split)."""
        from .evaluate import evaluate
        return evaluate(self, dataset, split=split, data_dir=data_dir, figures=figures)

    def __repr__(self):
        return f"Run({str(self.path)!r}, model={self.info.get('model')!r}, dataset={self.info.get('dataset')!r})"
