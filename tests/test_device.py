"""Tests for konbu.device on the CPU: device names, precision, CPU threads, autocast, the allocator
setting, and the message a bad value gets. CUDA and Apple GPUs are switched off with monkeypatch, so
the answers are the same on a machine that has one.

    PYTHONPATH=src python -m pytest tests/test_device.py -q
"""

import subprocess
import sys

import pytest
import torch

from konbu import device as device_module
from konbu.device import (autocast, autotune_convolutions, has_glibc, keep_freed_memory, pick_device, resolve_precision,
                          set_threads, to_channels_last)
from konbu.errors import ConfigError, KonbuError
from konbu.models import build_model


@pytest.fixture
def cpu_only(monkeypatch):
    """This machine as one without CUDA or an Apple GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_cpu_and_auto_without_a_gpu(cpu_only):
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device() == torch.device("cpu")


@pytest.mark.parametrize("name, message", [
    ("tpu", r"unknown device 'tpu'; expected one of auto, cpu, cuda, mps \(or cuda:N\)"),
    ("CPU", r"unknown device 'CPU'"),
    ("cuda", r"device 'cuda' asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto"),
    ("cuda:1", r"device 'cuda:1' asked for, but PyTorch sees no CUDA GPU here"),
    ("mps", r"device 'mps' asked for, but this machine has no Apple GPU; use --device cpu or auto"),
])
def test_bad_or_missing_devices_are_config_errors(cpu_only, name, message):
    with pytest.raises(ConfigError, match=message):
        pick_device(name)
    assert issubclass(ConfigError, KonbuError)   # so the CLI prints the message, not a traceback


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_named_precision_is_kept(precision):
    assert resolve_precision(precision, torch.device("cpu")) == precision


@pytest.mark.parametrize("has_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_the_cpu_follows_its_bf16_support(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: has_bf16)
    assert resolve_precision("auto", torch.device("cpu")) == expected


def test_auto_precision_elsewhere_is_fp32():
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


@pytest.mark.parametrize("precision", ["fp16", "float32", ""])
def test_unknown_precision_is_a_config_error(precision):
    with pytest.raises(ConfigError, match=rf"unknown precision '{precision}'; expected one of auto, fp32, bf16"):
        resolve_precision(precision, torch.device("cpu"))


def test_cpu_has_bf16_answers_a_bool():
    assert isinstance(device_module.cpu_has_bf16(), bool)


def test_set_threads():
    before = torch.get_num_threads()
    try:
        assert set_threads(None) == before and torch.get_num_threads() == before   # None: left alone
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(ConfigError, match="--threads must be at least 1, got 0"):
            set_threads(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_autocast_bf16_and_fp32():
    cpu = torch.device("cpu")
    first, second = torch.randn(4, 8), torch.randn(8, 3)
    with autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (first @ second).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert (first @ second).dtype == torch.float32


def test_a_grayscale_models_maps_are_channels_last_from_the_first_convolution():
    """A one-channel image is NCHW and NHWC at once, so the first convolution's output takes the layout
    its weight's strides suggest; to_channels_last must leave that weight NHWC-strided. PyTorch
    max-pools an NCHW map far slower on a CPU (chollet-mnist's first, 64 x 32 x 26 x 26: 4.5 ms
    against 0.37 ms channels_last on the AVX512 EPYC of the benchmarks)."""
    model = build_model("chollet-mnist")
    assert to_channels_last(model)
    pooled = []
    model.features.max_pooling2d.register_forward_pre_hook(lambda module, args: pooled.append(args[0]))
    for precision in ("fp32", "bf16"):
        with torch.no_grad(), autocast(torch.device("cpu"), precision):
            model(torch.rand(2, 1, 28, 28).contiguous(memory_format=torch.channels_last))
    for first_map in pooled:
        assert first_map.is_contiguous(memory_format=torch.channels_last) and not first_map.is_contiguous()


# A fresh interpreter takes steps shaped like a training step's memory: 24 tensors of 4 MiB alive
# together, then all freed. With glibc's starting thresholds (128 KiB, pinned here: glibc moves them
# as a process runs, so what a default process does varies from run to run) each step's blocks are
# mmapped and unmapped, or trimmed off the heap, and the next step faults every page in again;
# keep_freed_memory() keeps them, and so does preparing to train on the CPU (train.parts.setup_machine).
# Minor page faults count that, in a subprocess (pytest's heap stays out of it); the first steps grow
# the heap and are not counted. Without glibc there is no mallopt: keep_freed_memory says so.
FAULTS = """
import ctypes, resource, sys, torch
from konbu.device import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, keep_freed_memory
mallopt = ctypes.CDLL(None).mallopt
mallopt(M_MMAP_THRESHOLD, 128 << 10), mallopt(M_TRIM_THRESHOLD, 128 << 10)
applied = None
if sys.argv[1] == "keep":
    applied = keep_freed_memory()
elif sys.argv[1] == "train":
    from konbu.train import TrainConfig
    from konbu.train.parts import setup_machine
    applied = setup_machine(TrainConfig(device="cpu"))[0]
def step():
    tensors = [torch.ones(1 << 20) for _ in range(24)]
    return sum(t[0].item() for t in tensors)
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode):
    """(what the mode returned, minor page faults of five steps) in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
    applied, count = out.stdout.split()
    return applied, int(count)


def test_keep_freed_memory_reuses_a_steps_pages_instead_of_faulting_them_in():
    if not has_glibc():
        assert keep_freed_memory() is False
        return
    assert faults("returned")[1] > 5 * 24 * 1024 * 0.9    # every step's pages faulted in anew
    applied, kept = faults("keep")
    assert applied == "True" and kept < 1024               # the heap's pages, reused


def test_training_on_the_cpu_keeps_freed_memory():
    if not has_glibc():
        assert keep_freed_memory() is False
        return
    device, kept = faults("train")
    assert device == "cpu" and kept < 1024


def test_cudnn_autotuning_is_for_cuda_runs_that_need_not_repeat_bit_for_bit():
    was = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        assert not autotune_convolutions(torch.device("cpu"), False)
        assert not autotune_convolutions(torch.device("cuda", 0), True)
        assert torch.backends.cudnn.benchmark is False
        assert autotune_convolutions(torch.device("cuda", 0), False)     # a device object: no GPU needed
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = was
