"""How fast does a trained konbu run answer? `Run.predict` against Keras's `predict`, one image and a batch.

Both sides run chollet-mnist (Deep Learning with Python 5.1) on the same mnist-sample test images, with
the same number of CPU threads, one after the other. From the repository root:

    .venv/bin/python benchmarks/predict_latency.py --threads 2

Keras runs in its own virtualenv (see train_vs_keras.py for how to make it). Rows:

- `Run.predict(image)`: konbu's whole user path for one 28x28 array: MNIST-style centring, normalising,
  the forward pass, calibrated softmax, the top-5 labels.
- `Run.logits(batch)`: a uint8 tensor of 1,000 test images through the model (konbu's evaluate path).
- Keras `model.predict(x)` for one image and for the batch, and `model(x, training=False)`, the call
  Keras's documentation recommends for small inputs.

Each single-image figure is the median (p50) and 99th percentile over --repeats calls after 5 untimed
ones; the batch figure is the median of 10. Nothing here asserts a timing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPOSITORY = Path(__file__).resolve().parent.parent
KERAS_SIDE = REPOSITORY / "benchmarks" / "_keras_predict.py"
KERAS_PYTHON = REPOSITORY / "benchmarks" / ".venv-keras" / "bin" / "python"

try:
    import konbu
except ImportError:
    sys.path.insert(0, str(REPOSITORY / "src"))   # a bare checkout: use its src/ directly
    import konbu
from konbu.data import load_dataset  # noqa: E402

from _timing import timed  # noqa: E402  (beside this script, shared with _keras_predict.py)


def percentile(values, q):
    return float(np.percentile(values, q))


def keras_side(arguments, data_path) -> dict:
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=str(arguments.threads))
    completed = subprocess.run([str(arguments.keras_python), str(KERAS_SIDE), str(data_path), "--repeats",
                                str(arguments.repeats), "--threads", str(arguments.threads)],
                               capture_output=True, text=True, env=environment, cwd=REPOSITORY)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        sys.exit(f"the Keras side failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(lines[-1])


def konbu_side(arguments, test) -> dict:
    with tempfile.TemporaryDirectory(prefix="konbu-latency-") as directory:
        konbu.fit(model="chollet-mnist", dataset="mnist-sample", epochs=1, threads=arguments.threads,
                  out=str(Path(directory) / "run"), quiet=True)
        run = konbu.Run.load(Path(directory) / "run")
        one = test.images[0, 0].numpy()
        batch = test.images[:1000]
        return {"predict_one_ms": timed(lambda: run.predict(one), arguments.repeats),
                "logits_batch_ms": timed(lambda: run.logits(batch), 10), "batch": len(batch),
                "precision": run.info.get("precision")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--keras-python", type=Path, default=KERAS_PYTHON)
    arguments = parser.parse_args()
    if not arguments.keras_python.exists():
        sys.exit(f"Keras virtualenv not found: {arguments.keras_python} (see benchmarks/README.md)")
    torch.set_num_threads(arguments.threads)
    test = load_dataset("mnist-sample", "test")
    with tempfile.TemporaryDirectory(prefix="konbu-latency-data-") as directory:
        data_path = Path(directory) / "test.npz"
        np.savez(data_path, test_images=test.images.numpy())
        keras = keras_side(arguments, data_path)   # first, while this process is idle
    mine = konbu_side(arguments, test)

    print(f"{arguments.threads} threads; single image: p50 / p99 over {arguments.repeats} calls; "
          f"batch of {mine['batch']:,}: median of 10")
    rows = [(f"konbu Run.predict(image) (trained {mine['precision']})", mine["predict_one_ms"]),
            (f"Keras {keras['keras_version']} model.predict(x[:1])", keras["predict_one_ms"]),
            ("Keras model(x[:1], training=False)", keras["call_one_ms"])]
    for name, values in rows:
        print(f"  {name:48s} {percentile(values, 50):8.2f} ms  {percentile(values, 99):8.2f} ms")
    konbu_batch = statistics.median(mine["logits_batch_ms"])
    keras_batch = statistics.median(keras["predict_batch_ms"])
    for name, value in (("konbu Run.logits(1,000 images)", konbu_batch),
                        ("Keras model.predict(1,000 images)", keras_batch)):
        print(f"  {name:48s} {value:8.2f} ms  ({mine['batch'] / value * 1000:,.0f} images/s)")
    print(f"single image, Keras predict / konbu predict: "
          f"{percentile(keras['predict_one_ms'], 50) / percentile(mine['predict_one_ms'], 50):.1f}x; "
          f"batch, Keras / konbu: {keras_batch / konbu_batch:.1f}x")


if __name__ == "__main__":
    main()
