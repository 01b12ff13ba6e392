"""Loss scaling of --mixed_precision: the original's rule, and nothing at all in float32."""

import numpy as np
import tensorflow as tf

from progan_tf.training import loss_scale
from progan_tf.training.loss_scale import LossScale, count_nonfinite


def test_scale_is_two_to_the_log2_and_gradients_are_divided_by_it():
    scaling = LossScale(enabled=True)
    scale = scaling.scale(tf.constant(3.0))
    assert float(scale) == 8.0 and float(LossScale.scaled(tf.constant(2.0), scale)) == 16.0
    variables = [tf.Variable([1.0, 1.0]), tf.Variable(1.0)]
    grads = LossScale.unscaled_gradients([tf.constant([8.0, 16.0], tf.float16), None],
                                         variables, scale)
    assert grads[0].dtype == tf.float32 and grads[0].numpy().tolist() == [1.0, 2.0]
    assert float(grads[1]) == 0.0  # an unused variable gets a zero gradient


def test_the_scale_grows_after_applied_steps_and_halves_after_an_overflow():
    scaling = LossScale(enabled=True)
    scale_log2 = tf.Variable(loss_scale.INIT_LOG2)
    scaling.update(scale_log2, tf.constant(True))
    scaling.update(scale_log2, tf.constant(False))
    np.testing.assert_allclose(scale_log2.numpy(), 64.0 + 0.0005 - 1.0, rtol=0, atol=1e-5)
    assert scaling.nonfinite_allowance() == 64


def test_float32_has_no_scale_and_no_allowance():
    scaling = LossScale(enabled=False)
    scale_log2 = tf.Variable(5.0)
    assert scaling.scale(scale_log2) is None
    scaling.update(scale_log2, tf.constant(False))
    assert scale_log2.numpy() == 5.0 and scaling.nonfinite_allowance() == 0
    loss = tf.constant(3.0)
    assert LossScale.scaled(loss, None) is loss


def test_non_finite_entries_are_counted():
    grads = [tf.constant([1.0, np.inf]), None, tf.constant([[np.nan, 0.0], [np.nan, 2.0]])]
    assert int(count_nonfinite(grads)) == 3
    assert int(count_nonfinite([None])) == 0
