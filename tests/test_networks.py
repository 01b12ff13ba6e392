"""Tests for progan_tf.networks: parameter counts against the original, fade-in continuity,
weights carried over while growing, no retracing, and checkpoints that hold every variable."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from progan_tf import layers
from progan_tf.networks import (Discriminator, Generator, StyleGenerator, log2_resolution, nf,
                                parameters_up_to, stylegan_discriminator)

TINY = dict(fmap_base=64, fmap_max=16)  # 16 maps up to 4x4 .. 8 at 32x32

# SPEC 1.1: totals up to each resolution, counted like the original (weights + biases, one
# toRGB/fromRGB per resolution), verified by running the original network code.
PAPER_TOTALS = {
    4: (6_556_163, 6_561_793), 8: (11_277_318, 11_283_457), 16: (15_998_473, 16_005_121),
    32: (20_719_628, 20_726_785), 64: (22_490_383, 22_498_049), 128: (22_933_394, 22_941_313),
    256: (23_044_309, 23_052_353), 512: (23_072_120, 23_080_225), 1024: (23_079_115, 23_087_249),
}


def normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.fixture(scope="module")
def paper_networks():
    return Generator(1024), Discriminator(1024)


def test_channel_formula_matches_the_paper():
    assert [nf(r - 1) for r in range(2, 11)] == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    assert nf(0, fmap_base=4096, fmap_max=128) == 128


def test_parameter_counts_match_the_original_at_every_resolution(paper_networks):
    generator, discriminator = paper_networks
    for res, (g_total, d_total) in PAPER_TOTALS.items():
        assert parameters_up_to(generator, res) == g_total, res
        assert parameters_up_to(discriminator, res) == d_total, res
    assert count(generator.trainable_weights) == 23_079_115
    assert count(discriminator.trainable_weights) == 23_087_249
    assert generator.latent_size == 512
    # The 32x32 model holds the blocks up to 32x32, the toRGB / fromRGB of 32x32 and of 16x16
    # (the fade-in path) but not those of 8x8 and 4x4, and the fade-in alpha.
    assert generator.model_for(32).count_params() == 20_719_628 - 2 * 1_539 + 1
    assert discriminator.model_for(32).count_params() == 20_726_785 - 2 * 2_048 + 1


def test_grayscale_and_conditional_counts_match_the_original():
    # Verified by running the original code (SPEC 1.1).
    assert count(Generator(1024, num_channels=1).trainable_weights) == 23_074_009
    assert count(Discriminator(1024, num_channels=1).trainable_weights) == 23_082_161
    assert count(Generator(1024, label_size=10).trainable_weights) == 23_161_035
    assert count(Discriminator(1024, label_size=10).trainable_weights) == 23_092_379


def test_first_dense_layer_runtime_scale_is_one_sixty_fourth(paper_networks):
    generator, _ = paper_networks
    assert generator.block_4x4.dense.runtime_scale == pytest.approx(1 / 64)
    assert generator.to_rgb_64x64.gain == 1.0
    assert generator.block_4x4.dense.bias is None  # the bias is per channel, after the reshape
    assert generator.block_4x4.dense_bias.bias.shape == (512,)


def test_output_shapes_and_labels():
    generator = Generator(16, num_channels=1, label_size=3, **TINY)
    discriminator = Discriminator(16, num_channels=1, label_size=3, **TINY)
    latents, labels = normal(4, generator.latent_size), np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    for res in (4, 8, 16):
        images = generator.model_for(res)([latents, labels])
        assert images.shape == (4, res, res, 1)
        assert discriminator.model_for(res)(images).shape == (4, 4)
    # Labels change the generated images: they are concatenated to the latents.
    other = generator.model_for(16)([latents, labels[::-1]])
    assert not np.allclose(other, generator.model_for(16)([latents, labels]))


def test_generator_fade_in_is_continuous():
    generator = Generator(32, **TINY)
    z = normal(4, generator.latent_size)
    for res in (8, 16, 32):
        generator.set_alpha(1.0)
        previous = np.asarray(generator.model_for(res // 2)(z))
        generator.set_alpha(0.0)
        grown = np.asarray(generator.model_for(res)(z))
        np.testing.assert_allclose(grown, previous.repeat(2, axis=1).repeat(2, axis=2),
                                   rtol=1e-5, atol=1e-5)
        generator.set_alpha(1.0)
        new = np.asarray(generator.model_for(res)(z))
        assert np.abs(new - grown).max() > 1e-2
        generator.set_alpha(0.25)
        np.testing.assert_allclose(generator.model_for(res)(z), grown + 0.25 * (new - grown),
                                   rtol=1e-4, atol=1e-5)


def test_discriminator_fade_in_is_continuous():
    discriminator = Discriminator(32, **TINY)
    images = normal(8, 32, 32, 3)
    for res in (8, 16, 32):
        x = np.asarray(layers.downsample2d(images, 32 // res))
        discriminator.set_alpha(1.0)
        previous = np.asarray(discriminator.model_for(res // 2)(layers.downsample2d(x)))
        discriminator.set_alpha(0.0)
        np.testing.assert_allclose(discriminator.model_for(res)(x), previous, rtol=1e-5,
                                   atol=1e-5)


def test_growing_reuses_the_lower_resolution_weights():
    generator = Generator(32, **TINY)
    discriminator = Discriminator(32, **TINY)
    for network, rgb in ((generator, "to_rgb"), (discriminator, "from_rgb")):
        small = {id(v) for v in network.model_for(8).trainable_weights}
        large = {id(v) for v in network.model_for(32).trainable_weights}
        # Every block carries over; only the 4x4 and 8x8 image layers are left behind.
        left_behind = {id(v) for res in (4, 8)
                       for v in getattr(network, f"{rgb}_{res}x{res}").trainable_weights}
        assert small - left_behind < large
        assert {id(v) for v in network.block_8x8.trainable_weights} <= large
    # Changing a shared weight changes every resolution's output.
    z = normal(2, generator.latent_size)
    before = np.asarray(generator.model_for(16)(z))
    generator.block_8x8.conv1.bias.assign(np.full((16,), 0.5, "float32"))
    assert not np.allclose(generator.model_for(16)(z), before)


def test_changing_alpha_does_not_retrace_and_models_are_cached():
    generator = Generator(16, **TINY)
    discriminator = Discriminator(16, **TINY)
    assert generator.model_for(16) is generator.model_for(16)
    g16, d16 = generator.model_for(16), discriminator.model_for(16)

    @tf.function
    def step(z):
        return d16(g16(z))

    z = normal(4, generator.latent_size)
    outputs = []
    for alpha in np.linspace(0.0, 1.0, 5):
        generator.set_alpha(alpha)
        discriminator.set_alpha(alpha)
        outputs.append(np.asarray(step(z)))
    assert step.experimental_get_tracing_count() == 1
    assert not np.allclose(outputs[0], outputs[-1])


def checkpoint_keys(path):
    return {name: shape for name, shape in tf.train.list_variables(path)}


def test_checkpoint_holds_every_variable_of_both_networks(tmp_path):
    generator, discriminator = Generator(32, **TINY), Discriminator(32, **TINY)
    path = tf.train.Checkpoint(generator=generator, discriminator=discriminator).write(
        str(tmp_path / "ckpt"))
    keys = checkpoint_keys(path)
    saved = [shape for name, shape in keys.items() if name.endswith("VARIABLE_VALUE")]
    variables = generator.weights + discriminator.weights
    assert len(saved) == len(variables) == len({id(v) for v in variables})
    assert "generator/block_32x32/conv1/kernel/.ATTRIBUTES/VARIABLE_VALUE" in keys
    assert "discriminator/from_rgb_8x8/conv/kernel/.ATTRIBUTES/VARIABLE_VALUE" in keys
    assert "generator/fade/alpha/.ATTRIBUTES/VARIABLE_VALUE" in keys
    assert sorted(map(tuple, saved)) == sorted(tuple(v.shape) for v in variables)


def test_checkpoint_taken_at_8x8_restores_into_a_model_grown_to_32x32(tmp_path):
    keras.utils.set_random_seed(1)
    generator = Generator(32, **TINY)
    discriminator = Discriminator(32, **TINY)
    generator.set_alpha(0.4)
    z, images = normal(4, generator.latent_size), normal(4, 8, 8, 3)
    g8, d8 = np.asarray(generator.model_for(8)(z)), np.asarray(discriminator.model_for(8)(images))
    path = tf.train.Checkpoint(generator=generator, discriminator=discriminator).write(
        str(tmp_path / "at8"))

    keras.utils.set_random_seed(2)  # different initial weights
    grown_g, grown_d = Generator(32, **TINY), Discriminator(32, **TINY)
    grown_g.model_for(32), grown_d.model_for(32)  # grown before the restore
    tf.train.Checkpoint(generator=grown_g, discriminator=grown_d).read(path).assert_consumed()
    assert float(grown_g.fade_alpha.numpy()) == pytest.approx(0.4)
    np.testing.assert_array_equal(grown_g.model_for(8)(z), g8)
    np.testing.assert_array_equal(grown_d.model_for(8)(images), d8)
    for restored, original in zip(grown_g.weights, generator.weights):
        assert restored.path == original.path
        np.testing.assert_array_equal(restored.numpy(), original.numpy())


def test_same_arguments_give_the_same_weight_order_for_an_ema_copy():
    generator = Generator(16, label_size=2, **TINY)
    ema = Generator.from_config(generator.get_config())
    assert ema.get_config() == generator.get_config()
    assert [v.path for v in ema.weights] == [v.path for v in generator.weights]
    assert [v.shape for v in ema.weights] == [v.shape for v in generator.weights]
    for target, source in zip(ema.weights, generator.weights):
        target.assign(source)
    inputs = [normal(2, generator.latent_size), np.eye(2, dtype="float32")]
    np.testing.assert_array_equal(ema.model_for(16)(inputs), generator.model_for(16)(inputs))


def test_discriminator_strided_grouping_matches_the_original_grouping():
    strided = Discriminator(8, mbstd_grouping="strided", **TINY)
    consecutive = Discriminator.from_config({**strided.get_config(),
                                             "mbstd_grouping": "consecutive"})
    for target, source in zip(consecutive.weights, strided.weights):
        target.assign(source)
    images = normal(8, 8, 8, 3)
    # Same weights, different groups: different scores; a permutation that maps one grouping
    # onto the other gives the same scores.
    a = np.asarray(strided.model_for(8)(images))
    b = np.asarray(consecutive.model_for(8)(images))
    assert not np.allclose(a, b)
    order = [0, 2, 4, 6, 1, 3, 5, 7]  # strided groups {0,2,4,6}, {1,3,5,7} made consecutive
    np.testing.assert_allclose(consecutive.model_for(8)(images[order]), a[order], rtol=1e-5)


@pytest.mark.parametrize("resolution", [3, 2048, 48, "64"])
def test_invalid_resolution_is_rejected_with_a_clear_message(resolution):
    with pytest.raises(ValueError, match="power of two between 4 and 1024"):
        Generator(resolution)
    with pytest.raises(ValueError, match="resolution must be one of"):
        Generator(8, **TINY).model_for(16)
    assert log2_resolution(1024) == 10


def test_summary_command_prints_layers_and_totals():
    result = subprocess.run(
        [sys.executable, "-m", "progan_tf.networks", "--resolution", "32"],
        capture_output=True, text=True, timeout=120, check=True)
    assert "generator" in result.stdout and "block_32x32/conv1_down" in result.stdout
    assert "total generator" in result.stdout
    last = result.stdout.strip().splitlines()[-1].split()
    assert last == ["32", "20,719,628", "20,726,785"]
    bad = subprocess.run([sys.executable, "-m", "progan_tf.networks", "--resolution", "30"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--resolution must be a power of two" in bad.stderr


def all_weights_equal(first, second):
    return all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first.weights, second.weights))


@pytest.mark.parametrize("build", [
    lambda **kw: Generator(16, label_size=2, **TINY, **kw),
    lambda **kw: Discriminator(16, label_size=2, **TINY, **kw),
    lambda **kw: StyleGenerator(16, label_size=2, latent_size=8, dlatent_size=8,
                                mapping_fmaps=8, mapping_layers=2, **TINY, **kw),
    lambda **kw: stylegan_discriminator(16, **TINY, **kw),
], ids=["generator", "discriminator", "style_generator", "stylegan_discriminator"])
def test_seeded_networks_have_initial_weights_that_are_a_function_of_the_seed(build):
    keras.utils.set_random_seed(1)
    first = build(seed=5)
    keras.utils.set_random_seed(2)  # the global random state plays no part
    second, other = build(seed=5), build(seed=6)
    assert all_weights_equal(first, second)
    random = [w for w in first.weights if float(np.std(w.numpy())) > 0]
    assert len(random) > len(first.resolutions)  # kernels, fixed noise, label embedding
    for mine, theirs in zip(first.weights, other.weights):
        if float(np.std(mine.numpy())) > 0:  # every random weight differs with another seed
            assert not np.allclose(mine.numpy(), theirs.numpy()), mine.path
    kernels = [w.numpy().ravel()[:8] for w in random]  # and no two weights share a stream
    assert len({k.tobytes() for k in kernels}) == len(kernels)
    assert "seed" not in first.get_config()


@pytest.mark.parametrize("network_class", [Generator, Discriminator, StyleGenerator])
def test_dtype_reaches_every_layer_and_is_not_stored(network_class):
    kwargs = dict(TINY, latent_size=8, dlatent_size=8, mapping_fmaps=8, mapping_layers=2) \
        if network_class is StyleGenerator else TINY
    network = network_class(16, dtype="mixed_float16", **kwargs)
    sublayers = network._flatten_layers(include_self=False)
    assert len(sublayers) > 10
    assert {layer.dtype_policy.name for layer in sublayers} == {"mixed_float16"}
    model = network.model_for(16)
    assert {layer.dtype_policy.name for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer)} == {"mixed_float16"}
    assert "dtype" not in network.get_config()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        rebuilt = network_class.from_config(network.get_config())
        stored_by_older_versions = network_class.from_config(
            {**network.get_config(), "dtype": "mixed_float16"})
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for float32 in (rebuilt, stored_by_older_versions):
        assert {layer.dtype_policy.name for layer in float32._flatten_layers()} == {"float32"}
        inputs = normal(2, 16, 16, 3) if network_class is Discriminator else normal(2, 8 if (
            network_class is StyleGenerator) else float32.latent_size)
        assert float32.model_for(16)(inputs).dtype == "float32"
    assert model(inputs).dtype == "float16"


# --- options the official pickles need (issue 13): ProGAN's unfused D, StyleGAN's cutoff ------


def _identity_conv(conv, bias=0.0):
    """Sets a 1-channel 3x3 WeightScaledConv2D to x -> x + bias (center tap 1 after scaling)."""
    kernel = np.zeros(conv.kernel.shape, "float32")
    kernel[1, 1, 0, 0] = 1.0 / conv.runtime_scale
    conv.kernel.assign(kernel)
    conv.bias.assign(np.full(conv.bias.shape, bias, "float32"))


@pytest.mark.parametrize("fused_scale, expected", [(True, -0.1), (False, 0.1)])
def test_unfused_discriminator_block_pools_after_bias_and_lrelu(fused_scale, expected):
    from progan_tf.networks import DiscriminatorBlock

    block = DiscriminatorBlock(1, 1, fused_scale=fused_scale)
    block.build((None, 4, 4, 1))
    _identity_conv(block.conv0)
    _identity_conv(block.conv1, bias=-1.0)
    x = np.tile(np.array([[2.0, 0.0], [0.0, 0.0]], "float32"), (2, 2))[None, :, :, None]
    # Each 2x2 window holds 2, 0, 0, 0. Fused (pool, +bias, lrelu): lrelu(0.5 - 1) = -0.1.
    # Unfused (+bias, lrelu, pool): mean(lrelu([1, -1, -1, -1])) = (1 - 0.6) / 4 = 0.1.
    np.testing.assert_allclose(block(x), np.full((1, 2, 2, 1), expected), rtol=1e-6)
    assert block.conv1.name == ("conv1_down" if fused_scale else "conv1")


def test_discriminator_fused_scale_is_stored_only_when_unfused():
    unfused = Discriminator(8, fused_scale=False, **TINY)
    config = unfused.get_config()
    assert config["fused_scale"] is False
    rebuilt = Discriminator.from_config(config)
    assert not rebuilt.fused_scale and not rebuilt.block_8x8.fused_scale
    fused = Discriminator(8, **TINY)
    # A run's network.json written before the option existed still describes its D.
    assert "fused_scale" not in fused.get_config()
    assert Discriminator.from_config(fused.get_config()).block_8x8.fused_scale
    x = normal(4, 8, 8, 3)
    for source, target in zip(unfused.weights, rebuilt.weights):
        target.assign(source)
    np.testing.assert_allclose(rebuilt(x), unfused(x), rtol=1e-6)
    for source, target in zip(unfused.weights, fused.weights):
        target.assign(source)
    assert np.abs(np.asarray(fused(x)) - np.asarray(unfused(x))).max() > 1e-3


def test_stylegan_endpoints_truncate_below_the_generators_cutoff():
    from progan_tf import serving
    from progan_tf.networks import truncate

    small = dict(TINY, latent_size=8, dlatent_size=8, mapping_layers=2, mapping_fmaps=8)
    generator = StyleGenerator(8, truncation_cutoff=2, seed=1, **small)
    assert generator.get_config()["truncation_cutoff"] == 2
    assert "truncation_cutoff" not in StyleGenerator(8, seed=1, **small).get_config()
    assert StyleGenerator.from_config(generator.get_config()).truncation_cutoff == 2
    generator.dlatent_avg.assign(normal(8, seed=3))
    endpoint = {e.name: e for e in serving.stylegan_endpoints(generator)}["generate_seeds"]
    seeds = tf.constant([3, 4], tf.int64)
    out = endpoint.fn(seeds=seeds, truncation_psi=tf.constant([0.0, 0.5]))
    dlatents = generator.mapping_model()(out["latents"])
    synthesis = generator.synthesis_model_for(8, noise="const")
    expected = synthesis(truncate(dlatents, generator.dlatent_avg, tf.constant([0.0, 0.5]), 2))
    np.testing.assert_allclose(out["images_float"], np.clip(expected, -1, 1), atol=1e-5)
    default_cutoff = synthesis(truncate(dlatents, generator.dlatent_avg,
                                        tf.constant([0.0, 0.5])))
    assert np.abs(np.asarray(default_cutoff) - np.asarray(expected)).max() > 1e-4


# --- FLOPs counted from the layer shapes (issue 14) ------------------------------------------

from progan_tf.networks import summary  # noqa: E402  (kept with the tests that use it)

EIGHT = dict(fmap_base=64, fmap_max=8)  # 8 maps at every resolution, latent size 8


def conv_flops(kernel, channels_in, channels_out, side):
    """A multiply-add is 2 FLOPs: 2 k^2 C_in C_out H W per sample."""
    return 2 * kernel * kernel * channels_in * channels_out * side * side


def test_flop_counter_matches_hand_counted_convs_and_denses_at_8_and_16():
    generator, discriminator = Generator(16, **EIGHT), Discriminator(16, **EIGHT)
    # The resampling convs run fused: G's conv0 as a stride-2 transposed 4x4 conv over the res/2
    # input, D's conv1_down as a stride-2 4x4 conv giving res/2 outputs (4 taps, not 9).
    g_block = {r: conv_flops(4, 8, 8, r // 2) + conv_flops(3, 8, 8, r) for r in (8, 16)}
    d_block = {r: conv_flops(3, 8, 8, r) + conv_flops(4, 8, 8, r // 2) for r in (8, 16)}
    g8 = 2 * 8 * 16 * 8 + conv_flops(3, 8, 8, 4) + g_block[8]  # dense, 4x4, 8x8
    to_rgb = {r: conv_flops(1, 8, 3, r) for r in (4, 8, 16)}
    d4 = conv_flops(3, 9, 8, 4) + 2 * 128 * 8 + 2 * 8 * 1  # mbstd adds a map; dense0, dense1
    from_rgb = {r: conv_flops(1, 3, 8, r) for r in (4, 8, 16)}
    expected = {  # fade-in: the old path's toRGB / fromRGB at res/2 is counted too
        (generator, 8): g8 + to_rgb[4] + to_rgb[8],
        (generator, 16): g8 + g_block[16] + to_rgb[8] + to_rgb[16],
        (discriminator, 8): from_rgb[8] + d_block[8] + from_rgb[4] + d4,
        (discriminator, 16): from_rgb[16] + d_block[16] + from_rgb[8] + d_block[8] + d4,
    }
    for (network, res), flops in expected.items():
        assert summary.forward_flops(network, res).weights == flops, (network.name, res)
    ops = {op.name: op for op in summary.forward_ops(discriminator, 16)}
    assert ops["block_16x16/conv1_down (fused down)"] == (
        "block_16x16/conv1_down (fused down)", "conv", conv_flops(4, 8, 8, 8))
    assert "block_16x16/downsample" not in ops  # the pooling is part of the fused conv
    g_ops = {op.name: op for op in summary.forward_ops(generator, 16)}
    assert g_ops["block_16x16/conv0 (fused)"].flops == conv_flops(4, 8, 8, 8)
    assert ops["block_4x4/minibatch_stddev"].flops == 4 * 16 * 8  # elementwise, counted apart
    assert summary.forward_flops(generator, 4).weights == 2 * 8 * 128 + conv_flops(
        3, 8, 8, 4) + to_rgb[4]
    unfused = {op.name: op for op in summary.forward_ops(
        Discriminator(16, fused_scale=False, **EIGHT), 16)}
    assert unfused["block_16x16/conv1"].flops == conv_flops(3, 8, 8, 16)
    assert unfused["block_16x16/downsample"].flops == 16 * 16 * 8


def test_flop_counter_counts_fused_upsampling_convs_on_the_small_input():
    style = dict(EIGHT, latent_size=8, dlatent_size=8, mapping_fmaps=8, mapping_layers=2)
    unfused = {op.name: op.flops for op in summary.forward_ops(StyleGenerator(16, **style), 16)}
    fused = {op.name: op.flops for op in summary.forward_ops(
        StyleGenerator(16, fused_min_resolution=16, **style), 16)}
    assert unfused["block_16x16/conv0_up"] == conv_flops(3, 8, 8, 16)
    # A stride-2 transposed 4x4 conv over the 8x8 input: 4 taps per output pixel, not 9.
    assert fused["block_16x16/conv0_up (fused)"] == conv_flops(4, 8, 8, 8)
    assert unfused["mapping/dense_0"] == 2 * 8 * 8
    assert unfused["block_16x16/epilogue1/style"] == 2 * 8 * 16  # AdaIN's style: w -> 2C
    with_mixing = summary.forward_flops(StyleGenerator(16, **style), 16, style_mixing=True)
    assert with_mixing.weights - summary.forward_flops(
        StyleGenerator(16, **style), 16).weights == 2 * (2 * 8 * 8)  # the mapping runs twice


@pytest.mark.parametrize("loss, d_forwards", [("wgan_gp", 14), ("lsgan", 8)])
def test_iteration_flops_are_the_sum_of_the_parts_with_the_stated_multipliers(loss, d_forwards):
    generator, discriminator = Generator(16, **EIGHT), Discriminator(16, **EIGHT)
    flops = summary.iteration_flops(generator, discriminator, 16, batch=8, loss=loss)
    g_forward, d_forward = (summary.forward_flops(n, 16) for n in (generator, discriminator))
    # G: forward in the D step, forward + backward (2) in the G step. D: forward on reals and
    # fakes (2) + their backward (4); penalty forward, image gradient, double backward (1 + 1 +
    # 4); G step forward + input gradients (2).
    factors = {"G": 0, "D": 0}
    for _, network, factor in flops.multipliers:
        factors[network] += factor
    assert factors == {"G": 4, "D": d_forwards}
    active = (count(generator.model_for(16).trainable_variables)
              + count(discriminator.model_for(16).trainable_variables))
    update = 11 * active + 3 * count(generator.trainable_variables)  # Adam, generator EMA
    assert flops.total == 8 * (4 * g_forward.total + d_forwards * d_forward.total) + update
    assert flops.weights == 8 * (4 * g_forward.weights + d_forwards * d_forward.weights)
    assert flops.total == sum(part.total for _, part in flops.parts)
    assert flops.elementwise > 0
    assert ("penalty double backward" in summary.format_iteration_flops(flops)) == (
        loss == "wgan_gp")
