"""The run directory: the one contract between training and everything that reads a model.

    runs/<name>/
      run.json            dataset, model, config, versions, seed, device, times, status, final metrics
      model.json          the layer spec: the model is rebuilt from it without pickle or code
      preprocess.json     input shape, channels, mean/std, ink style, class names (serving contract)
      weights.safetensors best weights by validation accuracy (never pickle)
      initial.safetensors the conv kernels as initialised (`konbu show filters --initial`)
      last.ckpt/          latest full training state: weights, optimizer, RNG, epoch/step
      metrics.jsonl       one JSON line per training step and per epoch (metrics.csv: the epochs); it
                          grows during an epoch (appended lines), and is rewritten whole at its end
      progress.json       where training is now: epoch, step, speed, ETA, state (rewritten ~twice a second)
      calibration.json    the softmax temperature fitted on the validation split (optional)
      evaluation.json     test-split metrics the report shows: per-class table, confusion (optional)
      diagnosis.json      what `konbu diagnose` found: findings, evidence, next commands (optional)
      figures/*.png       curves, confusion, ...
      report.html         one self-contained page

This is the only module that knows those names. Training creates a run (`create_run`), moves its
status ("running" -> "interrupted" / "finished", with "stopped" saying why a run ended early) with
`mark_*`, and everything else reads it through `Run` or the readers here:

    run = Run.load("runs/deep")          # on the GPU when there is one (device="auto")
    run.predict("digit.jpg", top=3)      # [[{"label": "7", "index": 7, "probability": 0.98}, ...]]
    run.probabilities(images)            # softmax(logits / T): calibrated, [N, K]
    run.evaluate()                       # {"accuracy": ..., "loss": ..., "n": ...}
    train, test = run.data()             # the run's dataset, loaded with its own options

Every file is written atomically (konbu.atomic), so a killed run leaves complete files behind; the
one exception is metrics.jsonl's lines appended mid-epoch: a run killed while appending may leave a
torn last line (read_metrics skips it; a resume rewrites the file). A follower in another process
(the web app) watches a run live:

    follower = MetricsFollower("runs/deep")
    reset, records = follower.poll()     # the complete lines added since the last poll; reset: start over
    read_progress("runs/deep")           # progress.json: {"epoch", "step", "eta_seconds", "state", ...}
"""

import hashlib
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from . import atomic
from .device import to_channels_last
from .errors import ConfigError, RunDirectoryError
from .models import build_model

RUN_FILE = "run.json"
MODEL_FILE = "model.json"
PREPROCESS_FILE = "preprocess.json"
WEIGHTS_FILE = "weights.safetensors"
INITIAL_FILE = "initial.safetensors"   # the conv kernels before training: `konbu show filters --initial`
CHECKPOINT_DIR = "last.ckpt"
METRICS_FILE = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
PROGRESS_FILE = "progress.json"       # where a live run is: konbu.train.events.ProgressFile
TENSORBOARD_DIR = "tensorboard"
CALIBRATION_FILE = "calibration.json"
EVALUATION_FILE = "evaluation.json"
DIAGNOSIS_FILE = "diagnosis.json"
FIGURES_DIR = "figures"
REPORT_FILE = "report.html"
REQUIRED_FILES = (RUN_FILE, MODEL_FILE, PREPROCESS_FILE, WEIGHTS_FILE)
# The layout's version, in run.json: a konbu that finds a larger number was written by a newer konbu
# and says so, rather than misreading files whose meaning changed.
RUN_FORMAT = 1
PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")   # torch.save's zip archive; a bare pickle's protocol opcode


def figure_path(run_dir, name: str) -> Path:
    """Where the figure `name` of a run goes: RUN/figures/NAME.png."""
    return Path(run_dir) / FIGURES_DIR / f"{name}.png"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- writing

