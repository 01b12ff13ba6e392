"""ProGAN's growing generator and discriminator (Karras et al. 2018, table 2; SPEC 1).

`Generator` and `Discriminator` own every block as a named attribute (`block_8x8`, `to_rgb_8x8`,
`from_rgb_8x8`, ...) and one `FadeIn` layer whose `alpha` weight is the fade-in variable, so a
`tf.train.Checkpoint` of these objects holds every variable by name. `model_for(resolution)`
hands out a functional `keras.Model` for one resolution from a cache; those models share the
blocks' weights and are never what gets checkpointed (SPEC 10).

    python -m progan_tf.networks --resolution 1024   # per-layer table and parameter totals
"""

import argparse
import math

import keras
from keras import ops

from progan_tf import layers

_register = keras.saving.register_keras_serializable(package="progan_tf")


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


def _count(layer):
    return sum(math.prod(w.shape) for w in layer.trainable_weights)


class _Block(keras.layers.Layer):
    """A block whose sublayers are built in `build`, so every variable exists once built."""

    def summary_rows(self, input_shape):
        """[(sublayer name, output shape, parameters)] for the per-layer table."""
        raise NotImplementedError


@_register
class GeneratorInputBlock(_Block):
    """4x4 generator block, latents [N, D] -> [N, 4, 4, filters] (SPEC 1.2 step 1-2).

    Pixel norm of the latents (and labels, concatenated before), dense D -> 16*filters with gain
    sqrt(2)/4, reshape to 4x4, per-channel bias, lrelu, pixel norm, conv 3x3, lrelu, pixel norm.
    """

    def __init__(self, filters, normalize_latents=True, use_pixelnorm=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.normalize_latents = normalize_latents
        self.use_pixelnorm = use_pixelnorm
        self.dense = layers.WeightScaledDense(16 * filters, gain=layers.SQRT2 / 4, use_bias=False,
                                              name="dense", dtype=self.dtype_policy)
        self.dense_bias = layers.AddBias(name="dense_bias", dtype=self.dtype_policy)
        self.conv = layers.WeightScaledConv2D(filters, 3, name="conv", dtype=self.dtype_policy)
        self.pixel_norm = layers.PixelNormalization(name="pixel_norm", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.dense_bias.build((None, 4, 4, self.filters))
        self.conv.build((None, 4, 4, self.filters))

    def _norm(self, x):
        return self.pixel_norm(x) if self.use_pixelnorm else x

    def call(self, latents):
        x = self.pixel_norm(latents) if self.normalize_latents else latents
        x = ops.reshape(self.dense(x), (-1, 4, 4, self.filters))
        x = self._norm(layers.lrelu(self.dense_bias(x)))
        return self._norm(layers.lrelu(self.conv(x)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4, 4, self.filters)

    def summary_rows(self, input_shape):
        return [("dense", (4, 4, self.filters), _count(self.dense) + _count(self.dense_bias)),
                ("conv", (4, 4, self.filters), _count(self.conv))]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "normalize_latents": self.normalize_latents, "use_pixelnorm": self.use_pixelnorm}


@_register
class GeneratorBlock(_Block):
    """Generator block for 8x8 and up, [N, H, W, C] -> [N, 2H, 2W, filters] (SPEC 1.2 step 3).

    Nearest 2x upsampling, then twice conv 3x3 -> lrelu -> pixel norm. (The original's fused
    transposed conv is the same function with the kernel rotated by 180 degrees.)
    """

    def __init__(self, filters, use_pixelnorm=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.use_pixelnorm = use_pixelnorm
        self.conv0 = layers.WeightScaledConv2D(filters, 3, name="conv0", dtype=self.dtype_policy)
        self.conv1 = layers.WeightScaledConv2D(filters, 3, name="conv1", dtype=self.dtype_policy)
        self.pixel_norm = layers.PixelNormalization(name="pixel_norm", dtype=self.dtype_policy)

    def build(self, input_shape):
        n, h, w, _ = input_shape
        self.conv0.build(input_shape)
        self.conv1.build((n, 2 * h, 2 * w, self.filters))

    def _norm(self, x):
        return self.pixel_norm(x) if self.use_pixelnorm else x

    def call(self, x):
        x = layers.upsample2d(x)
        x = self._norm(layers.lrelu(self.conv0(x)))
        return self._norm(layers.lrelu(self.conv1(x)))

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, 2 * h, 2 * w, self.filters)

    def summary_rows(self, input_shape):
        shape = self.compute_output_shape(input_shape)[1:]
        return [("conv0", shape, _count(self.conv0)), ("conv1", shape, _count(self.conv1))]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "use_pixelnorm": self.use_pixelnorm}


@_register
class FromRGB(_Block):
    """1x1 conv from images to features, then lrelu, [N, H, W, C] -> [N, H, W, filters]."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = layers.WeightScaledConv2D(filters, 1, name="conv", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, images):
        return layers.lrelu(self.conv(images))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def summary_rows(self, input_shape):
        return [("conv", (*input_shape[1:-1], self.filters), _count(self.conv))]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@_register
class DiscriminatorBlock(_Block):
    """Discriminator block for 8x8 and up, [N, H, W, C] -> [N, H/2, W/2, filters1] (SPEC 1.3).

    conv 3x3 (filters0) -> lrelu -> [blur] -> conv 3x3 (filters1) -> 2x2 average pool -> lrelu.
    Pooling before the bias and lrelu is what the original's default fused stride-2 conv
    computes. `blur_filter` (StyleGAN: [1, 2, 1]) low-pass filters before the downsampling conv.
    """

    def __init__(self, filters0, filters1, blur_filter=None, **kwargs):
        super().__init__(**kwargs)
        self.filters0 = filters0
        self.filters1 = filters1
        self.blur_filter = list(blur_filter) if blur_filter else None
        self.conv0 = layers.WeightScaledConv2D(filters0, 3, name="conv0", dtype=self.dtype_policy)
        self.blur = None
        if self.blur_filter:
            self.blur = layers.Blur2D(self.blur_filter, name="blur", dtype=self.dtype_policy)
        self.conv1 = layers.WeightScaledConv2D(filters1, 3, name="conv1_down",
                                               dtype=self.dtype_policy)

    def build(self, input_shape):
        n, h, w, _ = input_shape
        self.conv0.build(input_shape)
        if self.blur is not None:
            self.blur.build((n, h, w, self.filters0))
        self.conv1.build((n, h, w, self.filters0))

    def call(self, x):
        x = layers.lrelu(self.conv0(x))
        if self.blur is not None:
            x = self.blur(x)
        return layers.lrelu(layers.downsample2d(self.conv1(x)))  # pool(conv + b) = pool(conv) + b

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, h // 2, w // 2, self.filters1)

    def summary_rows(self, input_shape):
        _, h, w, _ = input_shape
        rows = [("conv0", (h, w, self.filters0), _count(self.conv0))]
        if self.blur is not None:
            rows.append(("blur", (h, w, self.filters0), 0))
        return rows + [("conv1_down", (h // 2, w // 2, self.filters1), _count(self.conv1))]

    def get_config(self):
        return {**super().get_config(), "filters0": self.filters0, "filters1": self.filters1,
                "blur_filter": self.blur_filter}


@_register
class DiscriminatorOutputBlock(_Block):
    """4x4 discriminator block, [N, 4, 4, C] -> [N, 1 + label_size] (SPEC 1.3 step 3).

    Minibatch stddev -> conv 3x3 -> lrelu -> dense -> lrelu -> dense (gain 1, linear).
    """

    def __init__(self, filters, dense_units, label_size=0, mbstd_group_size=4,
                 mbstd_num_features=1, mbstd_grouping="consecutive", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.dense_units = dense_units
        self.label_size = label_size
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_features = mbstd_num_features
        self.mbstd_grouping = mbstd_grouping
        self.mbstd = None
        if mbstd_group_size > 1:
            self.mbstd = layers.MinibatchStdev(mbstd_group_size, mbstd_num_features,
                                               mbstd_grouping, name="minibatch_stddev",
                                               dtype=self.dtype_policy)
        self.conv = layers.WeightScaledConv2D(filters, 3, name="conv", dtype=self.dtype_policy)
        self.dense0 = layers.WeightScaledDense(dense_units, name="dense0", dtype=self.dtype_policy)
        self.dense1 = layers.WeightScaledDense(1 + label_size, gain=1.0, name="dense1",
                                               dtype=self.dtype_policy)

    def _extra_maps(self):
        return self.mbstd_num_features if self.mbstd is not None else 0

    def build(self, input_shape):
        n, h, w, c = input_shape
        if self.mbstd is not None:
            self.mbstd.build(input_shape)
        self.conv.build((n, h, w, c + self._extra_maps()))
        self.dense0.build((n, h, w, self.filters))
        self.dense1.build((n, self.dense_units))

    def call(self, x):
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = layers.lrelu(self.conv(x))
        x = layers.lrelu(self.dense0(x))
        return self.dense1(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1 + self.label_size)

    def summary_rows(self, input_shape):
        _, h, w, c = input_shape
        rows = []
        if self.mbstd is not None:
            rows.append(("minibatch_stddev", (h, w, c + self._extra_maps()), 0))
        return rows + [("conv", (h, w, self.filters), _count(self.conv)),
                       ("dense0", (self.dense_units,), _count(self.dense0)),
                       ("dense1", (1 + self.label_size,), _count(self.dense1))]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dense_units": self.dense_units,
                "label_size": self.label_size, "mbstd_group_size": self.mbstd_group_size,
                "mbstd_num_features": self.mbstd_num_features,
                "mbstd_grouping": self.mbstd_grouping}


class _ModelCache:
    """Plain holder for the per-resolution models: not a trackable, so neither Keras nor
    tf.train.Checkpoint follow it (the models are keyed by op position, SPEC 10)."""

    def __init__(self):
        self.models = {}


class _GrowingNetwork(keras.layers.Layer):
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
        self._cache = _ModelCache()

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
            rows.append((to_rgb.name, (res, res, self.num_channels), _count(to_rgb)))
            prev = (None, res, res, self.filters_at(res))
        return rows

    def get_config(self):
        return {**super().get_config(), "resolution": self.resolution,
                "num_channels": self.num_channels, "label_size": self.label_size,
                "fmap_base": self.fmap_base, "fmap_decay": self.fmap_decay,
                "fmap_max": self.fmap_max}


@_register
class Generator(_GrowingNetwork):
    """ProGAN generator: latents [N, latent_size] (+ labels [N, label_size]) -> [N, R, R, C].

    Args:
        resolution: final output side, a power of two in 4..1024.
        num_channels: image channels (1 grayscale, 3 RGB, any other number works too).
        label_size: conditioning labels (one-hot), concatenated to the latents as in the original;
            0 = unconditional.
        latent_size: None = nf(0) (512 with the paper's widths).
        fmap_base, fmap_decay, fmap_max: channel formula nf(stage) (SPEC 1.1).
        normalize_latents: pixel-normalise the (latents, labels) input.
        use_pixelnorm: pixel norm after every conv.

    Every variable is created in the constructor, so `weights` is complete and ordered the same
    way in two generators built with the same arguments (used for the EMA copy).
    """

    architecture = "progan"

    def __init__(self, resolution, num_channels=3, label_size=0, latent_size=None, fmap_base=8192,
                 fmap_decay=1.0, fmap_max=512, normalize_latents=True, use_pixelnorm=True,
                 **kwargs):
        kwargs.setdefault("name", "generator")
        super().__init__(resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max,
                         **kwargs)
        self.latent_size = self.nf(0) if latent_size is None else int(latent_size)
        self.normalize_latents = normalize_latents
        self.use_pixelnorm = use_pixelnorm
        policy = self.dtype_policy
        for res in self.resolutions:
            filters = self.filters_at(res)
            if res == 4:
                block = GeneratorInputBlock(filters, normalize_latents, use_pixelnorm,
                                            name="block_4x4", dtype=policy)
                block.build((None, self.latent_size + label_size))
            else:
                block = GeneratorBlock(filters, use_pixelnorm, name=f"block_{res}x{res}",
                                       dtype=policy)
                block.build((None, res // 2, res // 2, self.filters_at(res // 2)))
            self._add_block_and_to_rgb(res, block)
        self.built = True

    def _build_model(self, res):
        inputs = [keras.Input(shape, name=name) for name, shape in self.input_specs()]
        x = inputs[0] if len(inputs) == 1 else keras.layers.Concatenate(name="latents_and_labels")(
            inputs)
        x = self.block_4x4(x)
        for r in self.resolutions[1:self.resolutions.index(res)]:
            x = self._block("block", r)(x)
        if res == 4:
            images = self.to_rgb_4x4(x)
        else:
            old = layers.Upsample2D(name="upsample_old")(self._block("to_rgb", res // 2)(x))
            new = self._block("to_rgb", res)(self._block("block", res)(x))
            images = self.fade([old, new])
        inputs = inputs[0] if len(inputs) == 1 else inputs
        return keras.Model(inputs, images, name=f"{self.name}_{res}x{res}")

    def call(self, latents, labels=None):
        """Full-resolution images at the current `fade_alpha`."""
        model = self.model_for(self.resolution)
        return model(latents if labels is None else [latents, labels])

    def summary_rows(self):
        return self._generator_rows((None, self.latent_size + self.label_size))

    def get_config(self):
        return {**super().get_config(), "latent_size": self.latent_size,
                "normalize_latents": self.normalize_latents, "use_pixelnorm": self.use_pixelnorm}


@_register
class Discriminator(_GrowingNetwork):
    """ProGAN discriminator: images [N, R, R, C] -> [N, 1 + label_size].

    Column 0 is the critic score, columns 1.. the auxiliary classifier's label logits.

    Args:
        resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max: as `Generator`.
        mbstd_group_size: minibatch stddev group (4); <= 1 disables the layer.
        mbstd_num_features: extra stddev feature maps (1).
        mbstd_grouping: "consecutive" (default) or "strided" (the original's, for weight parity).
        blur_filter: None (ProGAN) or StyleGAN's [1, 2, 1], applied before each downsampling conv.
    """

    def __init__(self, resolution, num_channels=3, label_size=0, fmap_base=8192, fmap_decay=1.0,
                 fmap_max=512, mbstd_group_size=4, mbstd_num_features=1,
                 mbstd_grouping="consecutive", blur_filter=None, **kwargs):
        kwargs.setdefault("name", "discriminator")
        super().__init__(resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max,
                         **kwargs)
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_features = mbstd_num_features
        self.mbstd_grouping = mbstd_grouping
        self.blur_filter = list(blur_filter) if blur_filter else None
        policy = self.dtype_policy
        for res in self.resolutions:
            filters = self.filters_at(res)
            from_rgb = FromRGB(filters, name=f"from_rgb_{res}x{res}", dtype=policy)
            from_rgb.build((None, res, res, num_channels))
            if res == 4:
                block = DiscriminatorOutputBlock(
                    filters, self.nf(0), label_size, mbstd_group_size, mbstd_num_features,
                    mbstd_grouping, name="block_4x4", dtype=policy)
            else:
                block = DiscriminatorBlock(filters, self.filters_at(res // 2), self.blur_filter,
                                           name=f"block_{res}x{res}", dtype=policy)
            block.build((None, res, res, filters))
            setattr(self, f"from_rgb_{res}x{res}", from_rgb)
            setattr(self, f"block_{res}x{res}", block)
        self.built = True

    def _build_model(self, res):
        images = keras.Input((res, res, self.num_channels), name="images")
        x = self._block("block", res)(self._block("from_rgb", res)(images))
        if res > 4:
            old = self._block("from_rgb", res // 2)(layers.Downsample2D(name="downsample_old")(
                images))
            x = self.fade([old, x])
            for r in reversed(self.resolutions[1:self.resolutions.index(res)]):
                x = self._block("block", r)(x)
            x = self.block_4x4(x)
        return keras.Model(images, x, name=f"{self.name}_{res}x{res}")

    def call(self, images):
        """[N, 1 + label_size] for full-resolution images at the current `fade_alpha`."""
        return self.model_for(self.resolution)(images)

    def summary_rows(self):
        rows = []
        for res in reversed(self.resolutions):
            from_rgb = self._block("from_rgb", res)
            rows.append((from_rgb.name, (res, res, self.filters_at(res)), _count(from_rgb)))
        for res in reversed(self.resolutions):
            block = self._block("block", res)
            rows += [(f"{block.name}/{n}", s, p)
                     for n, s, p in block.summary_rows((None, res, res, self.filters_at(res)))]
        return rows

    def get_config(self):
        return {**super().get_config(), "mbstd_group_size": self.mbstd_group_size,
                "mbstd_num_features": self.mbstd_num_features,
                "mbstd_grouping": self.mbstd_grouping, "blur_filter": self.blur_filter}


def parameters_up_to(network, res):
    """Trainable parameters of `network`'s model at `res`: blocks <= res and one
    toRGB/fromRGB per resolution <= res (SPEC 1.1 counting), plus a mapping network if any."""
    network._check_resolution(res)
    rgb = "to_rgb" if hasattr(network, "to_rgb_4x4") else "from_rgb"
    mapping = getattr(network, "mapping", None)
    return (_count(mapping) if mapping is not None else 0) + sum(
        _count(network._block("block", r)) + _count(network._block(rgb, r))
        for r in network.resolutions if r <= res)


def format_summary(network):
    """Per-layer table (name, output shape, parameters) and the total, as text."""
    rows = network.summary_rows()
    width = max(len(name) for name, _, _ in rows) + 2
    lines = [f"{'layer':<{width}}{'output shape':<22}{'parameters':>14}", "-" * (width + 36)]
    for name, shape, params in rows:
        lines.append(f"{name:<{width}}{str(tuple(shape)):<22}{params:>14,}")
    lines.append("-" * (width + 36))
    lines.append(f"{'total ' + network.name:<{width + 22}}{_count(network):>14,}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m progan_tf.networks",
        description="Print ProGAN's generator and discriminator layer by layer, with totals.")
    parser.add_argument("--architecture", choices=("progan", "stylegan"), default="progan",
                        help="generator architecture (the discriminator is ProGAN's; StyleGAN's "
                             "adds a blur before each downsampling)")
    parser.add_argument("--resolution", type=int, default=1024, help="final resolution (4..1024)")
    parser.add_argument("--num_channels", type=int, default=3, help="image channels")
    parser.add_argument("--label_size", type=int, default=0, help="conditioning labels")
    parser.add_argument("--fmap_base", type=int, default=8192, help="channel formula base")
    parser.add_argument("--fmap_max", type=int, default=512, help="channel formula maximum")
    parser.add_argument("--latent_size", type=int, default=None, help="default: nf(0)")
    args = parser.parse_args(argv)
    try:
        log2_resolution(args.resolution, "--resolution")
    except ValueError as error:
        parser.error(str(error))
    common = dict(resolution=args.resolution, num_channels=args.num_channels,
                  label_size=args.label_size, fmap_base=args.fmap_base, fmap_max=args.fmap_max)
    if args.architecture == "stylegan":
        from progan_tf import stylegan
        generator = stylegan.StyleGenerator(latent_size=args.latent_size or 512, **common)
        discriminator = stylegan.stylegan_discriminator(**common)
    else:
        generator = Generator(latent_size=args.latent_size, **common)
        discriminator = Discriminator(**common)
    for network in (generator, discriminator):
        print(format_summary(network))
        print()
    print(f"{'resolution':>10}{'G total':>16}{'D total':>16}")
    for res in generator.resolutions:
        print(f"{res:>10}{parameters_up_to(generator, res):>16,}"
              f"{parameters_up_to(discriminator, res):>16,}")


if __name__ == "__main__":
    main()
