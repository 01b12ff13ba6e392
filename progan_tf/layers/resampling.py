"""Resampling and blending of feature maps: nearest upsampling, box downsampling, StyleGAN's
[1, 2, 1] blur and ProGAN's fade-in."""

import keras
import numpy as np
from keras import ops

from progan_tf.layers.common import check_positive, register


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


@register
class Upsample2D(keras.layers.Layer):
    """Nearest-neighbour upsampling by `factor`, [N, H, W, C] -> [N, H*f, W*f, C]."""

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        check_positive("factor", factor, "Upsample2D")
        self.factor = int(factor)

    def call(self, x):
        return upsample2d(x, self.factor)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h * self.factor, w * self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register
class Downsample2D(keras.layers.Layer):
    """2x2 (or f x f) average pooling, [N, H, W, C] -> [N, H/f, W/f, C]."""

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        check_positive("factor", factor, "Downsample2D")
        self.factor = int(factor)

    def call(self, x):
        return downsample2d(x, self.factor)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, h // self.factor, w // self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register
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

    def get_config(self):  # no arguments of its own; declared so a policy object serializes
        return super().get_config()


@register
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
