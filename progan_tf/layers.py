"""Small Keras 3 layers that ProGAN and StyleGAN are built from (NHWC everywhere).

Equalized learning rate (ProGAN sec. 4.1) keeps every kernel N(0, 1) and multiplies it by
`gain / sqrt(fan_in)` at run time; biases are stored and used as they are (SPEC 1.4). Numerics that
float16 cannot carry (the He scaling of the kernel, pixel norm's epsilon, the minibatch stddev,
instance normalisation) run in float32 under a `mixed_float16` policy and are cast back.
"""

import math

import keras
from keras import ops

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2

_register = keras.saving.register_keras_serializable(package="progan_tf")


def lrelu(x):
    """Leaky ReLU with ProGAN's slope 0.2."""
    return ops.leaky_relu(x, negative_slope=LRELU_SLOPE)


def upsample2d(x, factor=2):
    """Nearest-neighbour upsampling, [N, H, W, C] -> [N, H*f, W*f, C]."""
    if factor == 1:
        return x
    return ops.repeat(ops.repeat(x, factor, axis=1), factor, axis=2)


def downsample2d(x, factor=2):
    """Box-filter (average-pool) downsampling, [N, H, W, C] -> [N, H/f, W/f, C]."""
    if factor == 1:
        return x
    return ops.average_pool(x, pool_size=factor, strides=factor, padding="valid")


def _check_positive(name, value, layer):
    if value <= 0:
        raise ValueError(f"{layer}: `{name}` must be positive, received {name}={value!r}")


class _WeightScaled(keras.layers.Layer):
    """Shared part of the equalized-learning-rate layers: the He constant and lrmul (SPEC 1.4, 3).

    With lrmul the kernel is initialised N(0, 1/lrmul^2) and scaled by gain/sqrt(fan_in)*lrmul, and
    the bias is scaled by lrmul alone, exactly as NVIDIA's StyleGAN code does for its mapping net.
    """

    def __init__(self, gain=SQRT2, lrmul=1.0, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        _check_positive("gain", gain, type(self).__name__)
        _check_positive("lrmul", lrmul, type(self).__name__)
        self.gain = float(gain)
        self.lrmul = float(lrmul)
        self.use_bias = bool(use_bias)

    def _add_kernel_and_bias(self, kernel_shape, fan_in, units):
        # autocast=False: the kernel is scaled in float32 and only then cast to the compute dtype.
        self.kernel = self.add_weight(
            name="kernel", shape=kernel_shape, autocast=False,
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lrmul))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(units,), initializer="zeros",
                                        autocast=False)
        self.runtime_scale = self.gain / math.sqrt(fan_in) * self.lrmul

    def _scaled_kernel(self):
        return ops.cast(self.kernel * self.runtime_scale, self.compute_dtype)

    def _add_bias(self, x):
        if self.bias is None:
            return x
        bias = self.bias * self.lrmul if self.lrmul != 1.0 else self.bias
        return x + ops.cast(bias, self.compute_dtype)  # bias is not scaled by the He constant

    def get_config(self):
        return {**super().get_config(), "gain": self.gain, "lrmul": self.lrmul,
                "use_bias": self.use_bias}


@_register
class WeightScaledDense(_WeightScaled):
    """Fully connected layer with equalized learning rate, [N, ...] -> [N, units].

    Args:
        units: output features.
        gain: He gain; sqrt(2) for layers followed by leaky ReLU, 1 for linear outputs.
        lrmul: learning-rate multiplier (StyleGAN's mapping network uses 0.01).
        use_bias: add a zero-initialised bias (scaled by lrmul only).

    Inputs of rank > 2 are flattened first, as in the original `dense()`.
    """

    def __init__(self, units, gain=SQRT2, lrmul=1.0, use_bias=True, **kwargs):
        super().__init__(gain=gain, lrmul=lrmul, use_bias=use_bias, **kwargs)
        _check_positive("units", units, "WeightScaledDense")
        self.units = int(units)

    def build(self, input_shape):
        fan_in = math.prod(input_shape[1:])
        self._add_kernel_and_bias((fan_in, self.units), fan_in, self.units)

    def call(self, x):
        if len(x.shape) > 2:
            x = ops.reshape(x, (-1, math.prod(x.shape[1:])))
        return self._add_bias(ops.matmul(x, self._scaled_kernel()))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@_register
