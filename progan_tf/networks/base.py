"""Growing-network machinery shared by ProGAN's and StyleGAN's networks: the channel formula,
resolution checks, blocks that report their layers, and the fade-in / per-resolution model cache."""

import math

import keras

from progan_tf import layers


def nf(stage, fmap_base=8192, fmap_decay=1.0, fmap_max=512):
    """Feature maps at `stage`: resolution 2^r uses nf(r - 1) (SPEC 1.1)."""
    return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)


def log2_resolution(resolution, what="resolution"):
    """log2 of a power-of-two resolution in 4..1024; a clear ValueError otherwise."""
    if not isinstance(resolution, int) or resolution < 4 or resolution > 1024 or (
            resolution & (resolution - 1)):
        raise ValueError(f"{what} must be a power of two between 4 and 1024, "
                         f"received {resolution!r}")
    return int(math.log2(resolution))


def count_params(layer):
    """Trainable parameters of `layer`."""
    return sum(math.prod(w.shape) for w in layer.trainable_weights)


class Block(keras.layers.Layer):
    """A block whose sublayers are built in `build`, so every variable exists once built."""

    def summary_rows(self, input_shape):
        """[(sublayer name, output shape, parameters)] for the per-layer table."""
        raise NotImplementedError


class ModelCache:
    """Plain holder for the per-resolution models: not a trackable, so neither Keras nor
    tf.train.Checkpoint follow it (the models are keyed by op position, SPEC 10)."""

    def __init__(self):
        self.models = {}


class GrowingNetwork(keras.layers.Layer):
    """What the generator and discriminator share: resolutions, fade-in alpha, model cache."""

    def __init__(self, resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max,
                 **kwargs):
        super().__init__(**kwargs)
        self.resolution_log2 = log2_resolution(resolution)
        if num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, received {num_channels!r}")
        if label_size < 0:
            raise ValueError(f"label_size must be >= 0, received {label_size!r}")
        self.resolution = resolution
        self.num_channels = num_channels
        self.label_size = label_size
        self.fmap_base = fmap_base
        self.fmap_decay = fmap_decay
        self.fmap_max = fmap_max
        self.resolutions = tuple(2 ** r for r in range(2, self.resolution_log2 + 1))
        self.fade = layers.FadeIn(name="fade")
        self.fade.build(None)
        self._cache = ModelCache()

    def nf(self, stage):
        return nf(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

    def filters_at(self, res):
        """Feature maps of the block at resolution `res`: nf(log2(res) - 1)."""
        return self.nf(int(math.log2(res)) - 1)

    @property
    def fade_alpha(self):
        """Non-trainable float32 scalar: weight of the newest resolution (1 = fully grown)."""
        return self.fade.alpha

    def set_alpha(self, alpha):
        self.fade.alpha.assign(alpha)

    def _check_resolution(self, res):
        if res not in self.resolutions:
            raise ValueError(f"{self.name}: resolution must be one of {self.resolutions}, "
                             f"received {res!r}")

    def model_for(self, res):
        """Functional model at resolution `res` (cached), fading in from res/2 by `fade_alpha`."""
        self._check_resolution(res)
        if res not in self._cache.models:
            self._cache.models[res] = self._build_model(res)
        return self._cache.models[res]

    def _block(self, prefix, res):
        return getattr(self, f"{prefix}_{res}x{res}")

    def _add_block_and_to_rgb(self, res, block):
        """Owns `block` as `block_RxR` and a new linear 1x1 toRGB (gain 1) as `to_rgb_RxR`."""
        to_rgb = layers.WeightScaledConv2D(self.num_channels, 1, gain=1.0,
                                           name=f"to_rgb_{res}x{res}", dtype=self.dtype_policy)
        to_rgb.build((None, res, res, self.filters_at(res)))
        setattr(self, f"block_{res}x{res}", block)
        setattr(self, f"to_rgb_{res}x{res}", to_rgb)

    def input_specs(self):
        """Generator inputs by name and shape: latents, then labels when conditional."""
        specs = [("latents", (self.latent_size,))]
        if self.label_size:
            specs.append(("labels", (self.label_size,)))
        return specs

    def _generator_rows(self, first_input_shape):
        """Per-layer rows of the synthesis blocks and toRGB layers, lowest resolution first."""
        rows = []
        prev = first_input_shape
        for res in self.resolutions:
            block = self._block("block", res)
            rows += [(f"{block.name}/{n}", s, p) for n, s, p in block.summary_rows(prev)]
            to_rgb = self._block("to_rgb", res)
            rows.append((to_rgb.name, (res, res, self.num_channels), count_params(to_rgb)))
            prev = (None, res, res, self.filters_at(res))
        return rows

    def get_config(self):
        return {**super().get_config(), "resolution": self.resolution,
                "num_channels": self.num_channels, "label_size": self.label_size,
                "fmap_base": self.fmap_base, "fmap_decay": self.fmap_decay,
                "fmap_max": self.fmap_max}
