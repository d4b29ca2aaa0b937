"""The Keras half of `predict_latency.py`: chollet-mnist's predict in Keras 3 on the TensorFlow CPU backend.

Run in the Keras virtualenv by `predict_latency.py`, which writes the .npz of test images
(uint8 [N, 1, 28, 28]) and reads the JSON line this prints last. By hand, from the repository root:

    benchmarks/.venv-keras/bin/python benchmarks/_keras_predict.py DATA.npz --repeats 300 --threads 2

Latency does not depend on the weights, so the model is the book's network as built, untrained.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # before TensorFlow's import: stdout stays one JSON line

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("data")
parser.add_argument("--repeats", type=int, default=300)
parser.add_argument("--threads", type=int, default=2)
arguments = parser.parse_args()
os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(arguments.threads)
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

from _timing import timed  # noqa: E402  (beside this script: the Keras virtualenv has no konbu)

tf.config.threading.set_intra_op_parallelism_threads(arguments.threads)
tf.config.threading.set_inter_op_parallelism_threads(arguments.threads)

images = np.load(arguments.data)["test_images"].transpose(0, 2, 3, 1).astype("float32") / 255
model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Conv2D(64, 3, activation="relu"), layers.Flatten(),
    layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax"),
])


one = images[:1]
batch = images[:1000]
print(json.dumps({
    "keras_version": keras.__version__, "tensorflow_version": tf.__version__,
    "predict_one_ms": timed(lambda: model.predict(one, verbose=0), arguments.repeats),
    "call_one_ms": timed(lambda: model(one, training=False).numpy(), arguments.repeats),
    "predict_batch_ms": timed(lambda: model.predict(batch, batch_size=len(batch), verbose=0), 10),
    "batch": len(batch),
}))
