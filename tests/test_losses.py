"""Each loss against a value computed by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from progan_tf import losses


def linear_critic(weight):
    """critic(x) = weight * sum(x): its gradient is `weight` in every entry."""
    return lambda x: weight * tf.reduce_sum(x, axis=[1, 2, 3])


def test_gradient_penalty_of_linear_critic_is_known():
    # Gradient 3 in each of the 4 entries of a 2x2x1 image -> norm 6 -> (6 - 1)^2 = 25.
    real = tf.random.stateless_normal([2, 2, 2, 1], seed=[1, 2])
    penalty, norms = losses.gradient_penalty(linear_critic(3.0), real, tf.zeros_like(real),
                                             tf.fill([2, 1, 1, 1], 0.5))
    np.testing.assert_allclose(norms, [6.0, 6.0], rtol=1e-6)
    np.testing.assert_allclose(penalty, [25.0, 25.0], rtol=1e-5)


def test_gradient_penalty_with_a_non_default_target():
    real = tf.ones([3, 2, 2, 1])
    penalty, _ = losses.gradient_penalty(linear_critic(3.0), real, -real,
                                         tf.fill([3, 1, 1, 1], 0.25), target=2.0)
    np.testing.assert_allclose(penalty, [16.0] * 3, rtol=1e-5)  # (6 - 2)^2


def test_gradient_penalty_is_taken_at_the_per_sample_interpolation():
    # critic(x) = 0.5 * sum(x^2) has gradient x, so the norm is ||x_hat|| of each sample.
    real = tf.fill([2, 1, 1, 4], 1.0)
    fake = tf.fill([2, 1, 1, 4], 3.0)
    mix = tf.constant([0.0, 0.5], shape=[2, 1, 1, 1])
    _, norms = losses.gradient_penalty(lambda x: 0.5 * tf.reduce_sum(x * x, axis=[1, 2, 3]),
                                       real, fake, mix)
    np.testing.assert_allclose(norms, [2.0, 4.0], rtol=1e-6)  # x_hat = 1 and 2 in 4 entries


def test_gradient_penalty_has_a_finite_gradient_at_a_zero_critic_gradient():
    weight = tf.Variable(0.0)
    real = tf.ones([2, 2, 2, 1])
    with tf.GradientTape() as tape:
        penalty, norms = losses.gradient_penalty(
            lambda x: weight * tf.reduce_sum(x, axis=[1, 2, 3]), real, -real,
            tf.fill([2, 1, 1, 1], 0.5))
        total = tf.reduce_sum(penalty)
    grad = tape.gradient(total, weight)
    assert np.isfinite(grad.numpy())
    np.testing.assert_allclose(norms, [math.sqrt(losses.NORM_EPSILON)] * 2, rtol=1e-5)
    np.testing.assert_allclose(penalty, [(1e-4 - 1.0) ** 2] * 2, rtol=1e-5)


def test_wgan_gp_critic_loss_per_sample():
    real = tf.constant([1.0, 2.0])
    fake = tf.constant([3.0, -1.0])
    penalty = tf.constant([0.25, 4.0])
    loss = losses.wgan_gp_d_loss(real, fake, penalty)
    # fake - real + 10 * penalty + 0.001 * real^2
    np.testing.assert_allclose(loss, [2.0 + 2.5 + 0.001, -3.0 + 40.0 + 0.004], rtol=1e-6)


def test_wgan_gp_weight_is_lambda_over_target_squared():
    loss = losses.wgan_gp_d_loss(tf.constant([0.0]), tf.constant([0.0]), tf.constant([4.0]),
                                 gp_lambda=10.0, gp_target=2.0, drift_weight=0.0)
    np.testing.assert_allclose(loss, [10.0], rtol=1e-6)  # 4 * 10 / 2^2


def test_wgan_generator_loss_and_drift():
    np.testing.assert_allclose(losses.wgan_g_loss(tf.constant([1.5, -2.0])), [-1.5, 2.0])
    np.testing.assert_allclose(losses.drift_penalty(tf.constant([3.0])), [9.0])


def test_lsgan_losses():
    np.testing.assert_allclose(losses.lsgan_d_loss(tf.constant([0.5]), tf.constant([2.0])),
                               [0.25 + 0.1 * 1.0], rtol=1e-6)
    np.testing.assert_allclose(losses.lsgan_g_loss(tf.constant([2.0])), [4.0])


def test_logistic_losses_at_zero_and_large_scores():
    zero = tf.constant([0.0])
    np.testing.assert_allclose(losses.logistic_d_loss(zero, zero), [2 * math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(losses.logistic_ns_g_loss(zero), [math.log(2)], rtol=1e-6)
    # A confident, correct critic: softplus(-20) + softplus(-20) ~ 2 e^-20.
    np.testing.assert_allclose(losses.logistic_d_loss(tf.constant([20.0]), tf.constant([-20.0])),
                               [2 * math.exp(-20)], rtol=1e-4)


def test_r1_penalty_of_linear_and_quadratic_critics():
    real = tf.ones([2, 2, 2, 1]) * 0.5
    # Linear: gradient 3 in 4 entries -> sum of squares 36.
    np.testing.assert_allclose(losses.r1_penalty(linear_critic(3.0), real), [36.0, 36.0])
    # Quadratic sum(x^2): gradient 2x = 1 in 4 entries -> 4.
    np.testing.assert_allclose(
        losses.r1_penalty(lambda x: tf.reduce_sum(x * x, axis=[1, 2, 3]), real), [4.0, 4.0])
    loss = losses.logistic_r1_d_loss(tf.constant([0.0]), tf.constant([0.0]), tf.constant([36.0]),
                                     r1_gamma=10.0)
    np.testing.assert_allclose(loss, [2 * math.log(2) + 5.0 * 36.0], rtol=1e-6)


def test_label_penalty_is_softmax_cross_entropy():
    labels = tf.constant([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    uniform = tf.zeros([2, 4])
    np.testing.assert_allclose(losses.label_penalty(labels, uniform), [math.log(4)] * 2,
                               rtol=1e-6)
    logits = tf.constant([[2.0, 0.0, 0.0, 0.0]] * 2)
    expected = [-(2.0 - math.log(math.exp(2) + 3)), -(0.0 - math.log(math.exp(2) + 3))]
    np.testing.assert_allclose(losses.label_penalty(labels, logits), expected, rtol=1e-6)


def test_split_scores_takes_column_zero_and_the_label_logits():
    scores, logits = losses.split_scores(tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    np.testing.assert_array_equal(scores, [1.0, 4.0])
    np.testing.assert_array_equal(logits, [[2.0, 3.0], [5.0, 6.0]])


# --- the table of --loss choices ---------------------------------------------------------------


class Weights:
    gp_lambda, gp_target, drift_weight, r1_gamma = 10.0, 1.0, 0.001, 10.0


def linear_batch(draws):
    """Scores real [1, 2], fake [3, -1] from a linear critic with gradient 3 in 4 entries."""
    real = tf.ones([2, 2, 2, 1])

    def interpolation():
        draws.append(1)
        return tf.fill([2, 1, 1, 1], 0.5)

    return losses.DiscriminatorBatch(
        critic=linear_critic(3.0), reals=real, fakes=-real, real_scores=tf.constant([1.0, 2.0]),
        fake_scores=tf.constant([3.0, -1.0]), interpolation=interpolation)


def test_loss_table_has_the_three_losses_with_their_generator_losses():
    assert sorted(losses.LOSSES) == ["logistic_r1", "lsgan", "wgan_gp"]
    fake = tf.constant([2.0])
    np.testing.assert_allclose(losses.LOSSES["wgan_gp"].g_loss(fake), [-2.0])
    np.testing.assert_allclose(losses.LOSSES["lsgan"].g_loss(fake), [4.0])
    np.testing.assert_allclose(losses.LOSSES["logistic_r1"].g_loss(fake),
                               [math.log1p(math.exp(-2.0))], rtol=1e-6)


def test_wgan_gp_entry_adds_the_gradient_penalty_and_drift():
    draws = []
    loss, stats = losses.LOSSES["wgan_gp"].d_loss(linear_batch(draws), Weights)
    assert draws == [1]  # the interpolation factors are drawn once
    # fake - real + 10 * (6 - 1)^2 + 0.001 * real^2
    np.testing.assert_allclose(loss, [2.0 + 250.0 + 0.001, -3.0 + 250.0 + 0.004], rtol=1e-5)
    assert sorted(stats) == ["Loss/drift", "Loss/gradient_penalty"]
    np.testing.assert_allclose(stats["Loss/gradient_penalty"], [25.0, 25.0], rtol=1e-5)
    np.testing.assert_allclose(stats["Loss/drift"], [1.0, 4.0])


def test_logistic_r1_entry_adds_r1_and_lsgan_adds_no_penalty():
    draws = []
    loss, stats = losses.LOSSES["logistic_r1"].d_loss(linear_batch(draws), Weights)
    softplus = np.log1p(np.exp([3.0, -1.0])) + np.log1p(np.exp([-1.0, -2.0]))
    np.testing.assert_allclose(loss, softplus + 5.0 * 36.0, rtol=1e-5)
    assert sorted(stats) == ["Loss/r1_penalty"] and draws == []
    loss, stats = losses.LOSSES["lsgan"].d_loss(linear_batch(draws), Weights)
    np.testing.assert_allclose(loss, [1.0 + 0.1 * 4.0, 4.0 + 0.1 * 4.0], rtol=1e-6)
    assert stats == {} and draws == []


@pytest.mark.parametrize("factor", [2, 4])
def test_penalties_with_image_scale_equal_those_on_full_size_images(factor):
    """The original's D box-downscales full-size images; its penalties differentiate with
    respect to those. Ours, at the trained resolution with image_scale = 1 / factor, agree."""
    rng = np.random.default_rng(5)
    weights = tf.constant(rng.standard_normal((1, 4, 4, 3)), tf.float32)

    def small_critic(x):
        return tf.reduce_sum(tf.tanh(x) * weights, axis=[1, 2, 3])

    def full_critic(x):
        return small_critic(tf.nn.avg_pool2d(x, factor, factor, "VALID"))

    def full(x):
        return tf.repeat(tf.repeat(x, factor, axis=1), factor, axis=2)

    reals = tf.constant(rng.standard_normal((3, 4, 4, 3)), tf.float32)
    fakes = tf.constant(rng.standard_normal((3, 4, 4, 3)), tf.float32)
    mix = tf.constant(rng.uniform(size=(3, 1, 1, 1)), tf.float32)
    scale = 1.0 / factor
    _, small_norms = losses.gradient_penalty(small_critic, reals, fakes, mix, image_scale=scale)
    _, full_norms = losses.gradient_penalty(full_critic, full(reals), full(fakes), mix)
    np.testing.assert_allclose(small_norms, full_norms, rtol=1e-5)
    _, unscaled = losses.gradient_penalty(small_critic, reals, fakes, mix)
    np.testing.assert_allclose(unscaled, factor * full_norms.numpy(), rtol=1e-5)  # without it
    np.testing.assert_allclose(losses.r1_penalty(small_critic, reals, image_scale=scale),
                               losses.r1_penalty(full_critic, full(reals)), rtol=1e-5)
