"""`--from-run RUN`: start training from a konbu run's model and weights (transfer learning).

    run = konbu.fit(from_run="runs/mnist", dataset="digits", steps=500)    # MNIST -> sklearn's digits
    konbu train --from-run runs/mnist --dataset kmnist

The model is the run's own (its model.json; a --model naming another is a ConfigError). The new
dataset is brought to the run's input (preprocess.json's image_shape): resized as --image-size does,
grey <-> RGB converted. The weights come from the run's weights.safetensors; when the class count
differs, the head (the last dense layer) is rebuilt for the new count, freshly initialised, and every
other weight is copied. The inputs are normalised with the *source run's* mean/std, not the new
data's: the copied weights were learned on inputs scaled that way.

A resumed run never reads RUN again: its last.ckpt has the weights, and its own model.json and
preprocess.json the model and input (`resumed_start`).
"""

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, RunDirectoryError
from ..runs import MODEL_FILE, PREPROCESS_FILE, Run, read_json


@dataclass
class Start:
    """What a run started --from-run another takes from it."""

    spec: dict                 # {"name", "layers", "source"}: the layers with the head's units as "classes"
    image_shape: tuple         # (C, H, W) the model takes; the data is brought to it
    mean: tuple                # the source's input statistics (see the module's docstring)
    std: tuple
    num_classes: int           # the source's class count: the head is kept when the new data has as many
    head: int                  # the head layer's index in spec["layers"]: what is replaced
    record: dict               # run.json's "from_run" (without "head", which build_parts settles)
    state: dict | None = None  # the source's weights; None on resume (last.ckpt has them)


def given_model(given: dict) -> dict:
    """The settings with `model` set to the --from-run run's (read from its model.json), `from_run` as a
    string; a --model naming another model is a ConfigError naming both. Unchanged without from_run."""
    if not given.get("from_run"):
        return given
    path = Path(os.fspath(given["from_run"]))
    _check_dir(path)
    name = _spec_of(read_json(path / MODEL_FILE), path)["name"]
    model = given.get("model")
    if model is not None and model != name:
        raise ConfigError(f"--model {model} and --from-run {path} disagree: that run's model is {name}. "
                          "Drop --model (the run's model is used)")
    return {**given, "from_run": str(path), "model": name}


def read_start(path) -> Start:
    """The --from-run run at `path`: model, input, weights; RunDirectoryError when it is missing or damaged."""
    path = Path(path)
    _check_dir(path)
    try:
        run = Run.load(path, device="cpu")
    except RunDirectoryError as error:
        raise RunDirectoryError(f"--from-run {path}: {error}") from None
    start = _start(run.spec, run.preprocess, path)
    start.record = {"path": str(path), "name": run.info.get("name", path.name), "dataset": run.info.get("dataset")}
    start.state = {name: tensor for name, tensor in run.model.state_dict().items()}
    return start


def resumed_start(run_dir) -> Start:
    """A resumed --from-run run's model and input, from its own model.json and preprocess.json."""
    run_dir = Path(run_dir)
    return _start(read_json(run_dir / MODEL_FILE), read_json(run_dir / PREPROCESS_FILE), run_dir)


def load_weights(model, start: Start) -> str:
    """Copy the source's weights into `model`: all of them ("kept") when the class count is the
    source's, else all but the head's, which keeps its fresh init ("replaced")."""
    if model.num_classes == start.num_classes:
        model.load_state_dict(start.state)
        return "kept"
    layer = model.layers[start.head]
    prefix = f"{layer.part}.{layer.name}."   # the state-dict keys of that layer (Net: features, then head)
    state = {name: tensor for name, tensor in start.state.items() if not name.startswith(prefix)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith(prefix) for name in missing):
        raise RunDirectoryError(f"--from-run {start.record['path']}: its weights do not fit its model.json")
    return "replaced"


def _check_dir(path: Path):
    if not path.is_dir():
        raise RunDirectoryError(f"--from-run {path}: no such run directory; pass a folder `konbu train` wrote "
                                "(e.g. runs/chollet-mnist-...)")


def _spec_of(model_json, path: Path) -> dict:
    if not isinstance(model_json, dict) or not isinstance(model_json.get("layers"), list) or not model_json["layers"]:
        raise RunDirectoryError(f"{path / MODEL_FILE}: expected an object with a \"layers\" list; the run directory "
                                "is damaged")
    return {"name": str(model_json.get("name") or path.name), "layers": model_json["layers"],
            "source": model_json.get("source", f"run {path.name}")}


def _start(model_json, preprocess, path: Path) -> Start:
    """The Start of a run's model.json and preprocess.json (weights and record filled in by the caller)."""
    spec = _spec_of(model_json, path)
    index = _head_index(spec["layers"], path)
    layers = [dict(layer) for layer in spec["layers"]]
    layers[index]["units"] = "classes"     # model.json holds the resolved count: the head follows the data's
    return Start({**spec, "layers": layers}, tuple(preprocess["image_shape"]), tuple(preprocess["mean"]),
                 tuple(preprocess["std"]), len(preprocess["classes"]), index, {})


def _head_index(layers: list, path: Path) -> int:
    """The head: the last layer with units "classes", else the last dense layer (model.json resolves "classes")."""
    dense = [i for i, layer in enumerate(layers) if isinstance(layer, dict) and layer.get("type") == "dense"]
    marked = [i for i in dense if layers[i].get("units") == "classes"]
    if not (marked or dense):
        raise ConfigError(f"--from-run {path}: its model has no dense layer to serve as the head")
    return (marked or dense)[-1]
