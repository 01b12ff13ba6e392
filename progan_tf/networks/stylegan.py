"""StyleGAN (v1) generator (Karras et al. 2019; SPEC 3), grown progressively like ProGAN.

z [N, 512] -> mapping (pixel norm, 8 dense layers with lrmul 0.01) -> w, broadcast to one w per
synthesis layer [N, num_layers, 512] -> synthesis: a learned 4x4 constant, then per layer conv,
noise, bias, lrelu, AdaIN(w_l); [1, 2, 1] blur after each upsampling (fused transposed conv from
128x128 up); toRGB per resolution with ProGAN's fade-in. The discriminator is ProGAN's with the
blur before each downsampling (`stylegan_discriminator`).

Style mixing and truncation are pure functions here (`draw_mixing_cutoff`, `mix_styles`,
`truncate`); the generator owns `dlatent_avg`, the moving average of w they need.
"""

import math

import keras
import tensorflow as tf  # the stateless draws with an explicit algorithm are TF's
from keras import ops

from progan_tf import layers
from progan_tf.networks.base import Block, GrowingGenerator, count_params
from progan_tf.networks.progan import Discriminator


BLUR_FILTER = (1, 2, 1)
TRUNCATION_CUTOFF = 8  # the truncation trick moves the first 8 style layers (4x4 to 32x32)


def num_layers_at(res):
    """Synthesis layers (= styles) used up to resolution `res`: 2 per resolution from 4x4."""
    return 2 * int(math.log2(res)) - 2


