"""Tests for progan_tf.layers: each layer against an independent NumPy computation, a `.keras`
round trip, and float16 behaviour under a mixed_float16 policy."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from progan_tf import layers

RNG = np.random.default_rng(0)


def normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def numpy_conv_same(x, kernel):
    """Plain stride-1 'same' convolution, x [N, H, W, Cin], kernel [k, k, Cin, Cout]."""
    k = kernel.shape[0]
    pad = k // 2
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[-1]), "float64")
    for i in range(k):
        for j in range(k):
            out += np.einsum("nhwc,cd->nhwd", padded[:, i:i + h, j:j + w, :], kernel[i, j])
    return out


def numpy_minibatch_stddev(x, group_size, grouping):
    """ProGAN's minibatch stddev written out with explicit groups of sample indices."""
    n = x.shape[0]
    g = max(c for c in range(1, min(group_size, n) + 1) if n % c == 0)
    m = n // g
    if grouping == "consecutive":
        groups = [list(range(i * g, (i + 1) * g)) for i in range(m)]
    else:
        groups = [list(range(i, n, m)) for i in range(m)]
    extra = np.zeros(x.shape[:3] + (1,), "float64")
    for members in groups:
        stddev = np.sqrt(x[members].astype("float64").var(axis=0) + 1e-8)
        extra[members] = stddev.mean()
    return np.concatenate([x, extra], axis=-1)


# --- equalized learning rate -------------------------------------------------------------------

def test_dense_kernel_is_scaled_by_gain_over_sqrt_fan_in():
    layer = layers.WeightScaledDense(units=3, gain=2.0)
    layer.build((None, 4))
    layer.kernel.assign(np.ones((4, 3), "float32"))
    # Four ones, each weighted 2 / sqrt(4) = 1, add up to 4.
    np.testing.assert_allclose(layer(np.ones((2, 4), "float32")), np.full((2, 3), 4.0))


def test_dense_bias_is_not_scaled_by_the_he_constant():
    layer = layers.WeightScaledDense(units=2, gain=3.0)
    layer.build((None, 9))
    layer.kernel.assign(np.zeros((9, 2), "float32"))
    layer.bias.assign([1.5, -2.0])
    np.testing.assert_allclose(layer(np.ones((1, 9), "float32")), [[1.5, -2.0]])


def test_dense_initial_weights_are_unit_normal_and_bias_zero():
    layer = layers.WeightScaledDense(units=256)
    layer.build((None, 256))
    kernel = layer.kernel.numpy()
    assert abs(kernel.std() - 1.0) < 0.01 and abs(kernel.mean()) < 0.01
    assert not layer.bias.numpy().any()


def test_dense_lrmul_scales_init_std_runtime_scale_and_bias_like_stylegan():
    layer = layers.WeightScaledDense(units=512, gain=math.sqrt(2), lrmul=0.01)
    layer.build((None, 512))
    assert abs(layer.kernel.numpy().std() - 100.0) < 1.0  # init N(0, (1/lrmul)^2)
    assert layer.runtime_scale == pytest.approx(math.sqrt(2) / math.sqrt(512) * 0.01)
    # The effective weight is therefore N(0, gain^2 / fan_in), as without lrmul.
    x = normal(4, 512)
    expected = x @ (layer.kernel.numpy() * layer.runtime_scale)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-4, atol=1e-4)
    layer.bias.assign(np.full((512,), 50.0, "float32"))
    layer.kernel.assign(np.zeros((512, 512), "float32"))
    np.testing.assert_allclose(layer(x), np.full((4, 512), 0.5), rtol=1e-6)  # bias * lrmul


