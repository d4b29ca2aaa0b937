"""The processes a run trains in: one (the default), or a data-parallel group (torch.distributed).

    world = World.from_environment()      # torchrun's (or `konbu train --nproc`'s) RANK, WORLD_SIZE, ...
    world.join(device)                    # init_process_group: gloo on CPU, nccl on CUDA
    x, y, share = world.shard(x, y)       # this rank's slice of the global batch
    totals = world.step_totals(loss, output, y, share, pressed, images)   # loss, accuracy over all ranks

Data parallelism here keeps a run the same run whatever the number of processes: every rank loads
the same data, DistributedDataParallel starts every rank from rank 0's weights, every epoch's order
is rank 0's (broadcast), and each step every rank takes its contiguous slice of the same global
batch of --batch-size images. A rank's loss is scaled by `share` (its images x ranks / the batch's
images), so DDP's mean of the ranks' gradients is the gradient of the whole batch's mean loss, even
for an uneven last batch. The step's loss, correct count and Ctrl-C flag are summed over the ranks
in one small all-reduce, started before the backward pass and awaited after it: every rank then
sees the same numbers, so the divergence guard, the records and a Ctrl-C stop decide the same on
every rank. Reading the flag is a host sync; on GPUs the loop reads it every few steps (the same
steps on every rank), so nothing waits for the GPUs each step. What differs per rank: the images,
the augmentation and dropout draws (seeded by rank), and BatchNorm's batch statistics (per rank, as
DDP does; its running statistics are rank 0's, broadcast each step).

Only rank 0 writes: the run directory, the checkpoints, the metrics and the report. Validation and
the choice of the best epoch happen there; its decision to stop (early stopping) is broadcast.
"""

import os
from dataclasses import dataclass

import torch

from ..errors import ConfigError

# the environment torchrun sets for each process it starts (and `konbu train --nproc`, launch.py)
RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE = "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @classmethod
    def from_environment(cls) -> "World":
        size = int(os.environ.get(WORLD_SIZE, "1"))
        if size <= 1:
            return cls()
        return cls(int(os.environ[RANK]), size, int(os.environ.get(LOCAL_RANK, "0")),
                   int(os.environ.get(LOCAL_WORLD_SIZE, str(size))))

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the run directory and prints."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's GPU (one per local rank), or `device` itself on a CPU."""
        if not self.distributed or device.type == "cpu":
            return device
        if device.type != "cuda":
            raise ConfigError(f"several processes train on CPUs (gloo) or CUDA GPUs (nccl), not on {device.type}; "
                              "pass --device cpu, or train in one process")
        if self.local_size > torch.cuda.device_count():
            raise ConfigError(f"{self.local_size} processes on this machine but {torch.cuda.device_count()} CUDA "
                              "GPUs: one process per GPU (--nproc, or torchrun's --nproc-per-node)")
        return torch.device("cuda", self.local_rank)

    def threads(self, threads: int | None) -> int | None:
        """CPU threads per rank: as given, else the cores shared out among this machine's ranks (small
        convolutions run better as one-thread processes than as one process with two threads)."""
        if threads is not None or not self.distributed:
            return threads
        return max(1, (os.cpu_count() or 1) // self.local_size)

    def join(self, device: torch.device):
        """Join the process group (its rendezvous from MASTER_ADDR and MASTER_PORT)."""
        if self.distributed and not torch.distributed.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=self.rank,
                                                 world_size=self.size)

    def leave(self):
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """What the training step calls: `model` itself, or DDP around it (built again when --fine-tune
        unfreezes: DDP syncs only the parameters that trained when it was built)."""
        if not self.distributed:
            return model
        device = next(model.parameters()).device
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def shard(self, x: torch.Tensor, y: torch.Tensor):
        """(images, labels, share) of this rank in the global batch (x, y): a contiguous slice. A rank
        left without an image (a last batch smaller than the ranks) runs one with share 0, so it still
        joins the gradient all-reduce but adds nothing to it."""
        if not self.distributed:
            return x, y, 1.0
        total = y.shape[0]
        start, end = self.rank * total // self.size, (self.rank + 1) * total // self.size
        if end == start:
            return x[:1], y[:1], 0.0
        return x[start:end], y[start:end], (end - start) * self.size / total

    def step_totals(self, loss: torch.Tensor, output: torch.Tensor, y: torch.Tensor, share: float, pressed: bool,
                    images: int):
        """StepTotals of this step over all ranks: the all-reduce starts now and is awaited by .get().
        `images`: the global batch's (every rank knows it, so it is not sent)."""
        correct = (output.argmax(1) == y).sum()
        if not share:   # a rank without an image ran a stand-in one: it adds nothing
            correct = correct * 0
        if not self.distributed:
            return StepTotals(loss.detach(), correct, images, pressed)
        mine = y.shape[0] if share else 0
        # torch.full, not torch.tensor: a copy from the host's memory to a GPU waits for the GPU
        packed = torch.stack([loss.detach().float() * mine, correct.float(),
                              torch.full((), float(pressed), device=loss.device)])
        return StepTotals(packed, None, images, None, torch.distributed.all_reduce(packed, async_op=True))

    def broadcast(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Rank 0's `tensor` on every rank (int64 or float, any shape), on the CPU."""
        if not self.distributed:
            return tensor
        on = tensor.to(device)   # nccl sends from GPU memory; gloo from either
        torch.distributed.broadcast(on, src=0)
        return on.cpu()

    def broadcast_object(self, value):
        """Rank 0's `value` (a picklable object: an epoch's record) on every rank."""
        if not self.distributed:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def seed(self, seed: int, step: int):
        """Seed the ranks after rank 0 apart (rank 0 keeps its generators: with one rank, nothing
        changes), so their augmentation and dropout draws differ; `step` parts a resumed run's draws
        from those before it."""
        if self.rank:
            torch.manual_seed((seed + 1_000_003 * self.rank + 7_919 * step) % 2**63)


class StepTotals:
    """A step's (loss, correct, images, pressed) over all ranks; loss is the batch's mean, and loss and
    correct stay 0-d device tensors (no host sync until a record or the guard reads them)."""

    def __init__(self, loss, correct, images, pressed, work=None):
        self._values = (loss, correct, images, pressed)
        self._work = work

    def get(self, read_pressed: bool = True):
        """The totals; over several ranks, the Ctrl-C flag costs a host sync, so a loop whose device
        runs ahead of the host (a GPU) reads it every few steps (`read_pressed`), at the same steps
        on every rank: a press stays set, so they all stop after the same step, a little later."""
        if self._work is None:
            return self._values
        self._work.wait()
        packed, _, images, _ = self._values
        pressed = bool(packed[2].item()) if read_pressed else False
        return packed[0] / max(images, 1), packed[1].long(), images, pressed
