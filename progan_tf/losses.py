"""GAN losses as pure functions, per sample (SPEC 2, 3; [PG] loss.py, [SG] loss.py).

Every function returns per-sample values [N]; the trainer averages them over the global batch.
Randomness (the interpolation factor of the gradient penalty) is passed in by the caller.
Scores are the critic's column 0, [N]; label logits its columns 1.., [N, L].

- WGAN-GP with epsilon drift (ProGAN's default):
    G: -D(G(z));  D: D(fake) - D(real) + lambda / target^2 * (||grad D(x_hat)|| - target)^2
                     + epsilon * D(real)^2,  x_hat = real + u * (fake - real),
                     u ~ U(0, 1) per sample.
- LSGAN ([PG-th], real -> 0 convention): G: D(fake)^2;  D: D(real)^2 + 0.1 * (D(fake) - 1)^2.
- Non-saturating logistic with R1 (StyleGAN): G: softplus(-D(G(z)));
    D: softplus(D(fake)) + softplus(-D(real)) + gamma / 2 * sum_HWC (grad_real D(real))^2.
- AC-GAN ([PG] loss.py): softmax cross-entropy of the label logits, weight `cond_weight`, on fakes
  for G and on reals + fakes for D.

`LOSSES` maps each --loss name to its (g_loss, d_loss) pair; the d_loss of an entry brings the
penalty terms that loss needs (gradient penalty + drift, R1, or none).
"""

import dataclasses
from typing import Callable, NamedTuple

import tensorflow as tf

# Inside the square root of the gradient norm so that a zero gradient has a finite derivative
# (sqrt'(0) is infinite; SPEC 9). The original has none; the effect on the norm is < 1e-4.
NORM_EPSILON = 1e-8


def critic_gradients(critic, images, image_scale=1.0):
    """Gradient of sum(critic(images)) with respect to the images, [N, H, W, C], times
    `image_scale`.

    critic: maps [N, H, W, C] to scores [N]. The sum is taken inside the tape, otherwise the
    gradient is None (SPEC 7). Each sample's score depends only on that sample (up to the
    minibatch-stddev layer), so row n is the gradient of score n.
    image_scale: the images' resolution / the full resolution. The original feeds its D
    full-size images (G's output nearest-upscaled) and D box-downscales them, so its penalties
    differentiate with respect to the full-size pixels: each of our pixels stands for s^2 of
    them (s = full / resolution), each with 1/s^2 of its gradient, which makes the per-sample
    norm 1/s of ours. Scaling by 1/s gives the original's norms and sums of squares.
    """
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        total_score = tf.reduce_sum(tf.cast(critic(images), tf.float32))
    return tf.cast(tape.gradient(total_score, images), tf.float32) * image_scale


def gradient_norms(gradients, epsilon=NORM_EPSILON):
    """Per-sample L2 norm over H, W, C: sqrt(sum(g^2) + epsilon), [N, H, W, C] -> [N]."""
    return tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]) + epsilon)


def interpolate(reals, fakes, mix):
    """x_hat = reals + mix * (fakes - reals); mix [N, 1, 1, 1] in [0, 1]."""
    return reals + tf.cast(mix, reals.dtype) * (tf.cast(fakes, reals.dtype) - reals)


def gradient_penalty(critic, reals, fakes, mix, target=1.0, image_scale=1.0):
    """WGAN-GP term (||grad critic(x_hat)|| - target)^2 per sample, [N], and the norms [N].

    reals, fakes: [N, H, W, C]; mix: [N, 1, 1, 1], u ~ U(0, 1) per sample; image_scale: see
    `critic_gradients` (the norm is taken w.r.t. full-size images, as the original's).
    Returns (penalty [N], norms [N]); the caller weights it by lambda / target^2.
    """
    norms = gradient_norms(critic_gradients(critic, interpolate(reals, fakes, mix), image_scale))
    return tf.square(norms - target), norms


def r1_penalty(critic, reals, image_scale=1.0):
    """R1 term sum_HWC (grad_real critic(real))^2 per sample, [N] (weight it by gamma / 2);
    image_scale: see `critic_gradients`."""
    return tf.reduce_sum(tf.square(critic_gradients(critic, reals, image_scale)), axis=[1, 2, 3])


def drift_penalty(real_scores):
    """Epsilon-drift term D(real)^2 per sample, [N]."""
    return tf.square(real_scores)


def wgan_g_loss(fake_scores):
    """WGAN generator loss -D(G(z)), [N]."""
    return -fake_scores


def wgan_d_loss(real_scores, fake_scores):
    """WGAN critic loss D(fake) - D(real), [N]."""
    return fake_scores - real_scores