def test_dense_flattens_inputs_of_higher_rank():
    layer = layers.WeightScaledDense(units=3)
    x = normal(2, 4, 4, 5)
    out = layer(x)
    expected = x.reshape(2, -1) @ (layer.kernel.numpy() * math.sqrt(2) / math.sqrt(80))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_scaled_conv_equals_plain_conv_with_scaled_weights():
    layer = layers.WeightScaledConv2D(filters=5, kernel_size=3, gain=1.7)
    x = normal(2, 6, 6, 4, seed=1)
    layer.build(x.shape)
    layer.bias.assign(normal(5, seed=2))
    scale = 1.7 / math.sqrt(3 * 3 * 4)
    expected = numpy_conv_same(x, layer.kernel.numpy() * scale) + layer.bias.numpy()
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_one_by_one_conv_with_gain_one_is_a_scaled_channel_matmul():
    layer = layers.WeightScaledConv2D(filters=3, kernel_size=1, gain=1.0)
    x = normal(2, 4, 4, 16)
    out = layer(x)
    expected = np.einsum("nhwc,cd->nhwd", x, layer.kernel.numpy()[0, 0] / 4.0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_he_scaling_keeps_unit_variance_through_a_linear_layer():
    # With gain 1, unit-variance inputs give unit-variance outputs whatever the fan-in.
    for channels in (8, 128):
        outputs = []
        for seed in range(8):
            keras.utils.set_random_seed(seed)
            layer = layers.WeightScaledConv2D(filters=32, kernel_size=3, gain=1.0)
            out = np.asarray(layer(normal(4, 8, 8, channels, seed=seed + 10)))
            outputs.append(out[:, 1:-1, 1:-1])  # zero padding lowers the fan-in at the border
        variance = np.concatenate([o.ravel() for o in outputs]).var()
        assert abs(variance - 1.0) < 0.1, (channels, variance)


@pytest.mark.parametrize("kwargs", [dict(gain=0.0), dict(lrmul=-1.0), dict(kernel_size=2),
                                    dict(filters=0)])
def test_conv_rejects_invalid_arguments_naming_them(kwargs):
    args = {"filters": 4, "kernel_size": 3, **kwargs}
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        layers.WeightScaledConv2D(**args)


# --- pixel norm, up/down sampling, fade-in -----------------------------------------------------

def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = normal(3, 5, 5, 16) * 7.0
    out = np.asarray(layers.PixelNormalization()(x))
    np.testing.assert_allclose(np.mean(out ** 2, axis=-1), np.ones((3, 5, 5)), rtol=1e-5)
    expected = x / np.sqrt(np.mean(x.astype("float64") ** 2, axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_pixel_norm_epsilon_keeps_zero_vectors_finite():
    out = layers.PixelNormalization()(np.zeros((1, 2, 2, 4), "float32"))
    assert np.all(np.asarray(out) == 0.0)


def test_upsample_is_nearest_neighbour_and_downsample_is_box_mean():
    x = normal(2, 4, 4, 3)
    up = np.asarray(layers.Upsample2D()(x))
    np.testing.assert_array_equal(up, x.repeat(2, axis=1).repeat(2, axis=2))
    down = np.asarray(layers.Downsample2D()(x))
    expected = x.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(down, expected, rtol=1e-6)
    # Box-down of a nearest-up image is the image itself.
    np.testing.assert_allclose(layers.downsample2d(layers.upsample2d(x, 4), 4), x, rtol=1e-6)


def test_fade_in_blends_by_alpha_and_changing_alpha_does_not_retrace():
    fade = layers.FadeIn()
    old, new = normal(2, 4, 4, 3, seed=1), normal(2, 4, 4, 3, seed=2)
    fade([old, new])

    @tf.function
    def blend(a, b):
        return fade([a, b])

    for alpha in (0.0, 0.25, 1.0):
        fade.alpha.assign(alpha)
        np.testing.assert_allclose(blend(old, new), old + alpha * (new - old), rtol=1e-6,
                                   atol=1e-6)
    assert blend.experimental_get_tracing_count() == 1
    assert not fade.trainable_weights and len(fade.non_trainable_weights) == 1


# --- minibatch stddev --------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [8, 4, 6, 2, 1])
@pytest.mark.parametrize("grouping", ["consecutive", "strided"])
def test_minibatch_stddev_matches_numpy_reference(batch, grouping):
    x = normal(batch, 3, 3, 5, seed=batch)
    out = layers.MinibatchStdev(group_size=4, grouping=grouping)(x)
    np.testing.assert_allclose(out, numpy_minibatch_stddev(x, 4, grouping), rtol=1e-5,
                               atol=1e-6)


def test_minibatch_stddev_groupings_differ_and_dynamic_batch_picks_divisor():
    x = normal(8, 2, 2, 3)
    consecutive = layers.MinibatchStdev(grouping="consecutive")(x)[..., -1]
    strided = layers.MinibatchStdev(grouping="strided")(x)[..., -1]
    assert not np.allclose(consecutive, strided)
    # Batch 6 with group 4 uses groups of 3, also when the batch is only known at run time.
    layer = layers.MinibatchStdev()
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, 2, 2, 3], tf.float32)])
    x6 = normal(6, 2, 2, 3, seed=3)
    np.testing.assert_allclose(fn(x6), numpy_minibatch_stddev(x6, 4, "consecutive"), rtol=1e-5)
    assert layers.minibatch_group_size(6, 4) == 3
    assert layers.minibatch_group_size(7, 4) == 1
    assert int(layers.minibatch_group_size(tf.constant(12), 4)) == 4