def save_weights(path, model) -> Path:
    """Weights as safetensors (tensors made contiguous: channels_last weights are strided)."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    return atomic.write_bytes(path, save(state))


def save_initial_filters(path, model) -> Path | None:
    """The conv layers' kernels as initialised, before any step (small: 52k numbers for deep-mnist);
    None for a model without a conv layer. The before/after pair shows what training learned. Of a
    pretrained backbone only the first conv is kept, the one the filters figure draws: all of a
    ResNet-50's would be 94 MB kept twice."""
    from .models.backbones import Backbone

    inside = {id(m) for backbone in model.modules() if isinstance(backbone, Backbone)
              for m in list(backbone.modules())[1:] if isinstance(m, torch.nn.Conv2d)}
    first = [m for m in model.modules() if id(m) in inside][:1]
    state = {f"{name}.weight": module.weight.detach().cpu().contiguous()
             for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)
             and (id(module) not in inside or module in first)}
    return atomic.write_bytes(path, save(state)) if state else None


def create_run(run_dir, info: dict, model_spec: dict, preprocess: dict, model) -> dict:
    """Start a new run: model.json, preprocess.json, the initial weights (until an epoch beats them
    they are the best we have, so a run stopped in its first epoch still loads), the initial conv
    kernels, then run.json with status "running", written last so a run.json means a complete start.
    Refuses a folder that already holds a run: nothing is ever written over. Returns run.json's dict."""
    run_dir = Path(run_dir)
    if (run_dir / RUN_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a run; pass another --out, remove that folder, "
                          f"or continue it with --resume {run_dir}")
    atomic.write_json(run_dir / MODEL_FILE, model_spec)
    atomic.write_json(run_dir / PREPROCESS_FILE, preprocess)
    save_weights(run_dir / WEIGHTS_FILE, model)
    save_initial_filters(run_dir / INITIAL_FILE, model)
    info = {"name": run_dir.name, "format": RUN_FORMAT, **info, "status": "running", "started": _now()}
    atomic.write_json(run_dir / RUN_FILE, info)
    return info


def mark_resumed(run_dir, info: dict, step: int, epoch: int, config: dict) -> dict:
    """A resumed run is "running" again; "resumed" lists where each resume began."""
    info.setdefault("resumed", []).append({"step": step, "epoch": epoch, "time": _now()})
    info.update(status="running", config=config)
    atomic.write_json(Path(run_dir) / RUN_FILE, info)
    return info


def mark_interrupted(run_dir, info: dict, step: int) -> dict:
    """Ctrl-C: last.ckpt holds `step`; `konbu train --resume RUN` continues it."""
    info.update(status="interrupted", interrupted={"step": step, "time": _now()})
    atomic.write_json(Path(run_dir) / RUN_FILE, info)
    return info


def mark_finished(run_dir, info: dict, **fields) -> dict:
    """Training is over: `fields` (final metrics, best epoch, "stopped" when it ended early, ...) go
    into run.json with status "finished"; a finished run can no longer be resumed."""
    info.update(fields, status="finished", finished=_now())
    atomic.write_json(Path(run_dir) / RUN_FILE, info)
    return info


# ----------------------------------------------------------------------------- reading