def wgan_gp_d_loss(real_scores, fake_scores, penalty, gp_lambda=10.0, gp_target=1.0,
                   drift_weight=0.001):
    """Full WGAN-GP critic loss per sample, [N] ([PG] D_wgangp_acgan without labels).

    penalty: (||grad|| - gp_target)^2 from `gradient_penalty`, [N]; it is weighted by
    gp_lambda / gp_target^2 as in the original (CIFAR-10 uses gp_target 750).
    """
    return (wgan_d_loss(real_scores, fake_scores)
            + penalty * (gp_lambda / gp_target ** 2)
            + drift_penalty(real_scores) * drift_weight)


def lsgan_g_loss(fake_scores):
    """LSGAN generator loss D(fake)^2, [N] (real -> 0 convention of [PG-th])."""
    return tf.square(fake_scores)


def lsgan_d_loss(real_scores, fake_scores, fake_weight=0.1):
    """LSGAN discriminator loss D(real)^2 + fake_weight * (D(fake) - 1)^2, [N]."""
    return tf.square(real_scores) + fake_weight * tf.square(fake_scores - 1.0)


def logistic_ns_g_loss(fake_scores):
    """Non-saturating logistic generator loss softplus(-D(G(z))), [N]."""
    return tf.nn.softplus(-fake_scores)


def logistic_d_loss(real_scores, fake_scores):
    """Logistic discriminator loss softplus(D(fake)) + softplus(-D(real)), [N]."""
    return tf.nn.softplus(fake_scores) + tf.nn.softplus(-real_scores)


def logistic_r1_d_loss(real_scores, fake_scores, r1, r1_gamma=10.0):
    """Logistic discriminator loss with R1: + gamma / 2 * r1, [N]; r1 from `r1_penalty`."""
    return logistic_d_loss(real_scores, fake_scores) + r1 * (r1_gamma * 0.5)


def label_penalty(labels, label_logits):
    """AC-GAN term: softmax cross-entropy of the label logits [N, L] against labels [N, L], [N]."""
    return tf.nn.softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32),
                                                   logits=tf.cast(label_logits, tf.float32))


def split_scores(outputs):
    """D output [N, 1 + L] -> (scores [N] float32, label logits [N, L] float32)."""
    outputs = tf.cast(outputs, tf.float32)
    return outputs[:, 0], outputs[:, 1:]


# ------------------------------------------------------------------------------------------------
# The table of --loss choices.


@dataclasses.dataclass(frozen=True)
class DiscriminatorBatch:
    """What a discriminator loss may use, for one replica's batch.

    critic: images [N, H, W, C] -> scores [N] (for the penalties' gradients).
    reals, fakes: [N, H, W, C]; real_scores, fake_scores: [N].
    interpolation: () -> [N, 1, 1, 1] factors u ~ U(0, 1) of the gradient penalty; called only
        by the losses that need them.
    image_scale: the images' resolution / the networks' full resolution: the penalties take
        their gradients with respect to full-size images, as the original does
        (`critic_gradients`).
    """

    critic: Callable
    reals: tf.Tensor
    fakes: tf.Tensor
    real_scores: tf.Tensor
    fake_scores: tf.Tensor
    interpolation: Callable
    image_scale: float = 1.0


class GanLoss(NamedTuple):
    """g_loss: fake_scores [N] -> [N]. d_loss: (DiscriminatorBatch, weights) -> (per-sample
    loss [N], {stat tag: [N]} of its penalty terms); weights: anything with gp_lambda,
    gp_target, drift_weight and r1_gamma (a config.TrainConfig)."""

    g_loss: Callable
    d_loss: Callable


def _wgan_gp_terms(batch, weights):
    penalty, _ = gradient_penalty(batch.critic, batch.reals, batch.fakes, batch.interpolation(),
                                  weights.gp_target, batch.image_scale)
    loss = wgan_gp_d_loss(batch.real_scores, batch.fake_scores, penalty, weights.gp_lambda,
                          weights.gp_target, weights.drift_weight)
    return loss, {"Loss/gradient_penalty": penalty, "Loss/drift": drift_penalty(batch.real_scores)}


def _lsgan_terms(batch, weights):
    del weights  # LSGAN has no penalty
    return lsgan_d_loss(batch.real_scores, batch.fake_scores), {}


def _logistic_r1_terms(batch, weights):
    r1 = r1_penalty(batch.critic, batch.reals, batch.image_scale)
    loss = logistic_r1_d_loss(batch.real_scores, batch.fake_scores, r1, weights.r1_gamma)
    return loss, {"Loss/r1_penalty": r1}


LOSSES = {
    "wgan_gp": GanLoss(wgan_g_loss, _wgan_gp_terms),
    "lsgan": GanLoss(lsgan_g_loss, _lsgan_terms),
    "logistic_r1": GanLoss(logistic_ns_g_loss, _logistic_r1_terms),
}