def test_minibatch_stddev_with_two_features_splits_channels():
    x = normal(4, 2, 2, 6)
    out = np.asarray(layers.MinibatchStdev(num_features=2)(x))
    assert out.shape == (4, 2, 2, 8)
    for f in range(2):
        part = x[..., 3 * f:3 * (f + 1)].astype("float64")
        expected = np.sqrt(part.var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(out[..., 6 + f], expected, rtol=1e-5)


# --- AdaIN -------------------------------------------------------------------------------------

def test_adain_matches_numpy_instance_norm_and_style_modulation():
    x, w = normal(2, 4, 4, 3, seed=1) * 3 + 1, normal(2, 5, seed=2)
    layer = layers.AdaIN()
    layer([x, w])
    layer.style.bias.assign(normal(6, seed=3))
    out = np.asarray(layer([x, w]))
    x64 = x.astype("float64")
    centred = x64 - x64.mean(axis=(1, 2), keepdims=True)
    normed = centred / np.sqrt((centred ** 2).mean(axis=(1, 2), keepdims=True) + 1e-8)
    style = w @ (layer.style.kernel.numpy() / math.sqrt(5)) + layer.style.bias.numpy()
    expected = normed * (1 + style[:, None, None, :3]) + style[:, None, None, 3:]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_adain_has_only_the_style_dense_weights_and_starts_with_scale_one():
    layer = layers.AdaIN()
    layer([normal(2, 4, 4, 8), normal(2, 16)])
    # Dense 16 -> 2*8 plus its bias: no scale/offset of its own (GroupNormalization would add 16).
    assert sum(int(np.prod(v.shape)) for v in layer.trainable_weights) == 16 * 16 + 16
    assert layer.style.gain == 1.0 and not layer.style.bias.numpy().any()
    layer.style.kernel.assign(np.zeros((16, 16), "float32"))
    x = normal(2, 4, 4, 8, seed=5)
    out = np.asarray(layer([x, normal(2, 16)]))
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose((out ** 2).mean(axis=(1, 2)), 1.0, rtol=1e-4)


# --- serialization and mixed precision ---------------------------------------------------------

def all_layers_model():
    images = keras.Input((8, 8, 3))
    style = keras.Input((6,))
    x = layers.WeightScaledConv2D(8, 3, name="conv")(images)
    x = layers.AddBias(name="bias")(x)
    x = layers.PixelNormalization(name="pn")(x)
    x = layers.AdaIN(name="adain")([x, style])
    up = layers.Upsample2D(name="up")(x)
    x = layers.FadeIn(name="fade")([up, layers.WeightScaledConv2D(8, 1, gain=1.0, name="c1")(up)])
    x = layers.Downsample2D(name="down")(x)
    x = layers.MinibatchStdev(group_size=2, grouping="strided", name="mbstd")(x)
    out = layers.WeightScaledDense(4, lrmul=0.1, name="fc")(x)
    return keras.Model([images, style], out)


def test_keras_file_round_trip_gives_identical_outputs_and_configs(tmp_path):
    model = all_layers_model()
    model.get_layer("fade").alpha.assign(0.3)
    model.get_layer("adain").style.bias.assign(normal(16, seed=4))
    model.save(tmp_path / "m.keras")
    revived = keras.models.load_model(tmp_path / "m.keras")
    for layer in model.layers:
        assert revived.get_layer(layer.name).get_config() == layer.get_config()
        assert type(revived.get_layer(layer.name)) is type(layer)
    inputs = [normal(4, 8, 8, 3, seed=1), normal(4, 6, seed=2)]
    np.testing.assert_array_equal(revived(inputs), model(inputs))
    assert float(revived.get_layer("fade").alpha.numpy()) == pytest.approx(0.3)


@pytest.mark.parametrize("layer", [
    layers.WeightScaledDense(7, gain=1.0, lrmul=0.01, use_bias=False),
    layers.WeightScaledConv2D(5, kernel_size=1, gain=0.5, seed=4),
    layers.NoiseInjection(seed=2), layers.MinibatchStdev(group_size=2, num_features=2, grouping="strided"),
    layers.PixelNormalization(epsilon=1e-6), layers.AdaIN(epsilon=1e-5), layers.AddBias(lrmul=0.5),
    layers.Upsample2D(factor=4), layers.Downsample2D(factor=4), layers.FadeIn(),
    layers.ConvDownsample2D(6, gain=1.0, use_bias=False, seed=3),
    layers.UpsampleConv2D(6, fused=True, seed=3),
])
def test_config_is_exactly_the_constructor_arguments(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"].startswith("progan_tf>")
    assert keras.saving.deserialize_keras_object(serialized).get_config() == layer.get_config()


def test_float16_inputs_under_mixed_precision_do_not_overflow():
    policy = "mixed_float16"  # passed to each layer: nothing here sets the global policy
    # 400^2 = 160,000 > 65,504: a float16 mean of squares would be inf, and 1e-8 rounds to 0.
    x = np.full((4, 4, 4, 8), 400.0, "float16")
    x[0, 0, 0, :] = 0.0
    pn = np.asarray(layers.PixelNormalization(dtype=policy)(x))
    assert pn.dtype == np.float16 and np.all(np.isfinite(pn))
    np.testing.assert_allclose(pn[1], 1.0, rtol=1e-3)
    assert np.all(pn[0, 0, 0] == 0)

    conv = layers.WeightScaledConv2D(8, 3, dtype=policy)
    out = conv(x)
    assert out.dtype == "float16" and conv.kernel.dtype == "float32"
    assert np.all(np.isfinite(np.asarray(out)))
    reference = numpy_conv_same(x.astype("float32"), conv.kernel.numpy() * conv.runtime_scale)
    np.testing.assert_allclose(np.asarray(out, "float32"), reference, rtol=1e-2, atol=1.0)

    stddev = np.asarray(layers.MinibatchStdev(dtype=policy)(x * 100))  # variance 1.6e9 overflows float16
    assert np.all(np.isfinite(stddev))
    adain = layers.AdaIN(dtype=policy)(
        [np.asarray(normal(2, 4, 4, 8) * 300, "float16"), np.ones((2, 4), "float16")])
    assert adain.dtype == "float16" and np.all(np.isfinite(np.asarray(adain)))


# --- StyleGAN layers ---------------------------------------------------------------------------

def test_upsample_conv_equals_nearest_upsampling_then_conv_and_fused_path_agrees():
    x = normal(2, 5, 5, 3)
    plain = layers.UpsampleConv2D(4, fused=False)
    fused = layers.UpsampleConv2D(4, fused=True)
    plain.build(x.shape)
    fused.build(x.shape)
    fused.kernel.assign(plain.kernel)
    for layer in (plain, fused):
        layer.bias.assign(np.arange(4, dtype="float32"))
    scale = math.sqrt(2) / math.sqrt(27)
    expected = numpy_conv_same(x.repeat(2, 1).repeat(2, 2), plain.kernel.numpy() * scale) + \
        np.arange(4)
    np.testing.assert_allclose(plain(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused(x), expected, rtol=1e-5, atol=1e-5)


def test_conv_downsample_is_pool_of_conv_plus_bias_with_the_plain_convs_weights():
    x = normal(2, 6, 8, 3)
    fused = layers.ConvDownsample2D(4, seed=5)
    plain = layers.WeightScaledConv2D(4, 3, seed=5)
    fused.build(x.shape)
    plain.build(x.shape)
    np.testing.assert_array_equal(fused.kernel.numpy(), plain.kernel.numpy())  # same seed
    assert fused.runtime_scale == plain.runtime_scale == math.sqrt(2) / math.sqrt(27)
    for layer in (fused, plain):
        layer.bias.assign(np.arange(4, dtype="float32"))
    assert fused.compute_output_shape(x.shape) == (2, 3, 4, 4)
    np.testing.assert_allclose(fused(x), layers.downsample2d(plain(x)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="kernel_size=3"):
        layers.ConvDownsample2D(4, kernel_size=1)


def test_blur_is_the_normalised_121_filter_with_zero_padding():
    x = np.zeros((1, 5, 5, 2), "float32")
    x[0, 2, 2, 0] = 16.0
    out = np.asarray(layers.Blur2D()(x))
    np.testing.assert_allclose(out[0, 1:4, 1:4, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    assert not out[..., 1].any() and out.sum() == pytest.approx(16.0)
    ones = np.asarray(layers.Blur2D()(np.ones((1, 4, 4, 1), "float32")))
    assert ones[0, 1, 1, 0] == pytest.approx(1.0) and ones[0, 0, 0, 0] == pytest.approx(9 / 16)


def test_noise_injection_starts_as_identity_then_random_or_fixed():
    x = normal(2, 4, 4, 3)
    layer = layers.NoiseInjection(seed=3)
    np.testing.assert_array_equal(layer(x, noise="random"), x)  # weight initialised to zero
    layer.weight.assign([1.0, 0.0, 2.0])
    for kwargs in ({"noise": "random"}, {"training": True}, {"noise": "random", "training": False}):
        first, second = np.asarray(layer(x, **kwargs)), np.asarray(layer(x, **kwargs))
        assert not np.allclose(first, second)  # fresh noise every call
        np.testing.assert_array_equal(first[..., 1], x[..., 1])
        noise = first - x
        np.testing.assert_allclose(noise[..., 2], 2 * noise[..., 0], rtol=1e-5, atol=1e-6)
    fixed_image = layer.fixed_noise.numpy()[..., 0].repeat(2, axis=0)
    for kwargs in ({}, {"training": False}, {"noise": "const"},
                   {"noise": "const", "training": True}):
        fixed = np.asarray(layer(x, **kwargs))
        np.testing.assert_array_equal(fixed, np.asarray(layer(x)))
        np.testing.assert_allclose(fixed[..., 0] - x[..., 0], fixed_image, rtol=1e-6)
    # The random stream and the fixed image come from different seeds.
    assert not np.allclose(np.asarray(layer(x, noise="random"))[:1], fixed[:1])
    assert [w.name for w in layer.weights] == ["weight", "fixed_noise"]  # no mode variable


def test_noise_injection_rejects_an_unknown_noise_mode():
    layer = layers.NoiseInjection()
    with pytest.raises(ValueError, match="noise.*'fixed'"):
        layer(normal(1, 4, 4, 2), noise="fixed")


def test_derived_seeds_are_a_pure_function_of_seed_and_position():
    assert layers.derive_seed(None, "block_8x8") is None
    assert layers.derive_seed(7, "block_8x8", "conv0") == layers.derive_seed(7, "block_8x8",
                                                                             "conv0")
    seeds = {layers.derive_seed(seed, name) for seed in (0, 1) for name in ("conv0", "conv1")}
    assert len(seeds) == 4 and all(0 <= seed < 2**31 for seed in seeds)


def test_seeded_layers_draw_the_same_initial_weights():
    def kernels(seed):
        dense = layers.WeightScaledDense(4, seed=seed)
        dense.build((None, 3))
        adain = layers.AdaIN(seed=seed)
        adain.build(((None, 2, 2, 3), (None, 5)))
        return dense.kernel.numpy(), adain.style.kernel.numpy()

    for first, second in zip(kernels(11), kernels(11)):
        np.testing.assert_array_equal(first, second)
    assert not np.allclose(kernels(11)[0], kernels(12)[0])
