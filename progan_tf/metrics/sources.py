"""Where metric images come from: a dataset pyramid (`RealImages`) and a generator
(`GeneratorFns`, built from a SavedModel, a run's checkpoint or any Python callable)."""

import dataclasses
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf


class SourceError(ValueError):
    """A data directory, SavedModel or run directory that cannot be used; the message names it."""


def to_uint8(images_float):
    """[-1, 1] float images -> uint8, round(x * 127.5 + 127.5) clipped to 0..255 (ProGAN)."""
    scaled = np.rint(np.asarray(images_float, np.float32) * 127.5 + 127.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Reals.


class RealImages:
    """The top level of a dataset pyramid (SPEC 4), read in record order as ProGAN's metrics do.

    Args:
        data_dir: directory of `<name>-rXX.tfrecords` files (data_tools layout).
        mirror: flip a random half of the images left-right (for runs trained with mirroring).
        seed: seeds the mirroring.

    Attributes: resolution, num_channels, num_images, labels (float32 [N, L] or None), path.
    """

    def __init__(self, data_dir, mirror=False, seed=0):
        from data_tools.errors import DataError
        from data_tools.pyramid import open_pyramid

        try:
            pyramid = open_pyramid(data_dir)
        except DataError as error:
            raise SourceError(str(error)) from None
        self.data_dir = os.fspath(data_dir)
        self.resolution = pyramid.resolution
        self.num_channels = pyramid.num_channels
        self.num_images = pyramid.num_images
        self.labels = pyramid.labels
        self.path = pyramid.levels[pyramid.resolution]
        self.mirror = mirror
        self.seed = seed

    def _parse(self, record):
        features = tf.io.parse_single_example(record, {
            "shape": tf.io.FixedLenFeature([3], tf.int64),
            "data": tf.io.FixedLenFeature([], tf.string)})
        image = tf.reshape(tf.io.decode_raw(features["data"], tf.uint8), features["shape"])
        return tf.transpose(image, [1, 2, 0])  # CHW -> HWC

    def batches(self, num, batch_size=64, start=0):
        """Yields uint8 [n, R, R, C] batches of images start .. start + num - 1 in record order,
        wrapping around when the file holds fewer (as ProGAN's repeating reader does)."""
        dataset = tf.data.TFRecordDataset(self.path).repeat()
        dataset = dataset.skip(start % self.num_images).take(num)
        dataset = dataset.map(self._parse, num_parallel_calls=2).batch(batch_size).prefetch(2)
        rng = np.random.default_rng([self.seed, start])
        iterator = iter(dataset)
        read = 0
        while True:
            try:
                batch = next(iterator).numpy()
            except StopIteration:
                return
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
                first_line = str(error).strip().splitlines()[0]
                raise SourceError(f"{self.path}: unreadable record after image "
                                  f"{start + read} ({first_line})") from None
            if self.mirror:
                flip = rng.random(len(batch)) < 0.5
                batch[flip] = batch[flip, :, ::-1]
            read += len(batch)
            yield batch


# ---------------------------------------------------------------------------------------------
# Generators.


@dataclasses.dataclass(frozen=True)
class GeneratorFns:
    """A generator as plain functions of numpy arrays.

    latent_size: Z.
    images_float: (latents float32 [N, Z], labels float32 [N, L] or None) -> float32 [N, H, W, C]
        in about [-1, 1].
    images: same inputs -> uint8 [N, H, W, C]; default to_uint8(images_float(...)).
    label_size: L (0: unconditional; labels are then None).
    mapping: optional latents [N, Z] -> dlatents [N, num_layers, D] (StyleGAN).
    synthesis: optional dlatents -> float32 images [N, H, W, C]; must be deterministic (fixed
        noise) for PPL.
    description: where it came from, for logs.
    """

    latent_size: int
    images_float: Callable
    images: Optional[Callable] = None
    label_size: int = 0
    mapping: Optional[Callable] = None
    synthesis: Optional[Callable] = None
    description: str = "generator"

    def __post_init__(self):
        if self.images is None:
            images_float = self.images_float
            object.__setattr__(self, "images",
                               lambda latents, labels=None: to_uint8(images_float(latents, labels)))

    def sample_labels(self, count, rng, label_pool=None):
        """None when unconditional; else `count` rows drawn from `label_pool` [M, L] (the
        dataset's labels) or, without one, uniform one-hot labels."""
        if not self.label_size:
            return None
        if label_pool is not None and len(label_pool):
            return np.asarray(label_pool[rng.integers(0, len(label_pool), count)], np.float32)
        return np.eye(self.label_size, dtype=np.float32)[rng.integers(0, self.label_size, count)]


def _signature_io(signature):
    """(input names, output names) of a concrete function loaded from a SavedModel."""
    inputs = list(signature.structured_input_signature[1].keys())
    outputs = list(signature.structured_outputs.keys())
    return inputs, outputs


def _resolve_saved_model_dir(path):
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [name for name in os.listdir(path) if name.isdigit()] if os.path.isdir(path) else []
    versions = [v for v in versions if os.path.isfile(os.path.join(path, v, "saved_model.pb"))]
    if versions:
        return os.path.join(path, max(versions, key=int))
    raise SourceError(f"{path}: not a SavedModel (no saved_model.pb, nor numbered version "
                      f"directories holding one)")


def generator_from_saved_model(path):
    """GeneratorFns from an exported SavedModel directory (or a model directory of numbered
    versions: the highest is used).

    Uses `serving_default(latents [, labels]) -> {"images" uint8, "images_float" float32}` and,
    when present, `mapping(latents) -> dlatents` and `synthesis(dlatents) -> images_float`.
    """
    path = _resolve_saved_model_dir(path)
    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise SourceError(f"{path}: cannot load the SavedModel ({str(error).splitlines()[0]})")
    signatures = loaded.signatures
    if "serving_default" not in signatures:
        raise SourceError(f"{path}: no serving_default signature")
    serving = signatures["serving_default"]
    inputs, outputs = _signature_io(serving)
    spec = serving.structured_input_signature[1]
    if "latents" not in spec or "images_float" not in outputs:
        raise SourceError(f"{path}: serving_default takes {inputs} and returns {outputs}; expected "
                          f"latents [N, Z] -> images_float (and images)")
    latent_size = int(spec["latents"].shape[1])
    label_size = int(spec["labels"].shape[1]) if "labels" in spec else 0

    def call(latents, labels=None):
        kwargs = {"latents": tf.constant(latents, tf.float32)}
        if label_size:
            kwargs["labels"] = tf.constant(labels, tf.float32)
        return serving(**kwargs)

    images = None
    if "images" in outputs:
        images = lambda latents, labels=None: call(latents, labels)["images"].numpy()
    mapping = synthesis = None
    if "mapping" in signatures and "synthesis" in signatures:
        mapping_fn, synthesis_fn = signatures["mapping"], signatures["synthesis"]
        (map_in,), map_out = _signature_io(mapping_fn)
        (syn_in,), syn_out = _signature_io(synthesis_fn)
        map_key = "dlatents" if "dlatents" in map_out else map_out[0]
        syn_key = "images_float" if "images_float" in syn_out else syn_out[0]
        mapping = lambda z: mapping_fn(**{map_in: tf.constant(z, tf.float32)})[map_key].numpy()
        synthesis = lambda w: synthesis_fn(**{syn_in: tf.constant(w, tf.float32)})[
            syn_key].numpy()
    return GeneratorFns(
        latent_size=latent_size, label_size=label_size,
        images_float=lambda latents, labels=None: call(latents, labels)["images_float"].numpy(),
        images=images, mapping=mapping, synthesis=synthesis, description=path)


def generator_from_run_dir(path, raw=False):
    """(GeneratorFns, kimg or None) from a run directory or checkpoint prefix: the generator of
    network.json restored from the latest (or given) checkpoint, at its final resolution."""
    from exports import run_dir as run_dir_lib

    try:
        generator, location = run_dir_lib.load_generator(path, raw=raw)
        kimg = run_dir_lib.read_training_kimg(location.checkpoint)
    except run_dir_lib.ExportError as error:
        raise SourceError(str(error)) from None
    return generator_from_network(generator, description=location.checkpoint), kimg


def generator_from_network(generator, resolution=None, description="generator"):
    """GeneratorFns of an in-memory progan_tf generator (ProGAN `Generator` or
    `StyleGenerator`): what the trainer hands to compute_metrics."""
    resolution = resolution or generator.resolution
    model = generator.model_for(resolution)
    label_size = int(generator.label_size)

    @tf.function(reduce_retracing=True)
    def forward(latents, labels):
        inputs = latents if labels is None else [latents, labels]
        return model(inputs, training=False)

    def images_float(latents, labels=None):
        labels = None if not label_size else tf.constant(labels, tf.float32)
        return forward(tf.constant(latents, tf.float32), labels).numpy()

    if hasattr(generator, "mapping_model") and not label_size:
        mapping_model = generator.mapping_model()
        synthesis_model = generator.synthesis_model_for(resolution)
        mapping_graph = tf.function(lambda z: mapping_model(z, training=False))
        synthesis_graph = tf.function(lambda w: synthesis_model(w, training=False))

        def mapping(latents):
            return mapping_graph(tf.constant(latents, tf.float32)).numpy()

        def synthesis(dlatents):
            # PPL needs the same noise for both ends of a pair: each layer's fixed noise image.
            noise_layers = generator.noise_layers()
            previous = [layer.randomize.numpy() for layer in noise_layers]
            generator.set_noise_mode("const")
            try:
                return synthesis_graph(tf.constant(dlatents, tf.float32)).numpy()
            finally:
                for layer, value in zip(noise_layers, previous):
                    layer.randomize.assign(value)
    else:
        mapping = synthesis = None

    return GeneratorFns(latent_size=int(generator.latent_size), label_size=label_size,
                        images_float=images_float, mapping=mapping, synthesis=synthesis,
                        description=description)
