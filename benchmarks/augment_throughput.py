"""What does on-device augmentation cost next to a training step? images/s per policy, and ratios.

For a 64 x 1 x 28 x 28 batch (chollet-mnist's, batch 64) and a 128 x 3 x 32 x 32 batch
(cifar10-deep's, batch 128), it times each policy's augment() call and the model's training step
(forward + backward + RMSprop step) on the same batch, and prints augment images/s and the ratio
augment time / step time (0.10: augmentation adds 10% to a step). From the repository root:

    .venv/bin/python benchmarks/augment_throughput.py --threads 2
    .venv/bin/python benchmarks/augment_throughput.py --device cuda

Each figure is the median of --repeats timed calls after --warmup untimed ones. Nothing here
asserts a timing: on a shared machine the ratios are the figure to trust, not the absolute rates.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from konbu.models import build_model
from konbu.train.augment import POLICIES, make_augment

EVERYTHING = "rotate=15,shift=0.1,zoom=0.1,shear=0.2,hflip,crop=4,cutout=8,mixup=0.2,cutmix=1.0"
CASES = [("chollet-mnist", (64, 1, 28, 28)), ("cifar10-deep", (128, 3, 32, 32))]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(function, device, warmup, repeats):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        function()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'batch':>16}  {'policy':<32} {'augment img/s':>14} {'ms':>8} {'ratio to step':>14}")
    for model_name, shape in CASES:
        batch, channels, height, width = shape
        x = torch.rand(shape, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        model = build_model(model_name, (channels, height, width), 10).to(device)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)

        def step():
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

        step_s = median_seconds(step, device, args.warmup, args.repeats)
        label = "x".join(map(str, shape))
        print(f"{label:>16}  {model_name + ' train step':<32} {batch / step_s:>14,.0f} {step_s * 1e3:>8.2f} {1:>14.2f}")
        for policy in [*POLICIES, EVERYTHING]:
            augment = make_augment(policy)
            seconds = median_seconds(lambda: augment(x, y, 10), device, args.warmup, args.repeats)
            print(f"{label:>16}  {policy[:32]:<32} {batch / seconds:>14,.0f} {seconds * 1e3:>8.2f} "
                  f"{seconds / step_s:>14.2f}")


if __name__ == "__main__":
    main()
