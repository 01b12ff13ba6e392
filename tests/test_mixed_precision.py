"""--mixed_precision: float16 steps of a tiny model stay finite and close to float32, and the
loss scale follows the original's rule (SPEC 2: log2 init 64, +0.0005 per step, -1 per overflow).

The networks get the mixed_float16 policy from the trainer; the global Keras policy is never set.
"""

import keras
import numpy as np
import pytest

import conftest
from progan_tf.training.sources import InMemorySource
from progan_tf.training.steps import GanTrainer
from training_common import BATCH, first_batch, one_device, tiny_config, tiny_images


def step_losses(cfg, strategy, steps=1):
    source = InMemorySource(tiny_images())
    gan = GanTrainer(cfg, strategy, 16, 1)
    gan.apply_phase(cfg.build_schedule(16).at(0.0))
    batches = iter(gan.distribute(lambda ctx: source.dataset(4, BATCH, 0, ctx)))
    out = []
    for _ in range(steps):
        d_stats, d_ok = gan.d_step(next(batches), 4, BATCH, 0.999)
        g_stats, g_ok = gan.g_step(4, BATCH)
        out.append((float(d_stats["Loss/D"]), float(g_stats["Loss/G"]), bool(d_ok), bool(g_ok)))
    return gan, out


def test_mixed_precision_networks_compute_in_float16_with_float32_variables():
    gan, _ = step_losses(tiny_config(mixed_precision=True), one_device(), steps=0)
    assert keras.mixed_precision.global_policy().name == "float32"  # left alone
    for network in (gan.generator, gan.generator_ema, gan.discriminator):
        assert network.dtype_policy.name == "mixed_float16"
    assert all(v.dtype == "float32" for v in gan.generator.weights + gan.discriminator.weights)
    images = gan.generator.model_for(4)(np.zeros((2, gan.latent_size), np.float32))
    assert images.dtype == "float16"
    float32, _ = step_losses(tiny_config(), one_device(), steps=0)
    assert float32.generator.model_for(4)(np.zeros((2, 16), np.float32)).dtype == "float32"


def initial_losses(cfg):
    """D and G loss of one step at the initial weights (nothing applied) and the applied step's
    gradients' finiteness, with the loss scale at 2^8 so float16 gradients neither overflow."""
    source = InMemorySource(tiny_images())
    gan = GanTrainer(cfg, one_device(), 16, 1)
    gan.apply_phase(cfg.build_schedule(16).at(0.0))
    gan.state.assign(d_loss_scale_log2=8.0, g_loss_scale_log2=8.0)
    batch = first_batch(gan, source, 4)
    d_grads, d_stats = gan.d_gradients(batch, 4, BATCH)
    g_grads, g_stats = gan.g_gradients(4, BATCH)
    finite = all(np.isfinite(g.numpy()).all() for g in [*d_grads.values(), *g_grads.values()])
    return float(d_stats["Loss/D"]), float(g_stats["Loss/G"]), finite


def test_mixed_precision_step_is_finite_and_within_1e_2_of_float32():
    d32, g32, _ = initial_losses(tiny_config())
    d16, g16, finite = initial_losses(tiny_config(mixed_precision=True))
    assert finite and np.isfinite([d16, g16]).all()
    np.testing.assert_allclose(d16, d32, rtol=1e-2)
    np.testing.assert_allclose(g16, g32, rtol=1e-2)


def test_loss_scale_drops_by_one_per_overflow_and_grows_after_applied_steps():
    cfg = tiny_config(mixed_precision=True)
    gan, results = step_losses(cfg, conftest.two_replicas(), steps=3)
    d_scale = gan.state.values()["d_loss_scale_log2"]
    g_scale = gan.state.values()["g_loss_scale_log2"]
    # Each skipped (overflowing) step lowers the scale by 1, each applied step raises it by 0.0005.
    d_skips = sum(not ok for _, _, ok, _ in results)
    g_skips = sum(not ok for _, _, _, ok in results)
    assert d_skips + g_skips >= 1, results  # 2^64 overflows float16 in the first steps
    np.testing.assert_allclose(d_scale, 64.0 - d_skips + 0.0005 * (3 - d_skips), rtol=0, atol=1e-5)
    np.testing.assert_allclose(g_scale, 64.0 - g_skips + 0.0005 * (3 - g_skips), rtol=0, atol=1e-5)


def test_mixed_precision_with_a_low_loss_scale_applies_steps():
    cfg = tiny_config(mixed_precision=True)
    source = InMemorySource(tiny_images())
    gan = GanTrainer(cfg, conftest.two_replicas(), 16, 1)
    gan.apply_phase(cfg.build_schedule(16).at(0.0))
    gan.state.assign(d_loss_scale_log2=8.0, g_loss_scale_log2=8.0)
    before = gan.discriminator.trainable_variables[0].numpy().copy()
    stats, applied = gan.d_step(first_batch(gan, source, 4), 4, BATCH, 0.999)
    _, g_applied = gan.g_step(4, BATCH)
    assert bool(applied) and bool(g_applied)
    assert np.isfinite(float(stats["Loss/D"]))
    assert not np.array_equal(before, gan.discriminator.trainable_variables[0].numpy())
    assert gan.state.values()["d_loss_scale_log2"] == pytest.approx(8.0005)