class WeightScaledConv2D(_WeightScaled):
    """Stride-1 'same' convolution with equalized learning rate, [N, H, W, C_in] -> [N, H, W, filters].

    Args:
        filters: output channels.
        kernel_size: odd square kernel side (3 for blocks, 1 for toRGB/fromRGB).
        gain, lrmul, use_bias: as in `WeightScaledDense`; fan_in = kernel_size^2 * C_in.
    """

    def __init__(self, filters, kernel_size=3, gain=SQRT2, lrmul=1.0, use_bias=True, **kwargs):
        super().__init__(gain=gain, lrmul=lrmul, use_bias=use_bias, **kwargs)
        _check_positive("filters", filters, "WeightScaledConv2D")
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError("WeightScaledConv2D: `kernel_size` must be a positive odd integer, "
                             f"received kernel_size={kernel_size!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        channels_in = input_shape[-1]
        k = self.kernel_size
        self._add_kernel_and_bias((k, k, channels_in, self.filters), k * k * channels_in,
                                  self.filters)

    def call(self, x):
        return self._add_bias(ops.conv(x, self._scaled_kernel(), strides=1, padding="same"))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@_register
class AddBias(keras.layers.Layer):
    """Adds a zero-initialised bias over the last axis (scaled by `lrmul`), shape unchanged.

    ProGAN's first generator layer applies its bias after the reshape to [N, 4, 4, C], so the
    bias is per channel rather than per dense unit.
    """

    def __init__(self, lrmul=1.0, **kwargs):
        super().__init__(**kwargs)
        _check_positive("lrmul", lrmul, "AddBias")
        self.lrmul = float(lrmul)

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros",
                                    autocast=False)

    def call(self, x):
        return x + ops.cast(self.bias * self.lrmul, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "lrmul": self.lrmul}


