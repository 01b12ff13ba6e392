"""Serving signatures of an exported generator: a table of endpoints, each with named inputs
(`tf.TensorSpec`s carrying their names) and a function of them returning named outputs.

ProGAN exports two endpoints:

    serving_default  latents [N, latent_size] float32 (+ labels [N, label_size] float32)
                     -> images [N, H, W, C] uint8, images_float [N, H, W, C] float32
    generate_seeds   seeds [N] int64 in 0..2^32-1 (+ labels)
                     -> images, images_float, latents [N, latent_size] float32

The architecture registry (`progan_tf.architectures`) names each architecture's table builder
here: `progan_endpoints`, `stylegan_endpoints`. StyleGAN's reuses `latents_endpoint` and `seeds_endpoint` with its own `render`, passes
`extra_inputs=(truncation_psi_spec(),)` to `seeds_endpoint` (so `render` receives
`truncation_psi` [N]) and appends two plain `Endpoint`s, `mapping` (latents -> dlatents) and
`synthesis` (dlatents -> images via `image_outputs`).
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from progan_tf.networks import stylegan

SEED_LIMIT = 2**32  # seeds are uint32 values carried as int64: 0 .. 2^32 - 1
SEED_RULE = ("latents[i] = tf.random.stateless_normal([latent_size], seed=[seeds[i], 0], "
             "alg='philox')")
IMAGE_RULE = "images = uint8(clip(round(x * 127.5 + 127.5), 0, 255)); images_float = clip(x, -1, 1)"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One SavedModel signature.

    name: signature key (`serving_default`, `generate_seeds`, ...).
    inputs: one `tf.TensorSpec` per input, each named; the signature's input names.
    fn: called with one keyword argument per input name; returns a dict of named output tensors.
    description: one line for `serving_meta.json` and the README.
    """

    name: str
    inputs: tuple
    fn: Callable[..., dict]
    description: str = ""

    def __post_init__(self):
        names = [spec.name for spec in self.inputs]
        if not all(names) or len(set(names)) != len(names):
            raise ValueError(f"endpoint {self.name!r}: every input needs a distinct name, "
                             f"received {names}")

    @property
    def input_names(self):
        return tuple(spec.name for spec in self.inputs)

    def positional_fn(self):
        """`fn` taking the inputs positionally, in the order of `inputs` (what ExportArchive
        traces with `input_signature=list(inputs)`)."""
        names = self.input_names

        def call(*tensors):
            return self.fn(**dict(zip(names, tensors)))

        return call


def latents_spec(latent_size):
    return tf.TensorSpec([None, latent_size], tf.float32, name="latents")


def labels_spec(label_size):
    return tf.TensorSpec([None, label_size], tf.float32, name="labels")


def seeds_spec():
    return tf.TensorSpec([None], tf.int64, name="seeds")


def truncation_psi_spec():
    """Per-example truncation strength for StyleGAN's `generate_seeds` (1 = no truncation)."""
    return tf.TensorSpec([None], tf.float32, name="truncation_psi")


def seeds_to_latents(seeds, latent_size):
    """[N] int64 seeds -> [N, latent_size] float32, one independent philox draw per seed.

    Each row is `tf.random.stateless_normal([latent_size], seed=[seed, 0], alg="philox")`, so
    a seed gives the same latents in any batch, on any device and machine. Seeds outside
    0..2^32-1 raise InvalidArgumentError.
    """
    seeds = tf.convert_to_tensor(seeds, tf.int64)
    checks = [
        tf.debugging.assert_non_negative(seeds, message="seeds must be in 0..2^32-1"),
        tf.debugging.assert_less(seeds, tf.constant(SEED_LIMIT, tf.int64),
                                 message="seeds must be in 0..2^32-1"),
    ]
    with tf.control_dependencies(checks):
        seeds = tf.identity(seeds)

    def one(seed):
        key = tf.stack([seed, tf.constant(0, tf.int64)])
        return tf.random.stateless_normal([latent_size], seed=key, dtype=tf.float32, alg="philox")

    return tf.map_fn(one, seeds, fn_output_signature=tf.TensorSpec([latent_size], tf.float32))


def image_outputs(images):
    """Generator output x [N, H, W, C] (~[-1, 1]) -> {"images": uint8 [N, H, W, C],
    "images_float": float32 [N, H, W, C] clipped to [-1, 1]}."""
    images = tf.cast(images, tf.float32)
    pixels = tf.clip_by_value(tf.round(images * 127.5 + 127.5), 0.0, 255.0)
    return {"images": tf.cast(pixels, tf.uint8),
            "images_float": tf.clip_by_value(images, -1.0, 1.0)}


