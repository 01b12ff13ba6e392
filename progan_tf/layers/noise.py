"""StyleGAN's per-pixel noise inputs (sec. 3.2), with the noise mode chosen per call."""

import keras
from keras import ops

from progan_tf.layers.common import derive_seed, register

NOISE_MODES = (None, "random", "const")


@register
class NoiseInjection(keras.layers.Layer):
    """Adds per-pixel Gaussian noise [N, H, W, 1] scaled by a learned per-channel weight
    (StyleGAN sec. 3.2), [N, H, W, C] -> [N, H, W, C].

    The weight starts at zero, so at initialisation the noise changes nothing. The layer holds a
    fixed noise image ([1, H, W, 1], non-trainable) for reproducible rendering.

    Args:
        seed: seed of the layer's random stream; the fixed image's initializer gets a seed
            derived from it (None: both draw from Keras' global random state).

    Call arguments:
        x: [N, H, W, C].
        noise: None = fresh noise when `training` is true, else the fixed image; "random" =
            fresh noise on every call; "const" = the fixed image.
        training: Keras' training flag.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        _, height, width, channels = input_shape
        self.weight = self.add_weight(name="weight", shape=(channels,), initializer="zeros",
                                      autocast=False)
        # Checkpoints written before the noise mode became a call argument also hold a
        # `randomize` scalar per layer; restoring them leaves it unused.
        self.fixed_noise = self.add_weight(
            name="fixed_noise", shape=(1, height, width, 1), trainable=False, autocast=False,
            initializer=keras.initializers.RandomNormal(
                stddev=1.0, seed=derive_seed(self.seed, "fixed_noise")))

    def call(self, x, noise=None, training=None):
        if noise not in NOISE_MODES:
            raise ValueError(f"NoiseInjection: `noise` must be one of {NOISE_MODES}, "
                             f"received noise={noise!r}")
        if noise == "const" or (noise is None and not training):
            image = self.fixed_noise
        else:
            _, height, width, _ = x.shape
            image = keras.random.normal((ops.shape(x)[0], height, width, 1),
                                        seed=self.seed_generator)
        return x + ops.cast(image * self.weight, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
