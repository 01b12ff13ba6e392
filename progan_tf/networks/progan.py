"""ProGAN's growing generator and discriminator (Karras et al. 2018, table 2; SPEC 1).

`Generator` and `Discriminator` own every block as a named attribute (`block_8x8`, `to_rgb_8x8`,
`from_rgb_8x8`, ...) and one `FadeIn` layer whose `alpha` weight is the fade-in variable, so a
`tf.train.Checkpoint` of these objects holds every variable by name. `model_for(resolution)`
hands out a functional `keras.Model` for one resolution from a cache; those models share the
blocks' weights and are never what gets checkpointed (SPEC 10).
"""

import keras
from keras import ops

from progan_tf import layers
from progan_tf.networks.base import Block, GrowingGenerator, GrowingNetwork, count_params


@layers.register
class GeneratorInputBlock(Block):
    """4x4 generator block, latents [N, D] -> [N, 4, 4, filters] (SPEC 1.2 step 1-2).

    Pixel norm of the latents (and labels, concatenated before), dense D -> 16*filters with gain
    sqrt(2)/4, reshape to 4x4, per-channel bias, lrelu, pixel norm, conv 3x3, lrelu, pixel norm.
    """

    def __init__(self, filters, normalize_latents=True, use_pixelnorm=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.normalize_latents = normalize_latents
        self.use_pixelnorm = use_pixelnorm
        policy = self.dtype_policy
        self.dense = layers.WeightScaledDense(16 * filters, gain=layers.SQRT2 / 4, use_bias=False,
                                              seed=self.seed_for("dense"), name="dense",
                                              dtype=policy)
        self.dense_bias = layers.AddBias(name="dense_bias", dtype=policy)
        self.conv = layers.WeightScaledConv2D(filters, 3, seed=self.seed_for("conv"), name="conv",
                                              dtype=policy)
        self.pixel_norm = layers.PixelNormalization(name="pixel_norm", dtype=policy)

    def build(self, input_shape):
        self.dense.build(input_shape)
        shape = self.compute_output_shape(input_shape)
        self.dense_bias.build(shape)
        self.conv.build(shape)

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
        shape = self.compute_output_shape(input_shape)[1:]
        return [("dense", shape, count_params(self.dense) + count_params(self.dense_bias)),
                ("conv", shape, count_params(self.conv))]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "normalize_latents": self.normalize_latents, "use_pixelnorm": self.use_pixelnorm}


@layers.register
class GeneratorBlock(Block):
    """Generator block for 8x8 and up, [N, H, W, C] -> [N, 2H, 2W, filters] (SPEC 1.2 step 3).

    Nearest 2x upsampling, then twice conv 3x3 -> lrelu -> pixel norm. The upsampling and the
    first conv run as one stride-2 transposed conv with a 4x4 kernel over the small input
    (`layers.UpsampleConv2D(fused=True)`, as the original's default `fused_scale=True` computes
    them): the same function, 2.25x fewer FLOPs for that conv. (The original's fused kernel is
    ours rotated by 180 degrees; `official` converts it.)
    """

    def __init__(self, filters, use_pixelnorm=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.use_pixelnorm = use_pixelnorm
        policy = self.dtype_policy
        self.conv0 = layers.UpsampleConv2D(filters, 3, fused=True, seed=self.seed_for("conv0"),
                                           name="conv0", dtype=policy)
        self.conv1 = layers.WeightScaledConv2D(filters, 3, seed=self.seed_for("conv1"),
                                               name="conv1", dtype=policy)
        self.pixel_norm = layers.PixelNormalization(name="pixel_norm", dtype=policy)

    def build(self, input_shape):
        self.conv0.build(input_shape)  # the kernel depends on C_in only, not on H, W
        self.conv1.build(self.compute_output_shape(input_shape))

    def _norm(self, x):
        return self.pixel_norm(x) if self.use_pixelnorm else x

    def call(self, x):
        x = self._norm(layers.lrelu(self.conv0(x)))  # upsampling included
        return self._norm(layers.lrelu(self.conv1(x)))

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, 2 * h, 2 * w, self.filters)

    def summary_rows(self, input_shape):
        shape = self.compute_output_shape(input_shape)[1:]
        return [("conv0", shape, count_params(self.conv0)),
                ("conv1", shape, count_params(self.conv1))]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "use_pixelnorm": self.use_pixelnorm}


