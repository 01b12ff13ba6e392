"""Growing-network machinery shared by ProGAN's and StyleGAN's networks: the channel formula,
resolution checks, seeded blocks that state their output shapes, the fade-in and per-resolution
model cache (`GrowingNetwork`) and the generators' one toRGB growth path (`GrowingGenerator`)."""

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
    """A block whose sublayers are built in `build`, so every variable exists once built.

    A block states its output shape once, in `compute_output_shape`, which its `build` and
    `summary_rows` use. `seed`: each sublayer's initializer gets `seed_for(sublayer name)`, a
    pure function of it (None: Keras' global random state).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def seed_for(self, name):
        """Seed of the sublayer called `name`."""
        return layers.derive_seed(self.seed, name)

    def summary_rows(self, input_shape):
        """[(sublayer name, output shape without N, parameters)] for the per-layer table."""
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class ModelCache:
    """Plain holder for the per-resolution models: not a trackable, so neither Keras nor
    tf.train.Checkpoint follow it (the models are keyed by op position, SPEC 10)."""

    def __init__(self):
        self.models = {}


class GrowingNetwork(keras.layers.Layer):
    """What the generators and the discriminator share: resolutions, channel formula, fade-in
    alpha, seeds, the per-resolution blocks and image layers, and the model cache.

    Subclasses set `IMAGE_LAYER` (the prefix of the per-resolution image layers, "to_rgb" or
    "from_rgb") and define `make_model(res)`. `seed`: initial weights are a pure function of it
    (None: Keras' global random state). `dtype`: the Keras dtype policy of every block and layer
    (float32 unless given); neither is part of `get_config()`.
    """

    IMAGE_LAYER = None

    def __init__(self, resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max,
                 seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
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
        self.seed = seed
        self.resolutions = tuple(2 ** r for r in range(2, self.resolution_log2 + 1))
        self.fade = layers.FadeIn(name="fade", dtype=self.dtype_policy)
        self.fade.build(None)
        self._cache = ModelCache()

    def nf(self, stage):
        return nf(stage, self.fmap_base, self.fmap_decay, self.fmap_max)

    def filters_at(self, res):
        """Feature maps of the block at resolution `res`: nf(log2(res) - 1)."""
        return self.nf(int(math.log2(res)) - 1)

    def seed_for(self, name):
        """Seed of the block or layer called `name` (None when the network has no seed)."""
        return layers.derive_seed(self.seed, name)

    @property
    def fade_alpha(self):
        """Non-trainable float32 scalar: weight of the newest resolution (1 = fully grown)."""
        return self.fade.alpha

    def set_alpha(self, alpha):
        self.fade.alpha.assign(alpha)

    def check_resolution(self, res):
        """A ValueError unless `res` is one of `resolutions`."""
        if res not in self.resolutions:
            raise ValueError(f"{self.name}: resolution must be one of {self.resolutions}, "
                             f"received {res!r}")

    def block_at(self, res):
        return getattr(self, f"block_{res}x{res}")

    def image_layer_at(self, res):
        """The toRGB (generators) or fromRGB (discriminator) layer of resolution `res`."""
        return getattr(self, f"{self.IMAGE_LAYER}_{res}x{res}")

    def counted_layers(self, res):
        """The layers whose parameters count up to `res` (SPEC 1.1): the blocks and one image
        layer per resolution <= res."""
        self.check_resolution(res)
        return [layer for r in self.resolutions if r <= res
                for layer in (self.block_at(r), self.image_layer_at(r))]

    def cached_model(self, key, make):
        """The model cached under `key`, made by `make()` on first use."""
        if key not in self._cache.models:
            self._cache.models[key] = make()
        return self._cache.models[key]

    def model_for(self, res):
        """Functional model at resolution `res` (cached), fading in from res/2 by `fade_alpha`."""
        self.check_resolution(res)
        return self.cached_model(res, lambda: self.make_model(res))

    def make_model(self, res):
        raise NotImplementedError

    def get_config(self):
        config = {**super().get_config(), "resolution": self.resolution,
                  "num_channels": self.num_channels, "label_size": self.label_size,
                  "fmap_base": self.fmap_base, "fmap_decay": self.fmap_decay,
                  "fmap_max": self.fmap_max}
        config.pop("dtype", None)  # network.json stores no policy
        return config

    @classmethod
    def from_config(cls, config):
        """Rebuilds a network from `get_config()`, in float32: a "dtype" that older versions
        stored is ignored (pass `dtype` to the constructor to choose another policy)."""
        return cls(**{key: value for key, value in config.items() if key != "dtype"})


class GrowingGenerator(GrowingNetwork):
    """What ProGAN's and StyleGAN's generators share: their inputs, a toRGB per resolution and
    the fade-in from the upsampled res/2 image to the new block's image."""

    IMAGE_LAYER = "to_rgb"

    def input_specs(self):
        """Generator inputs by name and shape: latents, then labels when conditional."""
        specs = [("latents", (self.latent_size,))]
        if self.label_size:
            specs.append(("labels", (self.label_size,)))
        return specs

    def add_block_and_to_rgb(self, res, block):
        """Owns the built `block` as `block_RxR` and a new linear 1x1 toRGB (gain 1)."""
        name = f"to_rgb_{res}x{res}"
        to_rgb = layers.WeightScaledConv2D(self.num_channels, 1, gain=1.0,
                                           seed=self.seed_for(name), name=name,
                                           dtype=self.dtype_policy)
        to_rgb.build((None, res, res, self.filters_at(res)))
        setattr(self, f"block_{res}x{res}", block)
        setattr(self, name, to_rgb)

    def grow_images(self, x, res, run_block):
        """Images at `res` from `x`, the 4x4 block's output; `run_block(r, x)` applies the block
        of resolution r. Above 4x4 the result fades from the upsampled toRGB of res/2 to the
        toRGB of the new block by `fade_alpha`."""
        for r in self.resolutions[1:self.resolutions.index(res)]:
            x = run_block(r, x)
        if res == 4:
            return self.image_layer_at(4)(x)
        old = layers.Upsample2D(name="upsample_old", dtype=self.dtype_policy)(
            self.image_layer_at(res // 2)(x))
        new = self.image_layer_at(res)(run_block(res, x))
        return self.fade([old, new])

    def synthesis_rows(self, input_shape):
        """Per-layer rows of the blocks and toRGB layers, lowest resolution first; `input_shape`
        is the 4x4 block's input shape."""
        rows = []
        for res in self.resolutions:
            block, to_rgb = self.block_at(res), self.image_layer_at(res)
            rows += [(f"{block.name}/{n}", s, p) for n, s, p in block.summary_rows(input_shape)]
            input_shape = block.compute_output_shape(input_shape)
            rows.append((to_rgb.name, to_rgb.compute_output_shape(input_shape)[1:],
                         count_params(to_rgb)))
        return rows
