"""What every layer module shares: ProGAN's constants, leaky ReLU, argument checks, per-weight
seeds and the `register` decorator (Keras serialization under the "progan_tf" package)."""

import hashlib
import math

import keras
from keras import ops

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2

register = keras.saving.register_keras_serializable(package="progan_tf")


def derive_seed(seed, *position):
    """A seed for the weight at `position` (names from the network down, e.g. "block_8x8",
    "conv0") of a network seeded with `seed`: a pure function of both, in [0, 2^31); None when
    `seed` is None (the initializer then draws from Keras' global random state)."""
    if seed is None:
        return None
    text = "/".join([str(int(seed)), *map(str, position)]).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little") >> 1


def lrelu(x):
    """Leaky ReLU with ProGAN's slope 0.2."""
    return ops.leaky_relu(x, negative_slope=LRELU_SLOPE)


def check_positive(name, value, layer):
    """A ValueError naming `layer`, the argument and the value unless `value` > 0."""
    if value <= 0:
        raise ValueError(f"{layer}: `{name}` must be positive, received {name}={value!r}")
