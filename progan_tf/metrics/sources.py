"""Where metric images come from: a dataset pyramid (`RealImages`) and a generator
(`progan_tf.generators.GeneratorFns`: an export via `generators.from_saved_model`, or a network
or run directory via `generator_from_network` / `generator_from_run_dir` below)."""

import os

import numpy as np
import tensorflow as tf

from progan_tf import generators


class SourceError(ValueError):
    """A data directory that cannot be used; the message names it."""


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
# Generators: progan_tf.generators with the metrics' noise protocol.


def generator_from_network(generator, resolution=None, description="generator"):
    """GeneratorFns of an in-memory progan_tf generator, what the trainer hands to
    compute_metrics. A generator with styles renders the shared fakes (FID, SWD, MS-SSIM) with
    fresh noise per image, StyleGAN's FID protocol; its `synthesis` (PPL) renders the stored
    noise, so both ends of a pair see the same noise."""
    return generators.from_network(generator, resolution, noise="random",
                                   description=description)


def generator_from_run_dir(path, raw=False):
    """(GeneratorFns, kimg or None) from a run directory or checkpoint prefix, with the noise
    protocol of `generator_from_network`."""
    from exports import run_dir as run_dir_lib

    generator, location = generators.from_run_dir(path, raw=raw, noise="random")
    return generator, run_dir_lib.read_training_kimg(location.checkpoint)