def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirectoryError(f"{path} is missing; this is not a complete konbu run directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirectoryError(f"{path} is not valid JSON ({e}); the run directory is damaged") from None


def read_info(run_dir) -> dict:
    """run.json as a dict; RunDirectoryError when it is missing, damaged or not an object."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise RunDirectoryError(f"{path} not found. A run directory holds the run.json written by "
                                "`konbu train`; check the path, or train a run first.")
    info = read_json(path)
    if not isinstance(info, dict):
        raise RunDirectoryError(f"{path} holds a {type(info).__name__}, expected a JSON object")
    return info


def read_optional_json(run_dir, name: str) -> dict:
    """calibration.json / evaluation.json: {} when absent or unreadable (what reads it leaves it out)."""
    path = Path(run_dir) / name
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def read_metrics(run_dir) -> list:
    """metrics.jsonl's records (`run_dir` may also be the file itself); a torn last line (a run
    killed mid-write) is skipped, not an error."""
    path = Path(run_dir)
    path = path / METRICS_FILE if path.is_dir() else path
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_progress(run_dir) -> dict:
    """progress.json (where a live run is; konbu.train.events.ProgressFile): {} when absent or unreadable."""
    return read_optional_json(run_dir, PROGRESS_FILE)


class MetricsFollower:
    """Follows a run's metrics.jsonl while training writes it, from another process:

        follower = MetricsFollower(run_dir)
        reset, records = follower.poll()   # twice a second, say

    `records`: the complete lines added since the last poll, parsed. A torn last line (one being
    appended) is held back until it is complete. `reset`: the file no longer begins with what was
    returned (a resumed run rewrote it from its checkpoint), so `records` is the whole file and the
    follower's earlier records are to be dropped. Training appends mid-epoch and rewrites the file
    atomically (a new inode) at each epoch's end and at a start; the rewrite at an epoch's end begins
    with the lines already appended, so it costs a follower nothing but one read of the file."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / METRICS_FILE
        self.inode = None
        self.offset = 0                  # bytes of the complete lines returned so far
        self.digest = hashlib.sha1()     # of those bytes: a replaced file must begin with them to go on
        self.last = b""                  # the last line returned: an appended file must still hold it there

    def poll(self) -> tuple[bool, list]:
        try:
            with open(self.path, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                if inode == self.inode:  # the same file: read only what follows the last line returned
                    f.seek(self.offset - len(self.last))
                    data = f.read()
                    if data.startswith(self.last):   # not, when it was cut shorter in place
                        return False, self._take(data[len(self.last):])
                f.seek(0)
                data = f.read()
        except FileNotFoundError:
            inode, data = None, b""
        self.inode = inode
        kept = data[:self.offset]
        if len(kept) == self.offset and hashlib.sha1(kept).digest() == self.digest.digest():
            return False, self._take(data[self.offset:])    # rewritten, going on from what was returned
        reset = self.offset > 0
        self.offset, self.digest, self.last = 0, hashlib.sha1(), b""
        return reset, self._take(data)

    def _take(self, data: bytes) -> list:
        """The records of `data`'s complete lines (the bytes after self.offset), remembered as returned."""
        complete = data[:data.rfind(b"\n") + 1]   # a torn last line waits for its end
        if not complete:
            return []
        self.offset += len(complete)
        self.digest.update(complete)
        lines = complete.split(b"\n")[:-1]
        self.last = lines[-1] + b"\n"
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


def saved_config(info: dict) -> dict:
    """The training settings a run was started with (TrainConfig's fields): run.json's "config",
    with the dataset name, which run.json keeps once, at its top level."""
    return {**(info.get("config") or {}), **({"dataset": info["dataset"]} if "dataset" in info else {})}


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


def _check_format(path: Path, info: dict):
    found = info.get("format", 1)
    if not isinstance(found, int) or found > RUN_FORMAT:
        from . import __version__
        wrote = (info.get("versions") or {}).get("konbu", "a newer konbu")
        raise RunDirectoryError(f"{path} was written by konbu {wrote} (run format {found!r}); this konbu "
                                f"{__version__} reads run format {RUN_FORMAT}. Upgrade konbu to use it")


def _check_preprocess(path: Path, preprocess):
    """preprocess.json's fields, each of the type and size the serving contract says."""
    def bad(what):
        return RunDirectoryError(f"{path}: {what}; the run directory is damaged (retrain, or restore the file)")

    if not isinstance(preprocess, dict):
        raise bad(f"expected a JSON object, found {type(preprocess).__name__}")
    shape = preprocess.get("image_shape")
    if not (isinstance(shape, list) and len(shape) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 4096 for n in shape)):
        raise bad(f"\"image_shape\" must be [channels, height, width] of positive whole numbers, found {shape!r}")
    classes = preprocess.get("classes")
    if not isinstance(classes, list) or len(classes) < 2:
        raise bad(f"\"classes\" must list at least two class names, found {classes!r}")
    for key in ("mean", "std"):
        values = preprocess.get(key)
        if not (isinstance(values, list) and len(values) == shape[0] and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)):
            raise bad(f"\"{key}\" must hold one finite number per channel ({shape[0]}), found {values!r}")
    if not all(v > 0 for v in preprocess["std"]):
        raise bad(f"\"std\" must be positive, found {preprocess['std']!r}")


