"""Test set-up shared by every module.

Two logical CPU devices are created before TensorFlow runs any op (SPEC 10): afterwards
`tf.config.set_logical_device_configuration` raises. Single-device tests use
`OneDeviceStrategy("/cpu:0")`; `MirroredStrategy()` then spans both logical CPUs. The
package is imported before TensorFlow, so the tests run TensorFlow's oneDNN kernels as the
commands do (progan_tf/__init__.py). Under pytest-xdist (`-n 2`, README's test command) each
worker is its own process and makes its own two logical CPUs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import progan_tf  # noqa: E402,F401  (before TensorFlow: the oneDNN kernels users get)
import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


_TWO_REPLICAS = []


def two_replicas():
    """The one MirroredStrategy over the two logical CPUs that every test shares.

    Separate MirroredStrategy objects in one process number their collective ops from the same
    start, so a later one can meet an earlier one's cached collective instance with another
    shape ("Shape mismatch in the collective instance"); one shared strategy keeps counting.
    """
    if not _TWO_REPLICAS:
        _TWO_REPLICAS.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _TWO_REPLICAS[0]


@pytest.fixture(autouse=True)
def fixed_seed():
    """Every test starts from the same Keras/NumPy/Python seed. (Library code sets no global
    state: the trainer seeds its networks and passes their dtype policy.)"""
    keras.utils.set_random_seed(0)
    yield
    assert keras.mixed_precision.global_policy().name == "float32", (
        "a test left a global dtype policy behind; pass dtype= to the layers instead")