@layers.register
class MappingNetwork(Block):
    """latents [N, latent_size] (+ labels [N, label_size]) -> dlatents [N, num_layers, D].

    Labels are embedded by a [label_size, latent_size] matrix and concatenated, as in NVIDIA's
    code; then pixel norm and `mapping_layers` dense layers with leaky ReLU, gain sqrt(2) and the
    learning-rate multiplier on weights and biases.
    """

    def __init__(self, latent_size=512, label_size=0, dlatent_size=512, num_layers=18,
                 mapping_layers=8, mapping_fmaps=512, mapping_lrmul=0.01, normalize_latents=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.latent_size = latent_size
        self.label_size = label_size
        self.dlatent_size = dlatent_size
        self.num_layers = num_layers
        self.mapping_layers = mapping_layers
        self.mapping_fmaps = mapping_fmaps
        self.mapping_lrmul = mapping_lrmul
        self.normalize_latents = normalize_latents
        self.pixel_norm = layers.PixelNormalization(name="pixel_norm", dtype=self.dtype_policy)
        for index in range(mapping_layers):
            units = dlatent_size if index == mapping_layers - 1 else mapping_fmaps
            setattr(self, f"dense_{index}", layers.WeightScaledDense(
                units, lrmul=mapping_lrmul, seed=self.seed_for(f"dense_{index}"),
                name=f"dense_{index}", dtype=self.dtype_policy))

    def build(self, input_shape=None):
        self.label_embedding = None
        if self.label_size:
            self.label_embedding = self.add_weight(
                name="label_embedding", shape=(self.label_size, self.latent_size),
                initializer=keras.initializers.RandomNormal(
                    stddev=1.0, seed=self.seed_for("label_embedding")))
        shape = self._first_dense_input_shape()
        for index in range(self.mapping_layers):
            dense = getattr(self, f"dense_{index}")
            dense.build(shape)
            shape = dense.compute_output_shape(shape)

    def _first_dense_input_shape(self):
        """[N, latent_size], or [N, 2 latent_size] with the embedded labels concatenated."""
        return (None, self.latent_size * (2 if self.label_size else 1))

    def call(self, latents, labels=None):
        x = latents
        if self.label_size:
            x = ops.concatenate([x, ops.matmul(labels, ops.cast(self.label_embedding, x.dtype))],
                                axis=-1)
        if self.normalize_latents:
            x = self.pixel_norm(x)
        for index in range(self.mapping_layers):
            x = layers.lrelu(getattr(self, f"dense_{index}")(x))
        return ops.repeat(ops.expand_dims(x, 1), self.num_layers, axis=1)

    def compute_output_shape(self, latents_shape, labels_shape=None):
        return (latents_shape[0], self.num_layers, self.dlatent_size)

    def summary_rows(self, input_shape=None):
        rows = []
        if self.label_size:
            rows.append(("label_embedding", (self.latent_size,),
                         math.prod(self.label_embedding.shape)))
        shape = self._first_dense_input_shape()
        for index in range(self.mapping_layers):
            dense = getattr(self, f"dense_{index}")
            shape = dense.compute_output_shape(shape)
            rows.append((dense.name, shape[1:], count_params(dense)))
        return rows

    def get_config(self):
        return {**super().get_config(), "latent_size": self.latent_size,
                "label_size": self.label_size, "dlatent_size": self.dlatent_size,
                "num_layers": self.num_layers, "mapping_layers": self.mapping_layers,
                "mapping_fmaps": self.mapping_fmaps, "mapping_lrmul": self.mapping_lrmul,
                "normalize_latents": self.normalize_latents}


class _StyledLayers(Block):
    """Shared epilogue of the synthesis blocks (SPEC 3): noise, bias, lrelu, AdaIN(w_l).

    `noise` (None, "random" or "const") goes to every `NoiseInjection`: None = fresh noise when
    training, else each layer's fixed noise image.
    """

    def _make_epilogue(self, index):
        policy = self.dtype_policy
        setattr(self, f"noise{index}", layers.NoiseInjection(
            seed=self.seed_for(f"noise{index}"), name=f"noise{index}", dtype=policy))
        setattr(self, f"bias{index}", layers.AddBias(name=f"bias{index}", dtype=policy))
        setattr(self, f"adain{index}", layers.AdaIN(
            seed=self.seed_for(f"adain{index}"), name=f"adain{index}", dtype=policy))

    def _build_epilogue(self, index, shape, dlatent_size):
        getattr(self, f"noise{index}").build(shape)
        getattr(self, f"bias{index}").build(shape)
        getattr(self, f"adain{index}").build((shape, (None, dlatent_size)))

    def _epilogue(self, index, x, dlatents, noise):
        x = getattr(self, f"noise{index}")(x, noise=noise)
        x = layers.lrelu(getattr(self, f"bias{index}")(x))
        return getattr(self, f"adain{index}")([x, dlatents[:, self.first_layer + index]])

    def _epilogue_rows(self, index, shape):
        parts = [getattr(self, f"{name}{index}") for name in ("noise", "bias", "adain")]
        return [(f"epilogue{index} (noise, bias, adain)", shape, sum(map(count_params, parts)))]


@layers.register
class SynthesisInputBlock(_StyledLayers):
    """4x4: learned constant (ones) -> epilogue 0 -> conv 3x3 -> epilogue 1; uses dlatents
    [N, L, D] only for the batch size and w_0, w_1. Output [N, 4, 4, filters]."""

    def __init__(self, filters, dlatent_size=512, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.dlatent_size = dlatent_size
        self.first_layer = 0
        self._make_epilogue(0)
        self.conv = layers.WeightScaledConv2D(filters, 3, use_bias=False,
                                              seed=self.seed_for("conv"), name="conv",
                                              dtype=self.dtype_policy)
        self._make_epilogue(1)

    def build(self, input_shape=None):
        shape = self.compute_output_shape((None,))
        self.const = self.add_weight(name="const", shape=(4, 4, self.filters), initializer="ones")
        self._build_epilogue(0, shape, self.dlatent_size)
        self.conv.build(shape)
        self._build_epilogue(1, shape, self.dlatent_size)

    def call(self, dlatents, noise=None):
        batch = ops.shape(dlatents)[0]
        x = ops.broadcast_to(ops.cast(self.const, self.compute_dtype)[None],
                             (batch, 4, 4, self.filters))
        x = self._epilogue(0, x, dlatents, noise)
        return self._epilogue(1, self.conv(x), dlatents, noise)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4, 4, self.filters)

    def summary_rows(self, input_shape=None):
        shape = self.compute_output_shape((None,))[1:]
        return ([("const", shape, 16 * self.filters)] + self._epilogue_rows(0, shape)
                + [("conv", shape, count_params(self.conv))] + self._epilogue_rows(1, shape))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dlatent_size": self.dlatent_size}


@layers.register
class SynthesisBlock(_StyledLayers):
    """8x8 and up: [x [N, H, W, C], dlatents] -> [N, 2H, 2W, filters].

    Upsample + conv 3x3 (fused transposed conv when `fused`) -> blur -> epilogue -> conv 3x3 ->
    epilogue. `first_layer` is the index of this block's first style (2 log2(res) - 4).
    """

    def __init__(self, filters, first_layer, dlatent_size=512, fused=False,
                 blur_filter=BLUR_FILTER, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.first_layer = first_layer
        self.dlatent_size = dlatent_size
        self.fused = fused
        self.blur_filter = list(blur_filter) if blur_filter else None
        policy = self.dtype_policy
        self.conv0_up = layers.UpsampleConv2D(filters, 3, use_bias=False, fused=fused,
                                              seed=self.seed_for("conv0_up"), name="conv0_up",
                                              dtype=policy)
        self.blur = layers.Blur2D(self.blur_filter, name="blur", dtype=policy) \
            if self.blur_filter else None
        self._make_epilogue(0)
        self.conv1 = layers.WeightScaledConv2D(filters, 3, use_bias=False,
                                               seed=self.seed_for("conv1"), name="conv1",
                                               dtype=policy)
        self._make_epilogue(1)

    def build(self, input_shape):
        shape = self.compute_output_shape(input_shape)
        self.conv0_up.build(input_shape)
        if self.blur is not None:
            self.blur.build(shape)
        self._build_epilogue(0, shape, self.dlatent_size)
        self.conv1.build(shape)
        self._build_epilogue(1, shape, self.dlatent_size)

    def call(self, x, dlatents, noise=None):
        x = self.conv0_up(x)
        if self.blur is not None:
            x = self.blur(x)
        x = self._epilogue(0, x, dlatents, noise)
        return self._epilogue(1, self.conv1(x), dlatents, noise)

    def compute_output_shape(self, x_shape, dlatents_shape=None):
        return self.conv0_up.compute_output_shape(x_shape)

    def summary_rows(self, input_shape):
        shape = self.compute_output_shape(input_shape)[1:]
        conv0_up = "conv0_up" + (" (fused)" if self.fused else "")
        return ([(conv0_up, shape, count_params(self.conv0_up))]
                + self._epilogue_rows(0, shape) + [("conv1", shape, count_params(self.conv1))]
                + self._epilogue_rows(1, shape))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "first_layer": self.first_layer,
                "dlatent_size": self.dlatent_size, "fused": self.fused,
                "blur_filter": self.blur_filter}


@layers.register
class StyleGenerator(GrowingGenerator):
    """StyleGAN generator: latents [N, latent_size] (+ labels) -> images [N, R, R, C].

    Args:
        resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max: as ProGAN's
            `Generator` (SPEC 1.1 channels).
        latent_size, dlatent_size: z and w sizes (512).
        mapping_layers, mapping_fmaps, mapping_lrmul: mapping network (8, 512, 0.01).
        fused_min_resolution: first output resolution whose upsampling conv is fused (128).
        blur_filter: low-pass filter after upsampling ([1, 2, 1]; None disables).
        truncation_cutoff: the truncation trick moves the styles of layers < this (8: 4x4 to
            32x32); exports use it. Stored in `get_config()` only when it is not 8, so the
            network.json of runs made before the option existed still describes their generator.
        seed, dtype: as ProGAN's `Generator` (neither is part of `get_config()`).

    Models: `model_for(res, noise)` (z -> images, no truncation), `mapping_model()` (z -> w per
    layer), `synthesis_model_for(res, noise)` (w per layer [N, num_layers, D] -> images). `noise`:
    None = fresh noise when called with training=True, else each layer's fixed noise image;
    "random" = fresh noise on every call; "const" = the fixed images. All variables exist after
    the constructor; `dlatent_avg` is the non-trainable moving average of w.
    """

    def __init__(self, resolution, num_channels=3, label_size=0, latent_size=512,
                 dlatent_size=512, mapping_layers=8, mapping_fmaps=512, mapping_lrmul=0.01,
                 fmap_base=8192, fmap_decay=1.0, fmap_max=512, fused_min_resolution=128,
                 blur_filter=BLUR_FILTER, truncation_cutoff=TRUNCATION_CUTOFF, seed=None,
                 **kwargs):
        kwargs.setdefault("name", "generator")
        super().__init__(resolution, num_channels, label_size, fmap_base, fmap_decay, fmap_max,
                         seed=seed, **kwargs)
        self.latent_size = latent_size
        self.dlatent_size = dlatent_size
        self.mapping_layers = mapping_layers
        self.mapping_fmaps = mapping_fmaps
        self.mapping_lrmul = mapping_lrmul
        self.fused_min_resolution = fused_min_resolution
        self.blur_filter = list(blur_filter) if blur_filter else None
        self.truncation_cutoff = int(truncation_cutoff)
        self.num_layers = num_layers_at(resolution)
        self.mapping = MappingNetwork(latent_size, label_size, dlatent_size, self.num_layers,
                                      mapping_layers, mapping_fmaps, mapping_lrmul,
                                      seed=self.seed_for("mapping"), name="mapping",
                                      dtype=self.dtype_policy)
        self.mapping.build()
        self.dlatent_avg = self.add_weight(name="dlatent_avg", shape=(dlatent_size,),
                                           initializer="zeros", trainable=False, autocast=False)
        shape = (None, self.num_layers, dlatent_size)
        for res in self.resolutions:
            common = dict(name=f"block_{res}x{res}", seed=self.seed_for(f"block_{res}x{res}"),
                          dtype=self.dtype_policy)
            if res == 4:
                block = SynthesisInputBlock(self.filters_at(res), dlatent_size, **common)
            else:
                block = SynthesisBlock(self.filters_at(res), num_layers_at(res) - 2, dlatent_size,
                                       fused=res >= fused_min_resolution,
                                       blur_filter=self.blur_filter, **common)
            block.build(shape)
            shape = block.compute_output_shape(shape)
            self.add_block_and_to_rgb(res, block)
        self.built = True

    def _inputs(self):
        inputs = [keras.Input(shape, name=name) for name, shape in self.input_specs()]
        return inputs, self.mapping(*inputs)

    def mapping_model(self):
        """latents (+ labels) -> dlatents [N, num_layers, dlatent_size] (cached)."""
        def make():
            inputs, dlatents = self._inputs()
            return keras.Model(inputs[0] if len(inputs) == 1 else inputs, dlatents,
                               name=f"{self.name}_mapping")
        return self.cached_model("mapping", make)

    def _synthesis(self, dlatents, res, noise):
        return self.grow_images(self.block_4x4(dlatents, noise=noise), res,
                                lambda r, x: self.block_at(r)(x, dlatents, noise=noise))

    def _check(self, res, noise):
        self.check_resolution(res)
        if noise not in layers.NOISE_MODES:
            raise ValueError(f"{self.name}: noise must be one of {layers.NOISE_MODES}, "
                             f"received {noise!r}")

    def synthesis_model_for(self, res, noise=None):
        """dlatents [N, num_layers, dlatent_size] -> images [N, res, res, C], cached per
        (res, noise)."""
        self._check(res, noise)

        def make():
            dlatents = keras.Input((self.num_layers, self.dlatent_size), name="dlatents")
            return keras.Model(dlatents, self._synthesis(dlatents, res, noise),
                               name=f"{self.name}_synthesis_{res}x{res}")
        return self.cached_model(("synthesis", res, noise), make)

    def model_for(self, res, noise=None):
        """latents (+ labels) -> images [N, res, res, C] without truncation, fading in from
        res/2 by `fade_alpha`; cached per (res, noise)."""
        self._check(res, noise)
        return self.cached_model((res, noise), lambda: self.make_model(res, noise))

    def make_model(self, res, noise=None):
        inputs, dlatents = self._inputs()
        return keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                           self._synthesis(dlatents, res, noise), name=f"{self.name}_{res}x{res}")

    def call(self, latents, labels=None, noise=None):
        model = self.model_for(self.resolution, noise)
        return model(latents if labels is None else [latents, labels])

    def update_dlatent_avg(self, dlatents, beta=0.995):
        """dlatent_avg <- lerp(mean over the batch of w_0, dlatent_avg, beta) (SPEC 3)."""
        batch_avg = ops.mean(ops.cast(dlatents[:, 0], "float32"), axis=0)
        self.dlatent_avg.assign(batch_avg + beta * (self.dlatent_avg - batch_avg))

    def counted_layers(self, res):
        return [self.mapping] + super().counted_layers(res)

    def summary_rows(self):
        rows = [(f"mapping/{n}", s, p) for n, s, p in self.mapping.summary_rows()]
        return rows + self.synthesis_rows((None, self.num_layers, self.dlatent_size))

    def get_config(self):
        config = {**super().get_config(), "latent_size": self.latent_size,
                  "dlatent_size": self.dlatent_size, "mapping_layers": self.mapping_layers,
                  "mapping_fmaps": self.mapping_fmaps, "mapping_lrmul": self.mapping_lrmul,
                  "fused_min_resolution": self.fused_min_resolution,
                  "blur_filter": self.blur_filter}
        if self.truncation_cutoff != TRUNCATION_CUTOFF:  # see the class docstring
            config["truncation_cutoff"] = self.truncation_cutoff
        return config


