"""Normalisations computed in float32 and cast back: pixel norm (ProGAN sec. 4.2), minibatch
stddev (ProGAN sec. 3) and adaptive instance norm (StyleGAN sec. 2)."""

import keras
from keras import ops

from progan_tf.layers.common import check_positive, register
from progan_tf.layers.equalized import WeightScaledDense


@register
class PixelNormalization(keras.layers.Layer):
    """x / sqrt(mean over channels of x^2 + epsilon), per pixel (ProGAN sec. 4.2); shape unchanged.

    Computed in float32: under float16 the squares overflow above 256 and 1e-8 rounds to 0.
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        check_positive("epsilon", epsilon, "PixelNormalization")
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


@register
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
        check_positive("group_size", group_size, "MinibatchStdev")
        check_positive("num_features", num_features, "MinibatchStdev")
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


@register
class AdaIN(keras.layers.Layer):
    """Adaptive instance normalisation (StyleGAN sec. 2): [x [N, H, W, C], w [N, D]] -> [N, H, W, C].

    Instance norm over H, W in float32 (epsilon 1e-8, no affine of its own), then
    x * (1 + y_scale) + y_bias with [y_scale, y_bias] = WeightScaledDense(2C, gain 1)(w); the dense
    bias starts at 0, so the initial scale is 1 (SPEC 3, step 4-5). `seed`: of the style
    kernel's initializer (None: Keras' global random state).
    """

    def __init__(self, epsilon=1e-8, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_positive("epsilon", epsilon, "AdaIN")
        self.epsilon = float(epsilon)
        self.seed = seed

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        self.channels = x_shape[-1]
        self.style = WeightScaledDense(2 * self.channels, gain=1.0, seed=self.seed,
                                       name="style", dtype=self.dtype_policy)
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
        return {**super().get_config(), "epsilon": self.epsilon, "seed": self.seed}
