"""The seed architectures of the tutorials konbu's users learned from, as layer lists.

Each one is the tutorial's model with the input shape and class count left open: `konbu train`
fits it to the dataset (channels, image size, classes). Dense(classes) is the output layer; the
softmax of the tutorials is applied by the loss (cross-entropy on logits, numerically safer) and by
predict().
"""

from ._registry import register_model


def conv(filters, kernel_size, padding="valid", activation="relu"):
    return {"type": "conv2d", "filters": filters, "kernel_size": kernel_size, "padding": padding,
            "activation": activation}


def pool(size=2, strides=None):
    entry = {"type": "maxpool2d", "pool_size": size}
    if strides:
        entry["strides"] = strides
    return entry


def dense(units, activation=None):
    entry = {"type": "dense", "units": units}
    if activation:
        entry["activation"] = activation
    return entry


def dropout(rate):
    return {"type": "dropout", "rate": rate}


FLATTEN = {"type": "flatten"}
OUTPUT = dense("classes")

register_model(
    "softmax", [FLATTEN, OUTPUT],
    source='TensorFlow tutorial "MNIST for ML beginners" (softmax regression)',
    description="one dense layer on the raw pixels: about 91-92% on MNIST")

register_model(
    "mlp", [FLATTEN, dense(512, "relu"), OUTPUT],
    source="F. Chollet, Deep Learning with Python, ch. 2 (first network)",
    description="a dense layer of 512 on the flattened image")

register_model(
    "deep-mnist",
    [conv(32, 5, "same"), pool(2), conv(64, 5, "same"), pool(2),
     FLATTEN, dense(1024, "relu"), dropout(0.5), OUTPUT],
    source='TensorFlow tutorial "Deep MNIST for experts"',
    description="two 5x5 conv layers, dense 1,024, dropout 0.5: about 99.2% on MNIST (--init tf for its init)")

register_model(
    "chollet-mnist",
    [conv(32, 3), pool(2), conv(64, 3), pool(2), conv(64, 3),
     FLATTEN, dense(64, "relu"), OUTPUT],
    source="F. Chollet, Deep Learning with Python, 5.1 (introduction to convnets)",
    description="three 3x3 conv layers (32, 64, 64): 99.15% on MNIST in the book")

register_model(
    "tfjs-mnist",
    [conv(16, 3), pool(2, 2), conv(32, 3), pool(2, 2), conv(32, 3),
     FLATTEN, dense(64, "relu"), OUTPUT],
    source="TensorFlow.js MNIST example (tfjs-examples/mnist)",
    description="three 3x3 conv layers (16, 32, 32), the in-browser demo's model")

register_model(
    "lenet",
    [conv(20, 5, "same"), pool(2, 2), conv(50, 5, "same"), pool(2, 2),
     FLATTEN, dense(500, "relu"), OUTPUT],
    source="A. Gulli, S. Pal, Deep Learning with Keras, ch. 3 (LeNet)",
    description="LeNet as the book builds it in Keras")

register_model(
    "cifar10-net",
    # The Japanese edition's first net (oreilly-japan/deep-learning-with-keras-ja, ch03/cifar10_net.py),
    # the one the learners ran for 73%: two convs. The English edition's listing (keras_CIFAR10_simple.py)
    # has one conv (32); konbu measured 67.7% with that one on the real data, hence the change.
    [conv(32, 3, "same"), pool(2), dropout(0.25), conv(64, 3, "same"), pool(2),
     FLATTEN, dense(512, "relu"), dropout(0.5), OUTPUT],
    source="A. Gulli, S. Pal, Deep Learning with Keras, ch. 3 (CIFAR-10, first net; Japanese edition)",
    description="two conv layers (32, 64): about 73% on CIFAR-10 in the book", input_shape=(3, 32, 32))

register_model(
    "cifar10-deep",
    [conv(32, 3, "same"), conv(32, 3), pool(2), dropout(0.25),
     conv(64, 3, "same"), conv(64, 3), pool(2), dropout(0.25),
     FLATTEN, dense(512, "relu"), dropout(0.5), OUTPUT],
    source="A. Gulli, S. Pal, Deep Learning with Keras, ch. 3 (CIFAR-10, deeper net)",
    description="four conv layers: about 76% on CIFAR-10 in the book, 78% with augmentation",
    input_shape=(3, 32, 32))


def conv_bn(filters, convs=1):
    """`convs` x (conv 3x3 without bias, the BatchNorm after it has one -> BatchNorm -> ReLU), max-pool 2."""
    block = [{"type": "conv2d", "filters": filters, "kernel_size": 3, "padding": "same", "use_bias": False},
             {"type": "batchnorm"}, {"type": "activation", "activation": "relu"}]
    return block * convs + [pool(2)]


def airbench_block(filters):
    """airbench's conv group: conv 3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv 3x3 -> BatchNorm -> GELU.
    The convs have no bias and BatchNorm no scale (the conv before it sets that); its running statistics
    follow the batches closely (momentum 0.6 in torch's terms)."""
    norm = {"type": "batchnorm", "momentum": 0.4, "epsilon": 1e-12, "scale": False}
    gelu = {"type": "activation", "activation": "gelu"}
    conv = {"type": "conv2d", "filters": filters, "kernel_size": 3, "padding": "same", "use_bias": False}
    return [conv, pool(2), norm, gelu, conv, norm, gelu]


register_model(
    "fast-cifar10",
    # airbench94's network (K. Jordan, 2024): a frozen 2x2 patch-whitening first layer fitted on the training
    # images, three conv groups of widths 64, 256, 256, the largest value of each map, and logits scaled by
    # 1/9, which keeps them small while the high learning rate moves the layer before
    [{"type": "whiten", "kernel_size": 2, "use_bias": True}, {"type": "activation", "activation": "gelu"},
     *airbench_block(64), *airbench_block(256), *airbench_block(256), {"type": "global_maxpool2d"},
     {"type": "dense", "units": "classes", "use_bias": False}, {"type": "rescaling", "scale": 1 / 9}],
    source="K. Jordan, airbench94 (94% on CIFAR-10 in 3.83 s on an A100; github.com/KellerJordan/cifar10-airbench)",
    description="whitening, three conv-pool-BN-GELU groups (64, 256, 256), global max-pool",
    input_shape=(3, 32, 32))


register_model(
    "fast-mnist",
    # airbench's ideas at MNIST's size: BatchNorm lets SGD-Nesterov take a one-cycle schedule's high rates, so
    # three epochs reach 99.5%. Measured on full MNIST (3 epochs, bf16, 2 cores): one conv per block (16, 32, 64)
    # 99.28-99.36% whatever the rate or head; two convs in the first two blocks 99.52%
    [*conv_bn(16, 2), *conv_bn(32, 2), *conv_bn(64), {"type": "global_avgpool2d"}, OUTPUT],
    source="konbu (the fast-mnist recipe: full MNIST to 99.5% in three epochs)",
    description="conv-BN-ReLU blocks (2x16, 2x32, 64) with max-pooling, global average pooling")