def stylegan_discriminator(resolution, **kwargs):
    """ProGAN's discriminator with StyleGAN's [1, 2, 1] blur before each downsampling conv."""
    kwargs.setdefault("blur_filter", list(BLUR_FILTER))
    return Discriminator(resolution, **kwargs)


def truncate(dlatents, dlatent_avg, psi=0.7, cutoff=TRUNCATION_CUTOFF):
    """Truncation trick: w_l <- avg + psi (w_l - avg) for layers l < cutoff, others unchanged.

    dlatents [N, L, D]; psi a float or a tensor broadcastable to [N, 1, 1] (one psi per sample).
    """
    num_layers = dlatents.shape[1]
    layer_index = ops.reshape(ops.arange(num_layers), (1, num_layers, 1))
    psi = ops.cast(psi, dlatents.dtype)
    if len(psi.shape) == 1:
        psi = ops.reshape(psi, (-1, 1, 1))
    avg = ops.cast(dlatent_avg, dlatents.dtype)
    return ops.where(layer_index < cutoff, avg + psi * (dlatents - avg), dlatents)


def draw_mixing_cutoff(num_active_layers, probability, seed):
    """Style-mixing crossover (SPEC 3): with `probability` a layer index drawn uniformly from
    [1, num_active_layers), else num_active_layers (no mixing). `seed`: stateless seed [2]."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    mix = tf.random.stateless_uniform([], seeds[0], alg="philox") < probability
    upper = tf.maximum(tf.cast(num_active_layers, tf.int32), 2)
    cutoff = tf.random.stateless_uniform([], seeds[1], minval=1, maxval=upper, dtype=tf.int32,
                                         alg="philox")
    return tf.where(mix, cutoff, tf.cast(num_active_layers, tf.int32))


def mix_styles(dlatents, dlatents2, cutoff):
    """Layers < cutoff take w from `dlatents`, the rest from `dlatents2` ([N, L, D] each)."""
    layer_index = ops.reshape(ops.arange(dlatents.shape[1]), (1, -1, 1))
    return ops.where(layer_index < ops.cast(cutoff, "int32"), dlatents, dlatents2)
