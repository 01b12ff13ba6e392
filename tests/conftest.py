"""Test set-up shared by every module.

Two logical CPU devices are created before TensorFlow runs any op (SPEC 10): afterwards
`tf.config.set_logical_device_configuration` raises. Single-device tests use
`OneDeviceStrategy("/cpu:0")`; `MirroredStrategy()` then spans both logical CPUs.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


@pytest.fixture(autouse=True)
def float32_policy_and_seed():
    """Every test starts from the float32 policy and a fixed seed, and leaves float32 behind."""
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.mixed_precision.set_global_policy("float32")