def _read_weights(path: Path) -> dict:
    """weights.safetensors' tensors; a pickled file under that name is refused, never unpickled."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(PICKLE_MAGIC):
        raise RunDirectoryError(f"{path} is a pickled PyTorch file, not safetensors: konbu never loads pickles "
                                "(unpickling can run code). Save the state dict with safetensors.torch.save_file")
    try:
        return load_file(path)
    except Exception as error:   # safetensors raises its own SafetensorError for a torn or foreign file
        raise RunDirectoryError(f"{path} is not a readable safetensors file ({str(error).splitlines()[0]}); the "
                                "run directory is damaged") from None


class Run:
    """A finished (or running) training run, loaded from its directory: model + preprocessing."""

    def __init__(self, path, info: dict, spec: dict, preprocess: dict, model, temperature: float = 1.0):
        self.path = Path(path)
        self.info = info              # run.json
        self.spec = spec              # model.json
        self.preprocess = preprocess  # preprocess.json
        self.model = model            # a konbu Net in eval mode, on the run's device
        # calibration.json's softmax temperature: predict reports softmax(logits / T). 1.0 (the raw
        # softmax) for runs trained before calibration existed or without a validation split.
        self.temperature = temperature

    @classmethod
    def load(cls, path, device="auto") -> "Run":
        """The run at `path` on `device` ("auto": a GPU when there is one, so a run trained there is
        evaluated and reported there; "cpu" to keep it off the GPU)."""
        from .device import pick_device

        path = Path(path)
        if path.is_file():
            raise RunDirectoryError(f"{path} is a file; pass the run directory that holds it (the folder "
                                    "`konbu train` wrote, e.g. runs/chollet-mnist-...)")
        if not path.is_dir():
            raise RunDirectoryError(f"run directory {path} not found; pass the folder `konbu train` wrote "
                                    "(it prints it at the end, e.g. runs/chollet-mnist-...)")
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if missing:
            pickled = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".pth", ".pkl", ".ckpt")
                             and p.is_file())
            hint = (f" It holds {', '.join(pickled)}: konbu never loads pickled weights (unpickling can run code); "
                    "save the state dict with safetensors.torch.save_file as weights.safetensors." if pickled else
                    " A run still training writes weights.safetensors after its first epoch.")
            raise RunDirectoryError(f"{path} is incomplete: missing {', '.join(missing)}.{hint}")
        info, spec, preprocess = (read_json(path / name) for name in REQUIRED_FILES[:3])
        _check_format(path, info)
        _check_preprocess(path / PREPROCESS_FILE, preprocess)
        if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
            raise RunDirectoryError(f"{path / MODEL_FILE}: expected an object with a \"layers\" list, found "
                                    f"{type(spec).__name__}; the run directory is damaged")
        device = pick_device(str(device))
        state = _read_weights(path / WEIGHTS_FILE)
        try:
            model = build_model(spec, tuple(preprocess["image_shape"]), len(preprocess["classes"]))
            model.load_state_dict(state)
        except (KeyError, RuntimeError, OSError, ValueError, TypeError) as e:
            raise RunDirectoryError(f"{path}: model.json, preprocess.json and weights.safetensors do not fit "
                                    f"together ({str(e).splitlines()[0]})") from None
        # NHWC weights and inputs: 1,000 chollet-mnist images took 123 ms in NCHW and 58 ms so (2 cores,
        # fp32); weights.safetensors is still written contiguous
        to_channels_last(model.to(device).eval())
        return cls(path, info, spec, preprocess, model, temperature=read_temperature(path))

    @property
    def classes(self):
        return list(self.preprocess["classes"])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def history(self):
        """The per-epoch records of metrics.jsonl."""
        return [r for r in read_metrics(self.path) if r.get("kind") == "epoch"]

    def data(self, data_dir=None):
        """(train, test) of the dataset this run was trained on, loaded once with the run's own
        options (its data folder, --image-size, --classes), so the images fit the model. `data_dir`
        overrides the folder (a run copied to a machine that keeps the data elsewhere)."""
        from .data import dataset_options, fit_to_shape, load_data

        options = dataset_options({**saved_config(self.info), **({"data_dir": str(data_dir)} if data_dir else {})})
        train, test = load_data(self.info["dataset"], **options)
        # a run started --from-run another, or from a pretrained backbone, took that model's input (size,
        # channels): its data is brought to it again (unchanged when it fits already)
        return fit_to_shape(train, test, self.preprocess["image_shape"])

    def dataset(self, split: str = "test", data_dir=None):
        """One split of the run's own dataset (see `data`)."""
        from .data import SPLITS

        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return self.data(data_dir)[SPLITS.index(split)]

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

    def logits(self, images: torch.Tensor, tta: str = "none") -> torch.Tensor:
        """Float32 logits [N, K] on the CPU for uint8 images [N, C, H, W] (normalised as trained),
        averaged over test-time augmentation's views with `tta` (konbu.inference)."""
        from .inference import logits
        return logits(self.model, images, self.preprocess["mean"], self.preprocess["std"],
                      channels_last=self.channels_last, tta=tta)

    @property
    def tta(self) -> str:
        """The test-time augmentation the run is evaluated with (its --tta; "none" by default)."""
        return (self.info.get("config") or {}).get("tta") or "none"

    @property
    def channels_last(self) -> bool:
        """Whether the model's conv weights are NHWC (Run.load makes them so), so inputs should be too."""
        # a conv whose weights are NHWC and not NCHW (a grey first layer's weights are both: any layout)
        return any(isinstance(m, torch.nn.Conv2d) and not m.weight.is_contiguous()
                   and m.weight.is_contiguous(memory_format=torch.channels_last) for m in self.model.modules())

    def probabilities(self, images: torch.Tensor | None = None, logits: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated probabilities [N, K]: softmax(logits / T), T the run's temperature. From uint8
        `images`, or from `logits` already computed for them. T > 0 never changes which class comes
        first, only how sure it sounds."""
        if logits is None:
            logits = self.logits(images)
        return (logits.float() / self.temperature).softmax(dim=-1)

    def predict(self, images, top: int = 5, reject_below: float | None = None):
        """Top-`top` predictions for one image (path, PIL image, array) or a list of them, with
        calibrated percentages. With `reject_below`, each answer is a dict whose "label" is None
        ("I don't know") when the top probability is below it (see konbu.predict.predict)."""
        from .predict import predict
        return predict(self, images, top=top, reject_below=reject_below)

    def evaluate(self, dataset=None, split: str = "test", data_dir=None, figures: bool = False,
                 tta: str | None = None) -> dict:
        """Loss, accuracy, top-5, per-class report and confusion on a Dataset (default: the run's
        own dataset's test split), with test-time augmentation `tta` (None: the run's own)."""
        from .evaluate import evaluate
        return evaluate(self, dataset, split=split, data_dir=data_dir, figures=figures, tta=tta)

    def __repr__(self):
        return f"Run({str(self.path)!r}, model={self.info.get('model')!r}, dataset={self.info.get('dataset')!r})"
