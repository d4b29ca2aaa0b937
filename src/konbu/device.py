"""Where and how fast tensors run: device choice, CPU threads, and mixed precision.

`auto` picks cuda, then mps, then cpu. Precision `auto` uses bfloat16 autocast where the hardware
does bf16 natively (CUDA with bf16 support; CPUs with AVX512-BF16 or AMX through oneDNN), else
float32. On this project's 2-core Xeon, bf16 autocast with channels_last took chollet-mnist from
about 4,500 to about 9,600 training images/s with the same accuracy (see benchmarks/). Training on
a CPU also keeps the memory a step frees in the process (keep_freed_memory): on an AVX2-only CPU,
reusing those pages instead of faulting fresh ones in was the largest speed lever.
"""

import ctypes
import platform
import shutil
from contextlib import nullcontext

import torch

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
C_COMPILERS = ("g++", "c++", "clang++")   # what inductor's CPU code can be built with
IN_HOST_TIME = ("cpu",)   # device types whose work the host waits for as it goes: reading a value there is free


def pick_device(name: str = "auto") -> torch.device:
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device {name!r}; expected one of {', '.join(DEVICES)} (or cuda:N)")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' asked for, but this machine has no Apple GPU; use --device cpu or auto")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """Context for the forward pass: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def to_channels_last(model, device=None, on: bool = True) -> bool:
    """Move `model` to `device` in NHWC memory format when `on` and it has a conv layer (oneDNN's fast
    CPU layout, and tensor cores'); returns whether it did. Its inputs should then be NHWC too."""
    channels_last = on and any(isinstance(module, torch.nn.Conv2d) for module in model.modules())
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return channels_last


def set_threads(threads):
    """Use `threads` CPU threads for intra-op work (None: leave PyTorch's default)."""
    if threads is None:
        return torch.get_num_threads()
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    return threads


def autotune_convolutions(device: torch.device, deterministic: bool) -> bool:
    """On a CUDA device, let cuDNN time its convolution algorithms for each shape once and keep the
    fastest (training here has fixed shapes: one batch size, one image size), as fastai does by
    default; not with --deterministic, whose runs must repeat bit for bit. Whether it turned it on."""
    if device.type != "cuda" or deterministic:
        return False
    torch.backends.cudnn.benchmark = True
    return True


def runs_ahead(device: torch.device) -> bool:
    """Whether the host only queues `device`'s work (a GPU): there, reading a device value or copying
    from the host's memory waits for every queued step, so the training loop does it every few steps."""
    return device.type not in IN_HOST_TIME


def check_compile(mode: str, device: torch.device):
    """Refuse --compile where it cannot run, before a run directory is made: torch.compile builds a
    CPU model's kernels as C++, so a CPU needs a C++ compiler."""
    if mode != "none" and device.type == "cpu" and not any(shutil.which(name) for name in C_COMPILERS):
        raise ConfigError("--compile on a CPU needs a C++ compiler (g++ or clang++; Debian and Ubuntu: "
                          "apt-get install g++), which this machine lacks; or leave --compile out")


def compiled(module: torch.nn.Module, mode: str) -> torch.nn.Module:
    """What a training step calls: `module` itself, or torch.compile of it in `mode` (reduce-overhead
    also replays each step as a CUDA graph on a GPU). Its parameters are the module's own, so the
    optimizer, checkpoints and saved weights see no difference; the first steps pay the compilation."""
    if mode == "none":
        return module
    return torch.compile(module, mode=None if mode == "default" else mode)


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20        # glibc's largest dynamic threshold: a step's activations stay on the heap
TRIM_THRESHOLD = 1 << 30         # keep up to 1 GiB of freed heap for the next step instead of returning it


def has_glibc() -> bool:
    """Whether this process runs on glibc, whose malloc keep_freed_memory tunes."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse the memory a training step frees rather than give it back to the
    OS: without this, each step's megabyte-sized activations and gradients come from fresh pages
    (munmap, trim, then page faults zeroing them again), 2,000 faults a step for chollet-mnist at
    batch 64. On a 2-core AVX2 EPYC that took its step from 23-27 ms to 17-22 ms; on an AVX512-BF16
    EPYC it was within noise (benchmarks/HISTORY.md). The process keeps its peak heap until it exits,
    which a training process reaches anyway. Returns whether it applied (glibc only)."""
    if not has_glibc():
        return False
    mallopt = ctypes.CDLL(None).mallopt   # the process's own symbols: glibc's, loaded already
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
