"""--precision=bfloat16: bfloat16 compute with float32 variables and no loss scaling, losses close
to float32, float32 normalisations, float32 checkpoints that resume in either precision, float32
exports, and the warning where bfloat16 would be slow (precision.py). float16 is
tests/test_mixed_precision.py; the flag itself tests/test_config.py.

The networks get the mixed_bfloat16 policy from the trainer; the global Keras policy is never set.
"""

import io
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from exports.run_dir import load_generator
from progan_tf import config
from progan_tf import layers
from progan_tf import train
from progan_tf.training import loop
from progan_tf.training import loss_scale
from progan_tf.training import precision
from progan_tf.training.sources import InMemorySource
from progan_tf.training.state import read_state
from progan_tf.training.steps import GanTrainer
from training_common import BATCH, copy_networks, one_device, tiny_config, tiny_images

STEPS = 3
# Measured over 4 steps at 8x8 fading in: relative differences up to 2.6e-3 (D loss, ~8.6) and
# 2.5e-2 (G loss, ~-0.15) on a CPU without bfloat16 arithmetic.
LOSS_RTOL = 5e-2
DEVNULL = open(os.devnull, "w")  # noqa: SIM115


def _trained(precision_name):
    """A GanTrainer of the tiny config after STEPS D+G steps at 8x8 fading in, its batches
    iterator and [(D loss, G loss, D applied, G applied)] per step."""
    cfg = tiny_config(precision=precision_name)
    gan = GanTrainer(cfg, one_device(), 16, 1)
    phase = cfg.build_schedule(16).at(0.024)
    gan.apply_phase(phase)
    source = InMemorySource(tiny_images())
    batches = iter(gan.distribute(lambda ctx: source.dataset(8, BATCH, 0, ctx)))
    return gan, batches, [_step(gan, batches) for _ in range(STEPS)]


def _step(gan, batches):
    d_stats, d_ok = gan.d_step(next(batches), 8, BATCH, 0.999)
    g_stats, g_ok = gan.g_step(8, BATCH)
    return float(d_stats["Loss/D"]), float(g_stats["Loss/G"]), bool(d_ok), bool(g_ok)


@pytest.fixture(scope="module")
def runs():
    keras.utils.set_random_seed(0)
    return {name: _trained(name) for name in ("float32", "bfloat16")}


def test_bfloat16_computes_in_bfloat16_on_float32_variables_without_loss_scaling(runs):
    gan, _, results = runs["bfloat16"]
    assert keras.mixed_precision.global_policy().name == "float32"  # left alone
    for network in (gan.generator, gan.generator_ema, gan.discriminator):
        assert network.dtype_policy.name == "mixed_bfloat16"
    variables = (gan.generator.weights + gan.generator_ema.weights + gan.discriminator.weights
                 + gan.g_optimizer.variables + gan.d_optimizer.variables)
    assert {v.dtype for v in variables if v.dtype != "int64"} == {"float32"}
    images = gan.generator.model_for(8)(np.zeros((2, gan.latent_size), np.float32))
    assert images.dtype == "bfloat16"
    # Every step applied, and the loss-scale state never moved from its initial value.
    assert all(d_ok and g_ok for _, _, d_ok, g_ok in results)
    assert not gan.loss_scale.enabled and gan.loss_scale.nonfinite_allowance() == 0
    values = gan.state.values()
    assert values["d_loss_scale_log2"] == values["g_loss_scale_log2"] == loss_scale.INIT_LOG2


def test_bfloat16_losses_stay_within_5e_2_of_float32(runs):
    float32 = np.array(runs["float32"][2])[:, :2]
    bfloat16 = np.array(runs["bfloat16"][2])[:, :2]
    assert np.isfinite(bfloat16).all()
    np.testing.assert_allclose(bfloat16, float32, rtol=LOSS_RTOL)
    assert not np.array_equal(bfloat16, float32)  # it did compute in another precision


def test_normalisations_compute_in_float32_and_round_once_under_mixed_bfloat16():
    rng = np.random.default_rng(0)
    # Inputs representable in bfloat16, so float32 layers see exactly what the bf16 ones see.
    x = tf.cast(tf.cast(rng.normal(3.0, 50.0, (8, 4, 4, 64)).astype("float32"), tf.bfloat16),
                tf.float32)
    for make in (layers.PixelNormalization, layers.MinibatchStdev):
        out = make(dtype="mixed_bfloat16")(tf.cast(x, tf.bfloat16))
        reference = tf.cast(make(dtype="float32")(x), tf.bfloat16)
        assert out.dtype == "bfloat16"
        # Computed in float32 and rounded once: bit-equal to the float32 layer rounded.
        np.testing.assert_array_equal(np.asarray(out, "float32"),
                                      np.asarray(reference, "float32"))


