"""Equalized learning rate (ProGAN sec. 4.1): layers that store N(0, 1) kernels and scale them by
gain / sqrt(fan_in) at run time, plus the unscaled per-channel bias (SPEC 1.4)."""

import math

import keras
from keras import ops

from progan_tf.layers.common import SQRT2, check_positive, register
from progan_tf.layers.conv import conv_downsample, same_conv, upsample_conv
from progan_tf.layers.resampling import upsample2d


class _WeightScaled(keras.layers.Layer):
    """Shared part of the equalized-learning-rate layers: the He constant and lrmul (SPEC 1.4, 3).

    With lrmul the kernel is initialised N(0, 1/lrmul^2) and scaled by gain/sqrt(fan_in)*lrmul, and
    the bias is scaled by lrmul alone, exactly as NVIDIA's StyleGAN code does for its mapping net.
    """

    def __init__(self, gain=SQRT2, lrmul=1.0, use_bias=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_positive("gain", gain, type(self).__name__)
        check_positive("lrmul", lrmul, type(self).__name__)
        self.gain = float(gain)
        self.lrmul = float(lrmul)
        self.use_bias = bool(use_bias)
        self.seed = seed

    def _add_kernel_and_bias(self, kernel_shape, fan_in, units):
        # autocast=False: the kernel is scaled in float32 and only then cast to the compute dtype.
        self.kernel = self.add_weight(
            name="kernel", shape=kernel_shape, autocast=False,
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lrmul, seed=self.seed))
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
                "use_bias": self.use_bias, "seed": self.seed}


@register
class WeightScaledDense(_WeightScaled):
    """Fully connected layer with equalized learning rate, [N, ...] -> [N, units].

    Args:
        units: output features.
        gain: He gain; sqrt(2) for layers followed by leaky ReLU, 1 for linear outputs.
        lrmul: learning-rate multiplier (StyleGAN's mapping network uses 0.01).
        use_bias: add a zero-initialised bias (scaled by lrmul only).
        seed: seed of the kernel's initializer; None draws from Keras' global random state.

    Inputs of rank > 2 are flattened first, as in the original `dense()`.
    """

    def __init__(self, units, gain=SQRT2, lrmul=1.0, use_bias=True, **kwargs):
        super().__init__(gain=gain, lrmul=lrmul, use_bias=use_bias, **kwargs)
        check_positive("units", units, "WeightScaledDense")
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


@register
class WeightScaledConv2D(_WeightScaled):
    """Stride-1 'same' convolution with equalized learning rate, [N, H, W, C_in] -> [N, H, W, filters].

    Args:
        filters: output channels.
        kernel_size: odd square kernel side (3 for blocks, 1 for toRGB/fromRGB).
        gain, lrmul, use_bias, seed: as in `WeightScaledDense`; fan_in = kernel_size^2 * C_in.
    """

    def __init__(self, filters, kernel_size=3, gain=SQRT2, lrmul=1.0, use_bias=True, **kwargs):
        super().__init__(gain=gain, lrmul=lrmul, use_bias=use_bias, **kwargs)
        check_positive("filters", filters, "WeightScaledConv2D")
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
        return self._add_bias(same_conv(x, self._scaled_kernel()))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@register
class AddBias(keras.layers.Layer):
    """Adds a zero-initialised bias over the last axis (scaled by `lrmul`), shape unchanged.

    ProGAN's first generator layer applies its bias after the reshape to [N, 4, 4, C], so the
    bias is per channel rather than per dense unit.
    """

    def __init__(self, lrmul=1.0, **kwargs):
        super().__init__(**kwargs)
        check_positive("lrmul", lrmul, "AddBias")
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


class _Resampling3x3(_WeightScaled):
    """Shared part of the resampling convolutions: a 3x3 kernel [3, 3, C_in, filters], fan_in =
    9 * C_in, stored as `WeightScaledConv2D`'s (the same weights for the same seed)."""

    def __init__(self, filters, kernel_size=3, gain=SQRT2, lrmul=1.0, use_bias=True, **kwargs):
        super().__init__(gain=gain, lrmul=lrmul, use_bias=use_bias, **kwargs)
        name = type(self).__name__
        check_positive("filters", filters, name)
        if kernel_size != 3:
            raise ValueError(f"{name}: only kernel_size=3 is supported, received "
                             f"kernel_size={kernel_size!r}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        channels_in = input_shape[-1]
        self._add_kernel_and_bias((3, 3, channels_in, self.filters), 9 * channels_in, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@register
class UpsampleConv2D(_Resampling3x3):
    """Nearest 2x upsampling followed by a 'same' conv, [N, H, W, C_in] -> [N, 2H, 2W, filters].

    `fused=True` computes the same function as one stride-2 transposed convolution with the 4x4
    kernel made of the four shifted copies of the padded 3x3 kernel (`conv.upsample_conv`;
    StyleGAN's fused upscale, used from output resolution 128 up; ProGAN's generator blocks
    always): cheaper, since the conv runs on the small input. The kernel is stored [k, k, C_in,
    filters] with fan_in = k*k*C_in either way (SPEC 1.2); the fused path rotates it by 180
    degrees so that both paths give identical results for the same weights.
    """

    def __init__(self, filters, kernel_size=3, fused=False, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self.fused = bool(fused)

    def call(self, x):
        kernel = self._scaled_kernel()
        if not self.fused:
            return self._add_bias(same_conv(upsample2d(x), kernel))
        return self._add_bias(upsample_conv(x, kernel))

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)

    def get_config(self):
        return {**super().get_config(), "fused": self.fused}


@register
class ConvDownsample2D(_Resampling3x3):
    """A 'same' 3x3 conv, then 2x2 average pooling, then the bias, [N, H, W, C_in] -> [N, H/2, W/2,
    filters] (H, W even): the original's fused `conv2d_downscale2d`, computed as one stride-2
    convolution with the 4x4 kernel made of the four shifted copies of the padded 3x3 kernel
    (`conv.conv_downsample`): 4 instead of 9 multiply-adds per input pixel. Pooling before the
    bias equals pooling after it.
    """

    def call(self, x):
        return self._add_bias(conv_downsample(x, self._scaled_kernel()))

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, None if h is None else h // 2, None if w is None else w // 2, self.filters)
