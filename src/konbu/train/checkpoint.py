"""last.ckpt/: the latest full training state, enough to continue a run exactly.

    last.ckpt/
      model.safetensors      weights
      optimizer.pt           optimizer and lr-schedule state_dicts (torch.save; read back with
                             weights_only=True, which refuses arbitrary pickled objects)
      rng.safetensors        torch CPU (and CUDA) generator states
      state.json             epoch, global step, best validation accuracy and epoch, config

The directory is built beside the old one and swapped in (atomic.replace_dir): a run killed while
saving still has a complete last.ckpt (or last.ckpt.old).
"""

import io
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .. import atomic
from ..errors import RunDirectoryError
from ..runs import save_weights


def save_checkpoint(path, model, optimizer, schedule, state: dict) -> Path:
    def fill(folder: Path):
        save_weights(folder / "model.safetensors", model)
        buffer = io.BytesIO()
        torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}, buffer)
        (folder / "optimizer.pt").write_bytes(buffer.getvalue())
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state()
        save_file(rng, folder / "rng.safetensors")
        (folder / "state.json").write_text(json.dumps(state, indent=2))
    return atomic.replace_dir(path, fill)


def load_checkpoint(path, model, optimizer=None, schedule=None) -> dict:
    """Restore weights (and optimizer, schedule, RNG) from a last.ckpt folder; returns its state.json."""
    path = Path(path)
    if not (path / "state.json").is_file() and path.with_name(path.name + ".old").is_dir():
        path = path.with_name(path.name + ".old")  # killed between the two renames of a save
    try:
        state = json.loads((path / "state.json").read_text())
        model.load_state_dict(load_file(path / "model.safetensors"))
        if optimizer is not None or schedule is not None:
            states = torch.load(path / "optimizer.pt", weights_only=True)
            if optimizer is not None:
                optimizer.load_state_dict(states["optimizer"])
            if schedule is not None:
                schedule.load_state_dict(states["schedule"])
        rng = load_file(path / "rng.safetensors")
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise RunDirectoryError(f"{path}: checkpoint is missing or damaged ({str(e).splitlines()[0]})") from None
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return state