def test_a_bfloat16_checkpoint_is_float32_and_resumes_in_float32(runs, tmp_path):
    gan, _, _ = runs["bfloat16"]
    path = gan.checkpoint.write(str(tmp_path / "ckpt"))
    dtypes = tf.train.load_checkpoint(path).get_variable_to_dtype_map()
    assert {dtype.name for dtype in dtypes.values()} <= {"float32", "float64", "int64", "string"}
    assert "float32" in {dtype.name for dtype in dtypes.values()}

    resumed = runs["float32"][0]  # a float32 trainer of the same networks, its steps traced
    resumed.checkpoint.read(path).assert_consumed()
    for name in ("generator", "generator_ema", "discriminator"):
        for a, b in zip(getattr(resumed, name).weights, getattr(gan, name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert resumed.state.values() == gan.state.values()
    # Both continue with the same step counters (latents) on the same reals.
    source = InMemorySource(tiny_images())
    bf16_next = _step(gan, iter(gan.distribute(lambda ctx: source.dataset(8, BATCH, 0, ctx))))
    float32_next = _step(resumed, iter(resumed.distribute(
        lambda ctx: source.dataset(8, BATCH, 0, ctx))))
    assert float32_next[2:] == (True, True)
    np.testing.assert_allclose(float32_next[:2], bf16_next[:2], rtol=LOSS_RTOL)


def test_the_float32_twin_of_a_bfloat16_ema_generator_renders_as_float32(runs):
    gan, _, _ = runs["bfloat16"]
    twin = gan.float32_generator_ema()
    assert twin.dtype_policy.name == "float32" and twin is not gan.generator_ema
    float32_gan = runs["float32"][0]
    copy_networks(gan, float32_gan)  # the float32 trainer now holds the bfloat16 run's weights
    assert float32_gan.float32_generator_ema() is float32_gan.generator_ema
    latents = np.random.default_rng(1).normal(size=(4, gan.latent_size)).astype(np.float32)
    images = np.asarray(twin.model_for(8)(latents, training=False))
    reference = np.asarray(float32_gan.generator_ema.model_for(8)(latents, training=False))
    np.testing.assert_array_equal(images, reference)
    bf16 = np.asarray(gan.generator_ema.model_for(8)(latents, training=False), np.float32)
    assert np.abs(bf16 - reference).max() > 1e-3  # what an export in bfloat16 would give


def test_a_float32_run_resumes_in_bfloat16_and_exports_float32(tmp_path):
    common = dict(lod_training_kimg=0.016, lod_transition_kimg=0.016, tick_kimg_base=0.008)
    source = InMemorySource(tiny_images(resolution=8))
    first = loop.train(tiny_config(tmp_path, total_kimg=0.016, **common), source=source,
                       log_stream=DEVNULL)
    resumed = loop.train(tiny_config(tmp_path, total_kimg=0.032, resume=first.run_dir,
                                     precision="bfloat16", export=True, **common),
                         source=source, log_stream=DEVNULL)
    assert resumed.run_dir == first.run_dir and resumed.status == "done"
    assert "Resuming" in open(os.path.join(resumed.run_dir, "log.txt")).read()
    assert read_state(os.path.join(resumed.run_dir, "checkpoints"))["nimg"] == 32

    generator, _ = load_generator(resumed.run_dir)  # float32, from network.json + checkpoint
    latents = np.random.default_rng(2).normal(size=(4, generator.latent_size)).astype(np.float32)
    served = tf.saved_model.load(resumed.export_dir).signatures["serving_default"]
    exported = served(latents=tf.constant(latents))["images_float"].numpy()
    reference = np.clip(np.asarray(generator.model_for(8)(latents, training=False)), -1, 1)
    np.testing.assert_allclose(exported, reference, rtol=0, atol=1e-6)
    # The same weights computing in bfloat16 give visibly different images.
    bf16 = type(generator)(**generator.get_config(), dtype="mixed_bfloat16")
    for target, value in zip(bf16.weights, generator.weights):
        target.assign(value)
    bf16_images = np.asarray(bf16.model_for(8)(latents, training=False), np.float32)
    assert np.abs(np.clip(bf16_images, -1, 1) - reference).max() > 1e-3


@pytest.mark.parametrize("cpu_flags, onednn, slow", [
    ({"avx2", "avx512f"}, None, "neither AVX512-BF16 nor AMX"),
    ({"avx2", "avx512_bf16"}, None, None),
    ({"amx_tile", "amx_bf16"}, None, None),
    (None, None, None),  # flags unknown (not Linux): no claim
    ({"avx512_bf16"}, "0", "oneDNN is switched off"),
    ({"avx512_bf16"}, "1", None),
    (None, "false", "oneDNN is switched off"),
])
def test_bfloat16_warning_names_the_missing_cpu_feature_or_onednn(monkeypatch, cpu_flags, onednn,
                                                                 slow):
    monkeypatch.setattr(precision, "read_cpu_flags", lambda: cpu_flags)
    environ = {} if onednn is None else {"TF_ENABLE_ONEDNN_OPTS": onednn}
    warning = precision.bfloat16_warning("bfloat16", on_accelerator=False, environ=environ)
    if slow is None:
        assert warning is None
    else:
        assert slow in warning and "\n" not in warning and "will be slow" in warning
    for other in ("float32", "float16"):
        assert precision.bfloat16_warning(other, on_accelerator=False, environ=environ) is None
    assert precision.bfloat16_warning("bfloat16", on_accelerator=True, environ=environ) is None


def test_the_train_command_prints_one_warning_line_on_this_machine(monkeypatch):
    cfg = tiny_config(precision="bfloat16")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    flags = precision.read_cpu_flags()
    stream = io.StringIO()
    warning = train.precision_warning(cfg, stream)
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    if flags is None or flags & set(precision.CPU_BFLOAT16_FLAGS) or on_gpu:
        assert warning is None and stream.getvalue() == ""
    else:  # this project's test machine: no AVX-512 at all
        assert stream.getvalue() == f"progan_tf.train: {warning}\n"
    monkeypatch.setattr(precision, "read_cpu_flags", lambda: {"avx2"})
    stream = io.StringIO()
    train.precision_warning(cfg, stream)
    assert len(stream.getvalue().splitlines()) == (0 if on_gpu else 1)
    stream = io.StringIO()
    assert train.precision_warning(cfg.replace(precision="float32"), stream) is None
    assert stream.getvalue() == ""


def test_read_cpu_flags_reads_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\nbugs\t\t: x\n")
    assert precision.read_cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
    assert precision.read_cpu_flags(str(tmp_path / "missing")) is None
    assert set(precision.POLICIES) == set(config.PRECISIONS)
