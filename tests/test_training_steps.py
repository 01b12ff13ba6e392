"""GanTrainer: replica equivalence per loss, EMA, optimizer reset, retracing, non-finite steps,
checkpoints, and no process-wide state. Tiny networks and data of tests/training_common.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import conftest
from progan_tf.training.sources import InMemorySource
from progan_tf.training.steps import GanTrainer, ema_beta_for
from training_common import BATCH, STEPS, copy_networks, first_batch, one_device, run_steps, \
    tiny_config, tiny_images, weights


@pytest.mark.parametrize("loss, use_labels", [("wgan_gp", False), ("logistic_r1", False),
                                              ("lsgan", True)])
def test_two_replicas_give_the_losses_and_summed_gradients_of_one_device(loss, use_labels):
    cfg = tiny_config(loss=loss, use_labels=use_labels)
    labels = np.eye(4, dtype=np.float32)[np.arange(32) % 4] if use_labels else None
    source = InMemorySource(tiny_images(), labels)
    label_size = 4 if use_labels else 0
    single = GanTrainer(cfg, one_device(), 16, 1, label_size, labels)
    mirrored = GanTrainer(cfg, conftest.two_replicas(), 16, 1, label_size, labels)
    assert mirrored.num_replicas == 2
    copy_networks(single, mirrored)
    phase = cfg.build_schedule(16).at(0.056)  # fading in 16x16: alpha 0.5
    assert (phase.resolution, phase.fade_alpha) == (16, pytest.approx(0.5))
    for gan in (single, mirrored):
        gan.apply_phase(phase)
    grads_1, stats_1 = single.d_gradients(first_batch(single, source, 16), 16, BATCH)
    grads_2, stats_2 = mirrored.d_gradients(first_batch(mirrored, source, 16), 16, BATCH)
    assert set(grads_1) == set(grads_2) and len(grads_1) == 18
    for path, grad in grads_1.items():
        np.testing.assert_allclose(grads_2[path], grad, rtol=1e-5, atol=1e-6, err_msg=path)
    assert ("Loss/label_real" in stats_1) == use_labels
    assert ("Loss/gradient_penalty" in stats_1) == (loss == "wgan_gp")
    assert ("Loss/r1_penalty" in stats_1) == (loss == "logistic_r1")
    for tag, value in stats_1.items():
        np.testing.assert_allclose(stats_2[tag], value, rtol=1e-5, atol=1e-6, err_msg=tag)
    g_grads_1, g_stats_1 = single.g_gradients(16, BATCH)
    g_grads_2, g_stats_2 = mirrored.g_gradients(16, BATCH)
    for path, grad in g_grads_1.items():
        np.testing.assert_allclose(g_grads_2[path], grad, rtol=1e-5, atol=1e-6, err_msg=path)
    np.testing.assert_allclose(g_stats_2["Loss/G"], g_stats_1["Loss/G"], rtol=1e-5)


def test_gemm_convolution_gradients_give_tensorflows_gradients_of_a_penalised_step():
    cfg = tiny_config(loss="wgan_gp", conv_gradients="gemm")
    source = InMemorySource(tiny_images())
    gemm = GanTrainer(cfg, one_device(), 16, 1)
    native = GanTrainer(tiny_config(loss="wgan_gp", conv_gradients="native"), one_device(), 16, 1)
    auto = GanTrainer(tiny_config(conv_gradients="auto"), one_device(), 4, 1)
    assert (gemm.gemm_min_channels, native.gemm_min_channels, auto.gemm_min_channels) == \
        (1, None, 128)  # auto on a CPU: convolutions of 128 channels or more
    copy_networks(gemm, native)
    phase = cfg.build_schedule(16).at(0.056)  # fading in 16x16
    for gan in (gemm, native):
        gan.apply_phase(phase)
    d_step = [gan.d_gradients(first_batch(gan, source, 16), 16, BATCH) for gan in (gemm, native)]
    g_step = [gan.g_gradients(16, BATCH) for gan in (gemm, native)]
    for (grads_1, stats_1), (grads_2, stats_2) in (d_step, g_step):
        for path, grad in grads_2.items():
            scale = max(float(np.abs(grad).max()), 1e-6)
            np.testing.assert_allclose(np.asarray(grads_1[path]) / scale, np.asarray(grad) / scale,
                                       atol=1e-5, err_msg=path)
        for tag, value in stats_2.items():
            np.testing.assert_allclose(stats_1[tag], value, rtol=1e-5, atol=1e-6, err_msg=tag)
    assert float(stats_2["Loss/G"]) != 0.0


def test_ema_generator_starts_as_the_generator_and_moves_toward_it_with_each_d_step():
    cfg = tiny_config()
    source = InMemorySource(tiny_images())
    gan = GanTrainer(cfg, one_device(), 16, 1)
    for ema, live in zip(gan.generator_ema.weights, gan.generator.weights):
        np.testing.assert_array_equal(ema.numpy(), live.numpy(), err_msg=live.path)
    gan.apply_phase(cfg.build_schedule(16).at(0.0))
    for variable in gan.generator_ema.trainable_variables:
        variable.assign(tf.zeros_like(variable))
    live = weights(gan.generator.trainable_variables)
    _, applied = gan.d_step(first_batch(gan, source, 4), 4, BATCH, ema_beta=0.9)
    assert bool(applied)
    # The D step leaves G alone, so Gs = G + 0.9 * (0 - G) = 0.1 * G.
    for ema, value in zip(gan.generator_ema.trainable_variables, live):
        np.testing.assert_allclose(ema.numpy(), 0.1 * value, rtol=1e-6, atol=1e-7)
    assert gan.generator_ema.fade_alpha.numpy() == gan.generator.fade_alpha.numpy()
    assert ema_beta_for(cfg, 32) == 0.999
    half_life = tiny_config(ema_kimg=10.0)
    assert ema_beta_for(half_life, 32) == pytest.approx(0.99778, abs=1e-5)


def test_initial_weights_are_a_function_of_the_seed_and_set_no_global_state():
    keras.utils.set_random_seed(123)
    expected_draw = np.random.rand()
    keras.utils.set_random_seed(123)
    first = GanTrainer(tiny_config(seed=5, mixed_precision=True), one_device(), 16, 1)
    assert np.random.rand() == expected_draw  # the global seed was left alone
    assert keras.mixed_precision.global_policy().name == "float32"
    keras.utils.set_random_seed(456)
    second = GanTrainer(tiny_config(seed=5), one_device(), 16, 1)
    other = GanTrainer(tiny_config(seed=6), one_device(), 16, 1)
    for name in ("generator", "discriminator"):
        for a, b in zip(getattr(first, name).weights, getattr(second, name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in
               zip(first.generator.trainable_variables, other.generator.trainable_variables))
    # G and D kernels of the same shape start from different draws.
    g_kernels = {tuple(v.shape): v.numpy() for v in first.generator.trainable_variables}
    for variable in first.discriminator.trainable_variables:
        same_shape = g_kernels.get(tuple(variable.shape))
        if same_shape is not None and variable.numpy().std() > 0:
            assert not np.array_equal(same_shape, variable.numpy()), variable.path


def test_optimizer_state_is_reset_at_lod_changes_but_never_the_learning_rate():
    cfg = tiny_config(lrate_base=0.002)
    source = InMemorySource(tiny_images())
    gan = GanTrainer(cfg, one_device(), 16, 1)
    sched = cfg.build_schedule(16)
    assert gan.apply_phase(sched.at(0.0))  # first phase: counts as a change
    batch = first_batch(gan, source, 4)
    for _ in range(2):
        gan.d_step(batch, 4, BATCH, 0.999)
        gan.g_step(4, BATCH)
    optimizers = (gan.g_optimizer, gan.d_optimizer)
    assert [int(opt.iterations.numpy()) for opt in optimizers] == [2, 2]
    assert not gan.apply_phase(sched.at(0.008))  # still lod 2: state kept
    assert [int(opt.iterations.numpy()) for opt in optimizers] == [2, 2]
    assert gan.apply_phase(sched.at(0.020))  # fade to 8x8 starts: ceil(lod) 2 -> floor 1
    for opt in optimizers:
        assert int(opt.iterations.numpy()) == 0
        assert float(opt.learning_rate.numpy()) == pytest.approx(0.002)
        slots = [v for v in opt.variables if v.name not in ("learning_rate", "iteration")]
        assert slots and all(not np.any(v.numpy()) for v in slots)


def test_each_resolution_is_traced_once_while_alpha_changes():
    cfg = tiny_config()
    source = InMemorySource(tiny_images())
    gan = GanTrainer(cfg, one_device(), 16, 1)
    sched = cfg.build_schedule(16)
    for resolution, kimgs in ((8, (0.020, 0.024, 0.028, 0.036)), (16, (0.052, 0.056, 0.060))):
        batch = first_batch(gan, source, resolution)
        alphas = []
        for kimg in kimgs:
            phase = sched.at(kimg)
            assert phase.resolution == resolution
            gan.apply_phase(phase)
            alphas.append(phase.fade_alpha)
            gan.d_step(batch, resolution, BATCH, 0.999)
            gan.g_step(resolution, BATCH)
        assert len(set(alphas)) > 1
    assert dict(gan.trace_counts) == {("d_step", 8): 1, ("g_step", 8): 1,
                                      ("d_step", 16): 1, ("g_step", 16): 1}


def test_non_finite_batch_skips_the_step_and_leaves_the_weights_unchanged():
    cfg = tiny_config()
    images = tiny_images()
    images[3, 2, 2, 0] = np.nan
    source = InMemorySource(images)
    gan = GanTrainer(cfg, conftest.two_replicas(), 16, 1)  # NaN only on replica 0's half
    gan.apply_phase(cfg.build_schedule(16).at(0.0))
    networks = (gan.generator, gan.generator_ema, gan.discriminator)
    before = [weights(n.weights) for n in networks]
    stats, applied = gan.d_step(first_batch(gan, source, 4), 4, BATCH, 0.999)
    assert not bool(applied)
    assert not np.isfinite(stats["Loss/D"].numpy())
    for network, values in zip(networks, before):
        for variable, value in zip(network.weights, values):
            np.testing.assert_array_equal(variable.numpy(), value)
    assert int(gan.d_optimizer.iterations.numpy()) == 0
    assert gan.state.values()["d_steps"] == 1  # the random stream still advances
    _, applied = gan.g_step(4, BATCH)  # the generator step does not see reals
    assert bool(applied)


def test_steps_in_one_call_end_with_the_weights_and_counters_of_one_step_per_call():
    # Two mirrored replicas (one device: test_training_loop; workers: test_multiworker).
    out = run_steps(tiny_config(), conftest.two_replicas(), STEPS)
    stepwise = {key.split("/", 1)[1] for key in out if key.startswith("stepwise/")}
    assert stepwise == {key.split("/", 1)[1] for key in out if key.startswith("fused/")}
    assert out["stepwise/state/d_steps"] == out["stepwise/state/g_steps"] == STEPS
    assert out["stepwise/state/nimg"] == STEPS * BATCH
    for name in stepwise:
        np.testing.assert_allclose(out[f"fused/{name}"], out[f"stepwise/{name}"], rtol=0,
                                   atol=1e-6, err_msg=name)
    np.testing.assert_allclose(out["fused_d_loss_sum"], out["d_loss"].sum(), rtol=1e-6)


def test_steps_in_one_call_skip_non_finite_steps_and_stop_at_the_limit_in_a_row():
    cfg = tiny_config()
    source = InMemorySource(np.full((32, 16, 16, 1), np.nan, np.float32))
    gan = GanTrainer(cfg, conftest.two_replicas(), 16, 1)
    gan.apply_phase(cfg.build_schedule(16).at(0.0))
    before = weights(gan.discriminator.weights)
    batches = iter(gan.distribute(lambda ctx: source.dataset(4, BATCH, 0, ctx)))
    stats, done = gan.train_steps(batches, 4, BATCH, 0.999, steps=5, nonfinite_limit=3)
    assert done == 3  # D steps 1-3 skipped: the third reaches the limit and ends the loop
    values = gan.state.values()
    assert (values["d_steps"], values["g_steps"], values["nimg"]) == (3, 3, 3 * BATCH)
    assert (values["d_nonfinite_in_a_row"], values["g_nonfinite_in_a_row"]) == (3, 0)
    assert values["skipped_steps"] == 3
    assert stats["Loss/D"][1] == 3 and not np.isfinite(stats["Loss/D"][0])
    assert stats["Loss/G"][1] == 3 and np.isfinite(stats["Loss/G"][0])
    for variable, value in zip(gan.discriminator.weights, before):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert int(gan.d_optimizer.iterations.numpy()) == 0
    assert int(gan.g_optimizer.iterations.numpy()) == 3
    # At the limit already (a resumed run), the first minibatch still runs.
    _, done = gan.train_steps(batches, 4, BATCH, 0.999, steps=5, nonfinite_limit=3)
    assert done == 1 and gan.state.values()["d_nonfinite_in_a_row"] == 4


def test_checkpoint_restores_every_variable_of_a_fresh_trainer(tmp_path):
    cfg = tiny_config()
    source = InMemorySource(tiny_images())
    gan = GanTrainer(cfg, one_device(), 16, 1)
    gan.apply_phase(cfg.build_schedule(16).at(0.056))
    gan.d_step(first_batch(gan, source, 16), 16, BATCH, 0.999)
    gan.g_step(16, BATCH)
    gan.state.assign(nimg=1234, data_position=1234)
    path = gan.checkpoint.save(str(tmp_path / "ckpt"))
    # Every variable is in the checkpoint (SPEC 10: none hidden in a Python list).
    stored = [name for name, _ in tf.train.list_variables(path)
              if name.endswith("VARIABLE_VALUE") and "save_counter" not in name]
    assert len(stored) == len(gan.checkpoint_variables())
    other_seed = tiny_config(seed=7)
    fresh = GanTrainer(other_seed, one_device(), 16, 1)
    fresh.checkpoint.restore(path).assert_consumed()
    groups = ("generator", "generator_ema", "discriminator")
    for name in groups:
        for restored, value in zip(getattr(fresh, name).weights, getattr(gan, name).weights):
            np.testing.assert_array_equal(restored.numpy(), value.numpy(), err_msg=value.path)
    for name in ("g_optimizer", "d_optimizer"):
        for restored, value in zip(getattr(fresh, name).variables, getattr(gan, name).variables):
            np.testing.assert_array_equal(restored.numpy(), value.numpy())
    assert fresh.state.values() == gan.state.values()
    assert int(fresh.d_optimizer.iterations.numpy()) == 1