def latents_endpoint(name, latent_size, label_size, render, description=""):
    """Endpoint `latents` (+ `labels`) -> image outputs; `render(latents, labels=None)` returns
    the generator's float images [N, H, W, C]."""
    inputs = (latents_spec(latent_size),) + ((labels_spec(label_size),) if label_size else ())

    def fn(latents, labels=None):
        return image_outputs(render(latents, labels=labels))

    return Endpoint(name, inputs, fn, description)


def seeds_endpoint(latent_size, label_size, render, extra_inputs=(), name="generate_seeds",
                   description=""):
    """Endpoint `seeds` (+ `labels`) (+ `extra_inputs`) -> image outputs and the latents.

    `render(latents, labels=None, **extra)` receives each extra input by its name, e.g.
    StyleGAN's `truncation_psi` [N]."""
    inputs = ((seeds_spec(),) + ((labels_spec(label_size),) if label_size else ())
              + tuple(extra_inputs))

    def fn(seeds, labels=None, **extra):
        latents = seeds_to_latents(seeds, latent_size)
        return {**image_outputs(render(latents, labels=labels, **extra)), "latents": latents}

    return Endpoint(name, inputs, fn, description)


def progan_endpoints(generator, resolution=None):
    """serving_default and generate_seeds of a ProGAN generator at `resolution` (default: its
    final one), rendering through `generator.model_for(resolution)` at its current fade_alpha."""
    model = generator.model_for(resolution or generator.resolution)

    def render(latents, labels=None):
        return model(latents if labels is None else [latents, labels])

    size = (generator.latent_size, generator.label_size)
    return [
        latents_endpoint("serving_default", *size, render,
                         description="latents (+ labels) -> images uint8, images_float float32"),
        seeds_endpoint(*size, render,
                       description="seeds (philox key [seed, 0]) (+ labels) -> images, "
                                   "images_float, latents"),
    ]


def dlatents_spec(num_layers, dlatent_size):
    return tf.TensorSpec([None, num_layers, dlatent_size], tf.float32, name="dlatents")


def stylegan_endpoints(generator, resolution=None):
    """StyleGAN: serving_default (no truncation), generate_seeds with a required per-example
    `truncation_psi` [N] (1 = none; applied around `dlatent_avg` to the layers below the
    generator's `truncation_cutoff`, 8 unless the model says otherwise, e.g. an imported official
    file), `mapping` (latents -> dlatents [N, num_layers, D]) and `synthesis`
    (dlatents -> images). Every noise input renders its layer's fixed noise image, so an
    exported model renders every latent the same way every time."""
    res = resolution or generator.resolution
    mapping = generator.mapping_model()
    synthesis = generator.synthesis_model_for(res, noise="const")
    size = (generator.latent_size, generator.label_size)

    def map_latents(latents, labels=None):
        return mapping(latents if labels is None else [latents, labels])

    def render(latents, labels=None, truncation_psi=None):
        dlatents = map_latents(latents, labels)
        if truncation_psi is not None:
            dlatents = stylegan.truncate(dlatents, generator.dlatent_avg, truncation_psi,
                                         generator.truncation_cutoff)
        return synthesis(dlatents)

    def mapping_outputs(latents, labels=None):
        dlatents = map_latents(latents, labels)
        avg = tf.cast(generator.dlatent_avg, tf.float32)[None]
        return {"dlatents": dlatents,
                "dlatent_avg": tf.tile(avg, [tf.shape(dlatents)[0], 1])}

    return [
        latents_endpoint("serving_default", *size, render,
                         description="latents (+ labels) -> images uint8, images_float float32 "
                                     "(no truncation)"),
        seeds_endpoint(*size, render, extra_inputs=(truncation_psi_spec(),),
                       description="seeds (philox key [seed, 0]) (+ labels), truncation_psi -> "
                                   "images, images_float, latents"),
        Endpoint("mapping", latents_endpoint("mapping", *size, None).inputs, mapping_outputs,
                 description="latents (+ labels) -> dlatents [N, num_layers, dlatent_size], "
                             "dlatent_avg [N, dlatent_size] (the truncation centre, per row)"),
        Endpoint("synthesis", (dlatents_spec(generator.num_layers, generator.dlatent_size),),
                 lambda dlatents: image_outputs(synthesis(dlatents)),
                 description="dlatents -> images uint8, images_float float32"),
    ]
