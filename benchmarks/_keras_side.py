"""The Keras half of `train_vs_keras.py`: a tutorial model in Keras 3 on the TensorFlow CPU backend.

It runs in its own virtualenv, never konbu's (TensorFlow is not a konbu dependency), and is
normally started by `train_vs_keras.py`, which exports the data and reads the JSON line this prints.
To run it by hand, from the repository root, on an .npz written by that script:

    benchmarks/.venv-keras/bin/python benchmarks/_keras_side.py DATA.npz --model lenet --epochs 5 --threads 2

The models are konbu's zoo entries of the same names (src/konbu/models/zoo.py), layer for layer.

The .npz holds `train_images`/`test_images` uint8 [N, 1, 28, 28] and `train_labels`/`test_labels`
int64 [N]. The last line on stdout is one JSON object: images/s over epochs 2..E, epoch times,
test accuracy, parameter count and versions.
"""

import argparse
import json
import os
import time

# Set before TensorFlow is imported: it reads these once, when its thread pools are made.
# Level 2 hides the info/warning banners so stdout stays one parsable JSON line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _conv(filters, size, padding="valid"):
    from keras import layers
    return layers.Conv2D(filters, size, padding=padding, activation="relu")


def _chollet_mnist():   # Deep Learning with Python 5.1
    from keras import layers
    return [_conv(32, 3), layers.MaxPooling2D(2), _conv(64, 3), layers.MaxPooling2D(2), _conv(64, 3),
            layers.Flatten(), layers.Dense(64, activation="relu")]


def _tfjs_mnist():      # tfjs-examples/mnist
    from keras import layers
    return [_conv(16, 3), layers.MaxPooling2D(2, 2), _conv(32, 3), layers.MaxPooling2D(2, 2), _conv(32, 3),
            layers.Flatten(), layers.Dense(64, activation="relu")]


def _deep_mnist():      # TensorFlow's "Deep MNIST for experts"
    from keras import layers
    return [_conv(32, 5, "same"), layers.MaxPooling2D(2), _conv(64, 5, "same"), layers.MaxPooling2D(2),
            layers.Flatten(), layers.Dense(1024, activation="relu"), layers.Dropout(0.5)]


def _lenet():           # Deep Learning with Keras, ch. 3
    from keras import layers
    return [_conv(20, 5, "same"), layers.MaxPooling2D(2, 2), _conv(50, 5, "same"), layers.MaxPooling2D(2, 2),
            layers.Flatten(), layers.Dense(500, activation="relu")]


# name -> the layers between the 28x28x1 input and the Dense(10) softmax output
MODELS = {"chollet-mnist": _chollet_mnist, "tfjs-mnist": _tfjs_mnist, "deep-mnist": _deep_mnist, "lenet": _lenet}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help=".npz written by train_vs_keras.py")
    parser.add_argument("--model", choices=sorted(MODELS), default="chollet-mnist")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    if arguments.epochs < 2:
        parser.error("--epochs must be at least 2: epoch 1 is warm-up and is not timed")
    return arguments


arguments = parse_arguments()
os.environ["TF_NUM_INTRAOP_THREADS"] = str(arguments.threads)
os.environ["TF_NUM_INTEROP_THREADS"] = str(arguments.threads)
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402  (after the environment above, which TensorFlow reads on import)
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

# Also through the API: the environment variables are a fallback on older TensorFlow releases.
tf.config.threading.set_intra_op_parallelism_threads(arguments.threads)
tf.config.threading.set_inter_op_parallelism_threads(arguments.threads)
keras.utils.set_random_seed(arguments.seed)

# ------------------------------------------------------------------------------ Prepare the data

arrays = np.load(arguments.data)
# konbu holds images channels-first [N, C, H, W]; Keras's Conv2D default is channels-last [N, H, W, C].
# Scaled to [0, 1] as in Deep Learning with Python 5.1 (`train_images.astype("float32") / 255`).
train_images = arrays["train_images"].transpose(0, 2, 3, 1).astype("float32") / 255
test_images = arrays["test_images"].transpose(0, 2, 3, 1).astype("float32") / 255
train_labels = arrays["train_labels"]
test_labels = arrays["test_labels"]

# ------------------------------------------------------------------------------- Build the model

model = keras.Sequential([keras.Input(shape=(28, 28, 1)), *MODELS[arguments.model](),
                          layers.Dense(10, activation="softmax")], name=arguments.model.replace("-", "_"))
model.compile(
    # Keras's RMSprop defaults (rho 0.9, epsilon 1e-7); the PyTorch rows copy them.
    optimizer=keras.optimizers.RMSprop(learning_rate=arguments.learning_rate),
    loss="sparse_categorical_crossentropy",
    # The book's metric; konbu also reports train accuracy each epoch, so both pay for one.
    metrics=["accuracy"],
)


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds per epoch, from Keras's own epoch hooks (fit's data pipeline included)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


# ------------------------------------------------------------------------------------------ Train

timer = EpochTimer()
# shuffle=True is fit's default; said here because the exported train split is sorted by label.
history = model.fit(train_images, train_labels, batch_size=arguments.batch_size, epochs=arguments.epochs,
                    shuffle=True, verbose=0, callbacks=[timer])

# --------------------------------------------------------------------------------------- Evaluate

test_loss, test_accuracy = model.evaluate(test_images, test_labels, batch_size=1000, verbose=0)
# Epoch 1 traces and compiles the train step: it is reported but not counted in images/s.
timed_seconds = sum(timer.seconds[1:])
print(json.dumps({
    "framework": "keras",
    "keras_version": keras.__version__,
    "tensorflow_version": tf.__version__,
    "backend": keras.backend.backend(),
    "parameters": model.count_params(),
    "threads": arguments.threads,
    "epoch_seconds": timer.seconds,
    "images_per_second": len(train_images) * (arguments.epochs - 1) / timed_seconds,
    "final_train_loss": float(history.history["loss"][-1]),
    "test_loss": float(test_loss),
    "test_accuracy": float(test_accuracy),
}))