@_register
class PixelNormalization(keras.layers.Layer):
    """x / sqrt(mean over channels of x^2 + epsilon), per pixel (ProGAN sec. 4.2); shape unchanged.

    Computed in float32: under float16 the squares overflow above 256 and 1e-8 rounds to 0.
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        _check_positive("epsilon", epsilon, "PixelNormalization")
        self.epsilon = float(epsilon)

    def call(self, x):
        x32 = ops.cast(x, "float32")
        norm = ops.rsqrt(ops.mean(ops.square(x32), axis=-1, keepdims=True) + self.epsilon)
        return ops.cast(x32 * norm, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def minibatch_group_size(batch_size, group_size):
    """Largest g <= min(group_size, N) that divides N (N = 6, group 4 gives 3).

    `batch_size` may be a Python int or a scalar integer tensor (dynamic batch).
    """
    if isinstance(batch_size, int):
        return max(g for g in range(1, min(group_size, batch_size) + 1) if batch_size % g == 0)
    candidates = ops.arange(1, group_size + 1, dtype="int32")
    batch_size = ops.cast(batch_size, "int32")
    valid = ops.logical_and(candidates <= batch_size, ops.equal(batch_size % candidates, 0))
    return ops.max(ops.where(valid, candidates, ops.ones_like(candidates)))


@_register
class MinibatchStdev(keras.layers.Layer):
    """Minibatch standard deviation (ProGAN sec. 3): appends the mean per-group stddev as
    `num_features` extra feature maps, [N, H, W, C] -> [N, H, W, C + num_features].

    Args:
        group_size: samples per group (4); clamped to the largest divisor of N not above it.
        num_features: extra maps; channels are split into this many groups (StyleGAN's option).
        grouping: "consecutive" groups samples {0..G-1}, {G..2G-1}, ... so one device and a
            mirrored strategy with a per-replica batch divisible by G form the same groups;
            "strided" groups {m, m+M, m+2M, ...} (M = N/G) as the original code does, for parity
            with weights trained there (SPEC 1.3).
    """

    def __init__(self, group_size=4, num_features=1, grouping="consecutive", **kwargs):
        super().__init__(**kwargs)
        _check_positive("group_size", group_size, "MinibatchStdev")
        _check_positive("num_features", num_features, "MinibatchStdev")
        if grouping not in ("consecutive", "strided"):
            raise ValueError("MinibatchStdev: `grouping` must be 'consecutive' or 'strided', "
                             f"received grouping={grouping!r}")
        self.group_size = int(group_size)
        self.num_features = int(num_features)
        self.grouping = grouping

    def build(self, input_shape):
        if input_shape[-1] % self.num_features:
            raise ValueError(f"MinibatchStdev: {input_shape[-1]} channels cannot be split into "
                             f"num_features={self.num_features} groups")

    def call(self, x):
        _, height, width, channels = x.shape
        features = self.num_features
        batch = x.shape[0] if x.shape[0] is not None else ops.shape(x)[0]
        group = minibatch_group_size(batch, self.group_size)
        y = ops.cast(x, "float32")
        split = (height, width, features, channels // features)
        if self.grouping == "consecutive":
            y = ops.reshape(y, (-1, group, *split))                   # [M, G, H, W, F, c]
            group_axis = 1
        else:
            y = ops.reshape(y, (group, -1, *split))                   # [G, M, H, W, F, c]
            group_axis = 0
        y = y - ops.mean(y, axis=group_axis, keepdims=True)
        y = ops.sqrt(ops.mean(ops.square(y), axis=group_axis) + 1e-8)  # [M, H, W, F, c]
        y = ops.mean(y, axis=(1, 2, 4))                                # [M, F]
        if self.grouping == "consecutive":
            y = ops.repeat(y, group, axis=0)                           # [N, F], sample n -> n // G
        else:
            y = ops.tile(y, (group, 1))                                # [N, F], sample n -> n % M
        y = ops.cast(ops.reshape(y, (-1, 1, 1, features)), x.dtype)
        y = ops.broadcast_to(y, (ops.shape(x)[0], height, width, features))
        return ops.concatenate([x, y], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_features)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size,
                "num_features": self.num_features, "grouping": self.grouping}


@_register
class Upsample2D(keras.layers.Layer):
    """Nearest-neighbour upsampling by `factor`, [N, H, W, C] -> [N, H*f, W*f, C]."""

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        _check_positive("factor", factor, "Upsample2D")
        self.factor = int(factor)

    def call(self, x):
        return upsample2d(x, self.factor)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h * self.factor, w * self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@_register
class Downsample2D(keras.layers.Layer):
    """2x2 (or f x f) average pooling, [N, H, W, C] -> [N, H/f, W/f, C]."""

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        _check_positive("factor", factor, "Downsample2D")
        self.factor = int(factor)

    def call(self, x):
        return downsample2d(x, self.factor)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h // self.factor, w // self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@_register
class FadeIn(keras.layers.Layer):
    """Fade-in blend [old, new] -> old + alpha * (new - old) (ProGAN sec. 3, alpha = 1 - t).

    `alpha` is a non-trainable float32 weight of this layer: `assign` changes it between steps
    without retracing a `tf.function` or rebuilding a model.
    """

    def build(self, input_shape):
        self.alpha = self.add_weight(name="alpha", shape=(), initializer="ones", trainable=False,
                                     autocast=False)

    def call(self, inputs):
        old, new = inputs
        alpha = ops.cast(self.alpha, old.dtype)
        return old + alpha * (new - old)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@_register
class AdaIN(keras.layers.Layer):
    """Adaptive instance normalisation (StyleGAN sec. 2): [x [N, H, W, C], w [N, D]] -> [N, H, W, C].

    Instance norm over H, W in float32 (epsilon 1e-8, no affine of its own), then
    x * (1 + y_scale) + y_bias with [y_scale, y_bias] = WeightScaledDense(2C, gain 1)(w); the dense
    bias starts at 0, so the initial scale is 1 (SPEC 3, step 4-5).
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        _check_positive("epsilon", epsilon, "AdaIN")
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        self.channels = x_shape[-1]
        self.style = WeightScaledDense(2 * self.channels, gain=1.0, name="style",
                                       dtype=self.dtype_policy)
        self.style.build(w_shape)

    def call(self, inputs):
        x, w = inputs
        x32 = ops.cast(x, "float32")
        x32 = x32 - ops.mean(x32, axis=(1, 2), keepdims=True)
        x32 = x32 * ops.rsqrt(ops.mean(ops.square(x32), axis=(1, 2), keepdims=True) + self.epsilon)
        style = ops.cast(self.style(w), "float32")
        y_scale = ops.reshape(style[:, : self.channels], (-1, 1, 1, self.channels))
        y_bias = ops.reshape(style[:, self.channels:], (-1, 1, 1, self.channels))
        return ops.cast(x32 * (1.0 + y_scale) + y_bias, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@_register
class UpsampleConv2D(_WeightScaled):
    """Nearest 2x upsampling followed by a 'same' conv, [N, H, W, C_in] -> [N, 2H, 2W, filters].

    `fused=True` computes the same function as one stride-2 transposed convolution with the 4x4
    kernel made of the four shifted copies of the padded 3x3 kernel (StyleGAN's fused upscale,
    used from output resolution 128 up): cheaper, since the conv runs on the small input. The
    kernel is stored [k, k, C_in, filters] with fan_in = k*k*C_in either way (SPEC 1.2); the fused
    path flips it by 180 degrees so that both paths give identical results for the same weights.
    """

    def __init__(self, filters, kernel_size=3, gain=SQRT2, lrmul=1.0, use_bias=True, fused=False,
                 **kwargs):
        super().__init__(gain=gain, lrmul=lrmul, use_bias=use_bias, **kwargs)
        _check_positive("filters", filters, "UpsampleConv2D")
        if kernel_size != 3:
            raise ValueError(f"UpsampleConv2D: only kernel_size=3 is supported, received "
                             f"kernel_size={kernel_size!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.fused = bool(fused)

    def build(self, input_shape):
        channels_in = input_shape[-1]
        self._add_kernel_and_bias((3, 3, channels_in, self.filters), 9 * channels_in, self.filters)

    def call(self, x):
        kernel = self._scaled_kernel()
        if not self.fused:
            return self._add_bias(ops.conv(upsample2d(x), kernel, strides=1, padding="same"))
        kernel = ops.flip(ops.flip(kernel, axis=0), axis=1)
        kernel = ops.pad(kernel, ((1, 1), (1, 1), (0, 0), (0, 0)))
        kernel = kernel[1:, 1:] + kernel[:-1, 1:] + kernel[1:, :-1] + kernel[:-1, :-1]
        kernel = ops.transpose(kernel, (0, 1, 3, 2))  # [4, 4, filters, C_in] for conv_transpose
        return self._add_bias(ops.conv_transpose(x, kernel, strides=2, padding="same"))

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "fused": self.fused}


@_register
class Blur2D(keras.layers.Layer):
    """Separable low-pass filter (StyleGAN's [1, 2, 1]), depthwise, zero 'same' padding, in
    float32; shape unchanged.

    Args:
        taps: 1-D filter; the 2-D kernel is its outer product, normalised to sum 1.
    """

    def __init__(self, taps=(1, 2, 1), **kwargs):
        super().__init__(**kwargs)
        if len(taps) < 1 or sum(taps) == 0:
            raise ValueError(f"Blur2D: `taps` must be a non-empty filter with a non-zero sum, "
                             f"received taps={taps!r}")
        self.taps = tuple(float(t) for t in taps)

    def build(self, input_shape):
        import numpy as np
        taps = np.asarray(self.taps, "float32")
        kernel = np.outer(taps, taps)
        kernel = kernel / kernel.sum()
        self.channels = input_shape[-1]
        self._kernel = np.tile(kernel[:, :, None, None], (1, 1, self.channels, 1))

    def call(self, x):
        y = ops.depthwise_conv(ops.cast(x, "float32"), self._kernel, strides=1, padding="same")
        return ops.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "taps": list(self.taps)}


@_register
class NoiseInjection(keras.layers.Layer):
    """Adds per-pixel Gaussian noise [N, H, W, 1] scaled by a learned per-channel weight
    (StyleGAN sec. 3.2), [N, H, W, C] -> [N, H, W, C].

    The weight starts at zero, so at initialisation the noise changes nothing. The layer holds a
    fixed noise image ([1, H, W, 1], non-trainable) and a non-trainable `randomize` scalar: 1 draws
    fresh noise on every call (training), 0 uses the fixed image (reproducible rendering).
    Switching is an `assign`, so no retracing.

    Args:
        seed: seed of the layer's random stream.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        _, height, width, channels = input_shape
        self.weight = self.add_weight(name="weight", shape=(channels,), initializer="zeros",
                                      autocast=False)
        self.fixed_noise = self.add_weight(
            name="fixed_noise", shape=(1, height, width, 1), trainable=False, autocast=False,
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed))
        self.randomize = self.add_weight(name="randomize", shape=(), initializer="ones",
                                         trainable=False, autocast=False)

    def call(self, x):
        _, height, width, _ = x.shape
        fresh = keras.random.normal((ops.shape(x)[0], height, width, 1), seed=self.seed_generator)
        noise = self.randomize * fresh + (1.0 - self.randomize) * self.fixed_noise
        return x + ops.cast(noise * self.weight, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
