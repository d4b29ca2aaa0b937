"""last.ckpt/: the latest full training state, enough to continue a run exactly.

    last.ckpt/
      model.safetensors      weights
      ema.safetensors        the weights' moving average (with --ema)
      lookahead.safetensors  the average the model is pulled back to (with --lookahead)
      optimizer.pt           optimizer and lr-schedule state_dicts (torch.save; read back with
                             weights_only=True, which refuses arbitrary pickled objects)
      rng.safetensors        torch CPU and CUDA generator states
      progress.safetensors   mid-epoch only: the epoch's shuffled order and its running loss/correct sums
      state.json             epoch, batch within it, global step, best epoch, early-stopping and guard
                             state, the steps of the unfinished epoch, numpy/python RNG states, config

    save_checkpoint(run_dir / "last.ckpt", model, optimizer, schedule, state, ema=ema, tensors=tensors)
    state, tensors = load_checkpoint(run_dir / "last.ckpt", model, optimizer, schedule, ema=ema)

The directory is built beside the old one and swapped in (atomic.replace_dir): a run killed while
saving still has a complete last.ckpt (or last.ckpt.old).
"""

import io
import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .. import atomic
from ..errors import RunDirectoryError
from ..runs import save_weights


def rng_states() -> tuple[dict, dict]:
    """(tensors, json) holding every random generator a training step may draw from."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{index}"] = state
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return tensors, {"numpy": [kind, keys.tolist(), position, has_gauss, cached],
                     "python": [version, list(python_state), gauss_next]}


def set_rng_states(tensors: dict, states: dict):
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda{i}"] for i in range(len(tensors)) if f"cuda{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
    if "numpy" in states:
        kind, keys, position, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    if "python" in states:
        version, python_state, gauss_next = states["python"]
        random.setstate((version, tuple(python_state), gauss_next))


def save_checkpoint(path, model, optimizer, schedule, state: dict, ema=None, tensors: dict | None = None,
                    lookahead=None) -> Path:
    rng_tensors, rng_json = rng_states()

    def fill(folder: Path):
        save_weights(folder / "model.safetensors", model)
        if ema is not None:
            save_weights(folder / "ema.safetensors", ema.module)
        if lookahead is not None:
            _save_tensors(lookahead.state_dict(), folder / "lookahead.safetensors")
        buffer = io.BytesIO()
        torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}, buffer)
        (folder / "optimizer.pt").write_bytes(buffer.getvalue())
        save_file(rng_tensors, folder / "rng.safetensors")
        if tensors:
            _save_tensors(tensors, folder / "progress.safetensors")
        (folder / "state.json").write_text(json.dumps({**state, "rng": rng_json}))
    return atomic.replace_dir(path, fill)


def _save_tensors(tensors: dict, path: Path):
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, path)


def checkpoint_path(path) -> Path:
    """last.ckpt, or last.ckpt.old when a run was killed between the two renames of a save."""
    path = Path(path)
    if not (path / "state.json").is_file() and path.with_name(path.name + ".old").is_dir():
        return path.with_name(path.name + ".old")
    return path


def read_state(path) -> dict:
    """state.json of a checkpoint, without loading anything else."""
    path = checkpoint_path(path)
    try:
        return json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise RunDirectoryError(f"{path}: checkpoint is missing or damaged ({str(e).splitlines()[0]})") from None


def load_checkpoint(path, model, optimizer=None, schedule=None, ema=None, restore_rng: bool = True, lookahead=None):
    """Restore weights (and optimizer, schedule, EMA, lookahead, RNG) from a last.ckpt folder.

    Returns (state.json, progress tensors: {} unless the checkpoint was taken mid-epoch)."""
    path = checkpoint_path(path)
    try:
        state = json.loads((path / "state.json").read_text())
        model.load_state_dict(load_file(path / "model.safetensors"))
        if ema is not None:
            ema.module.load_state_dict(load_file(path / "ema.safetensors"))
        if lookahead is not None:
            lookahead.load_state_dict(load_file(path / "lookahead.safetensors"))
        if optimizer is not None or schedule is not None:
            states = torch.load(path / "optimizer.pt", weights_only=True)
            if optimizer is not None:
                optimizer.load_state_dict(states["optimizer"])
            if schedule is not None:
                schedule.load_state_dict(states["schedule"])
        rng = load_file(path / "rng.safetensors")
        progress = load_file(path / "progress.safetensors") if (path / "progress.safetensors").is_file() else {}
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise RunDirectoryError(f"{path}: checkpoint is missing or damaged ({str(e).splitlines()[0]})") from None
    if restore_rng:
        set_rng_states(rng, state.get("rng", {}))
    return state, progress