@layers.register
class FromRGB(Block):
    """1x1 conv from images to features, then lrelu, [N, H, W, C] -> [N, H, W, filters]."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = layers.WeightScaledConv2D(filters, 1, seed=self.seed_for("conv"), name="conv",
                                              dtype=self.dtype_policy)

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, images):
        return layers.lrelu(self.conv(images))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def summary_rows(self, input_shape):
        return [("conv", self.compute_output_shape(input_shape)[1:], count_params(self.conv))]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@layers.register
class DiscriminatorBlock(Block):
    """Discriminator block for 8x8 and up, [N, H, W, C] -> [N, H/2, W/2, filters1] (SPEC 1.3).

    conv 3x3 (filters0) -> lrelu -> [blur] -> conv 3x3 (filters1) -> 2x2 average pool -> lrelu.
    Pooling before the bias and lrelu is what the original's default fused stride-2 conv
    computes (`fused_scale=True`, also StyleGAN's order in both of its paths), and so do we: the
    second conv and the pooling run as one stride-2 conv with a 4x4 kernel
    (`layers.ConvDownsample2D`, 2.25x fewer FLOPs). ProGAN's unfused option (`fused_scale=False`,
    the layout of NVIDIA's released ProGAN files) pools last: conv 3x3 -> bias -> lrelu -> 2x2
    average pool. `blur_filter` (StyleGAN: [1, 2, 1]) low-pass filters before the downsampling
    conv.
    """

    def __init__(self, filters0, filters1, blur_filter=None, fused_scale=True, **kwargs):
        super().__init__(**kwargs)
        self.filters0 = filters0
        self.filters1 = filters1
        self.blur_filter = list(blur_filter) if blur_filter else None
        self.fused_scale = bool(fused_scale)
        policy = self.dtype_policy
        self.conv0 = layers.WeightScaledConv2D(filters0, 3, seed=self.seed_for("conv0"),
                                               name="conv0", dtype=policy)
        self.blur = None
        if self.blur_filter:
            self.blur = layers.Blur2D(self.blur_filter, name="blur", dtype=policy)
        conv1_name = "conv1_down" if self.fused_scale else "conv1"  # the original's names
        conv1_class = layers.ConvDownsample2D if self.fused_scale else layers.WeightScaledConv2D
        self.conv1 = conv1_class(filters1, 3, seed=self.seed_for(conv1_name), name=conv1_name,
                                 dtype=policy)

    def build(self, input_shape):
        shape = self.conv0.compute_output_shape(input_shape)
        self.conv0.build(input_shape)
        if self.blur is not None:
            self.blur.build(shape)
        self.conv1.build(shape)

    def call(self, x):
        x = layers.lrelu(self.conv0(x))
        if self.blur is not None:
            x = self.blur(x)
        if not self.fused_scale:
            return layers.downsample2d(layers.lrelu(self.conv1(x)))
        return layers.lrelu(self.conv1(x))  # pool(conv) + b, pooling included

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        return (n, h // 2, w // 2, self.filters1)

    def summary_rows(self, input_shape):
        shape = self.conv0.compute_output_shape(input_shape)[1:]
        rows = [("conv0", shape, count_params(self.conv0))]
        if self.blur is not None:
            rows.append(("blur", shape, 0))
        return rows + [(self.conv1.name, self.compute_output_shape(input_shape)[1:],
                        count_params(self.conv1))]

    def get_config(self):
        return {**super().get_config(), "filters0": self.filters0, "filters1": self.filters1,
                "blur_filter": self.blur_filter, "fused_scale": self.fused_scale}


@layers.register
class DiscriminatorOutputBlock(Block):
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
        self.conv = layers.WeightScaledConv2D(filters, 3, seed=self.seed_for("conv"), name="conv",
                                              dtype=self.dtype_policy)
        self.dense0 = layers.WeightScaledDense(dense_units, seed=self.seed_for("dense0"),
                                               name="dense0", dtype=self.dtype_policy)
        self.dense1 = layers.WeightScaledDense(1 + label_size, gain=1.0,
                                               seed=self.seed_for("dense1"), name="dense1",
                                               dtype=self.dtype_policy)

    def _shapes(self, input_shape):
        """Output shapes of minibatch stddev, conv, dense0 and dense1, in order."""
        shapes = [self.mbstd.compute_output_shape(input_shape) if self.mbstd is not None
                  else input_shape]
        for layer in (self.conv, self.dense0, self.dense1):
            shapes.append(layer.compute_output_shape(shapes[-1]))
        return shapes

    def build(self, input_shape):
        if self.mbstd is not None:
            self.mbstd.build(input_shape)
        shapes = self._shapes(input_shape)
        for layer, shape in zip((self.conv, self.dense0, self.dense1), shapes):
            layer.build(shape)

    def call(self, x):
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = layers.lrelu(self.conv(x))
        x = layers.lrelu(self.dense0(x))
        return self.dense1(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1 + self.label_size)

    def summary_rows(self, input_shape):
        mbstd_shape, *shapes = [shape[1:] for shape in self._shapes(input_shape)]
        rows = [("minibatch_stddev", mbstd_shape, 0)] if self.mbstd is not None else []
        return rows + [(layer.name, shape, count_params(layer))
                       for layer, shape in zip((self.conv, self.dense0, self.dense1), shapes)]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dense_units": self.dense_units,
                "label_size": self.label_size, "mbstd_group_size": self.mbstd_group_size,
                "mbstd_num_features": self.mbstd_num_features,
                "mbstd_grouping": self.mbstd_grouping}


@layers.register
class Generator(GrowingGenerator):
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
        seed: None = initial weights from Keras' global random state; an int = initial weights
            that are a pure function of it (not part of `get_config()`).
        dtype: Keras dtype policy of every block ("float32" when not given; "mixed_float16"
            for mixed precision); not part of `get_config()`.

    Every variable is created in the constructor, so `weights` is complete and ordered the same
    way in two generators built with the same arguments (used for the EMA copy).
    """

    def __init__(self, resolution, num_channels=3, label_size=0, latent_size=None, fmap_base=8192,
                 fmap_decay=1.0, fmap_max=512, normalize_latents=True, use_pixelnorm=True,
                 seed=None, **kwargs):
        kwargs.setdefault("name", "generator")
        super().__init__(resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max,
                         seed=seed, **kwargs)
        self.latent_size = self.nf(0) if latent_size is None else int(latent_size)
        self.normalize_latents = normalize_latents
        self.use_pixelnorm = use_pixelnorm
        shape = (None, self.latent_size + label_size)
        for res in self.resolutions:
            common = dict(name=f"block_{res}x{res}", seed=self.seed_for(f"block_{res}x{res}"),
                          dtype=self.dtype_policy)
            if res == 4:
                block = GeneratorInputBlock(self.filters_at(res), normalize_latents,
                                            use_pixelnorm, **common)
            else:
                block = GeneratorBlock(self.filters_at(res), use_pixelnorm, **common)
            block.build(shape)
            shape = block.compute_output_shape(shape)
            self.add_block_and_to_rgb(res, block)
        self.built = True

    def make_model(self, res):
        inputs = [keras.Input(shape, name=name) for name, shape in self.input_specs()]
        x = inputs[0] if len(inputs) == 1 else keras.layers.Concatenate(
            name="latents_and_labels", dtype=self.dtype_policy)(inputs)
        images = self.grow_images(self.block_4x4(x), res, lambda r, x: self.block_at(r)(x))
        inputs = inputs[0] if len(inputs) == 1 else inputs
        return keras.Model(inputs, images, name=f"{self.name}_{res}x{res}")

    def call(self, latents, labels=None):
        """Full-resolution images at the current `fade_alpha`."""
        model = self.model_for(self.resolution)
        return model(latents if labels is None else [latents, labels])

    def summary_rows(self):
        return self.synthesis_rows((None, self.latent_size + self.label_size))

    def get_config(self):
        return {**super().get_config(), "latent_size": self.latent_size,
                "normalize_latents": self.normalize_latents, "use_pixelnorm": self.use_pixelnorm}


@layers.register
class Discriminator(GrowingNetwork):
    """ProGAN discriminator: images [N, R, R, C] -> [N, 1 + label_size].

    Column 0 is the critic score, columns 1.. the auxiliary classifier's label logits.

    Args:
        resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max: as `Generator`.
        mbstd_group_size: minibatch stddev group (4); <= 1 disables the layer.
        mbstd_num_features: extra stddev feature maps (1).
        mbstd_grouping: "consecutive" (default) or "strided" (the original's, for weight parity).
        blur_filter: None (ProGAN) or StyleGAN's [1, 2, 1], applied before each downsampling conv.
        fused_scale: True (default) pools right after each block's second conv, before its bias
            and lrelu, as the original's fused conv computes; False is ProGAN's unfused order
            (bias, lrelu, then pool), the layout of NVIDIA's released ProGAN files. Stored in
            `get_config()` only when False, so the network.json of runs made before the option
            existed still describes their discriminator.
        seed, dtype: as `Generator`.
    """

    IMAGE_LAYER = "from_rgb"

    def __init__(self, resolution, num_channels=3, label_size=0, fmap_base=8192, fmap_decay=1.0,
                 fmap_max=512, mbstd_group_size=4, mbstd_num_features=1,
                 mbstd_grouping="consecutive", blur_filter=None, fused_scale=True, seed=None,
                 **kwargs):
        kwargs.setdefault("name", "discriminator")
        super().__init__(resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max,
                         seed=seed, **kwargs)
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_features = mbstd_num_features
        self.mbstd_grouping = mbstd_grouping
        self.blur_filter = list(blur_filter) if blur_filter else None
        self.fused_scale = bool(fused_scale)
        for res in self.resolutions:
            filters = self.filters_at(res)
            name = f"from_rgb_{res}x{res}"
            from_rgb = FromRGB(filters, seed=self.seed_for(name), name=name,
                               dtype=self.dtype_policy)
            from_rgb.build((None, res, res, num_channels))
            setattr(self, name, from_rgb)  # before the block: the weights' order is unchanged
            common = dict(name=f"block_{res}x{res}", seed=self.seed_for(f"block_{res}x{res}"),
                          dtype=self.dtype_policy)
            if res == 4:
                block = DiscriminatorOutputBlock(filters, self.nf(0), label_size, mbstd_group_size,
                                                 mbstd_num_features, mbstd_grouping, **common)
            else:
                block = DiscriminatorBlock(filters, self.filters_at(res // 2), self.blur_filter,
                                           self.fused_scale, **common)
            block.build(from_rgb.compute_output_shape((None, res, res, num_channels)))
            setattr(self, common["name"], block)
        self.built = True

    def make_model(self, res):
        images = keras.Input((res, res, self.num_channels), name="images")
        x = self.block_at(res)(self.from_rgb_at(res)(images))
        if res > 4:
            downsample = layers.Downsample2D(name="downsample_old", dtype=self.dtype_policy)
            x = self.fade([self.from_rgb_at(res // 2)(downsample(images)), x])
            for r in reversed(self.resolutions[1:self.resolutions.index(res)]):
                x = self.block_at(r)(x)
            x = self.block_4x4(x)
        return keras.Model(images, x, name=f"{self.name}_{res}x{res}")

    def from_rgb_at(self, res):
        return self.image_layer_at(res)

    def call(self, images):
        """[N, 1 + label_size] for full-resolution images at the current `fade_alpha`."""
        return self.model_for(self.resolution)(images)

    def summary_rows(self):
        rows, shapes = [], {}
        for res in reversed(self.resolutions):
            from_rgb = self.from_rgb_at(res)
            shapes[res] = from_rgb.compute_output_shape((None, res, res, self.num_channels))
            rows.append((from_rgb.name, shapes[res][1:], count_params(from_rgb)))
        for res in reversed(self.resolutions):
            block = self.block_at(res)
            rows += [(f"{block.name}/{n}", s, p) for n, s, p in block.summary_rows(shapes[res])]
        return rows

    def get_config(self):
        config = {**super().get_config(), "mbstd_group_size": self.mbstd_group_size,
                  "mbstd_num_features": self.mbstd_num_features,
                  "mbstd_grouping": self.mbstd_grouping, "blur_filter": self.blur_filter}
        if not self.fused_scale:  # see the class docstring
            config["fused_scale"] = False
        return config
