"""Sources of real images for training: a dataset directory (`PyramidSource`, via
`progan_tf.data`) or arrays in memory (`InMemorySource`, for tests and benchmarks).

A source has resolution, num_channels, num_images, label_size, labels ([N, L] or None) and
`dataset(resolution, global_batch_size, start_position, input_context)`: batches of (images
float32 [b, r, r, C] in [-1, 1], labels float32 [b, L]) whose order is a pure function of the
stream position, so a run resumes from the position alone.
"""

import os

import numpy as np
import tensorflow as tf

from progan_tf import data
from progan_tf.training.distribute import split_batches


class InMemorySource:
    """Training images held in memory, for tests and small experiments.

    images: float32 [N, R, R, C] in [-1, 1]; lower levels are 2x2 means of the level above.
    labels: float32 [N, L] or None. The image at stream position p is image (p + seed) mod N.
    """

    def __init__(self, images, labels=None, seed=0):
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be [N, R, R, C], got shape {images.shape}")
        self.resolution = int(images.shape[1])
        self.num_channels = int(images.shape[3])
        self.num_images = int(images.shape[0])
        self.labels = None if labels is None else np.asarray(labels, dtype=np.float32)
        self.label_size = 0 if self.labels is None else int(self.labels.shape[1])
        self.seed = int(seed)
        self.levels = {self.resolution: images}
        res = self.resolution
        while res > 4:
            above = self.levels[res]
            res //= 2
            self.levels[res] = above.reshape(-1, res, 2, res, 2, self.num_channels).mean((2, 4))

    def dataset(self, resolution, global_batch_size, start_position=0, input_context=None):
        split = split_batches(global_batch_size, input_context)
        images = tf.constant(self.levels[resolution])
        labels = tf.constant(self.labels if self.labels is not None
                             else np.zeros((self.num_images, 0), np.float32))

        def batch(chunk):
            first = split.first_position(chunk, start_position)
            indices = (tf.range(first, first + split.per_replica) + self.seed) % self.num_images
            return tf.gather(images, indices), tf.gather(labels, indices)

        return tf.data.Dataset.counter().map(batch).prefetch(2)


class PyramidSource:
    """A multi-resolution TFRecord dataset directory read through `progan_tf.data`."""

    def __init__(self, data_dir, seed, mirror=False):
        self.pyramid = data.open_pyramid(data_dir)
        self.resolution = int(self.pyramid.resolution)
        self.num_channels = int(self.pyramid.num_channels)
        self.label_size = int(self.pyramid.label_size)
        self.labels = self.pyramid.labels
        self.num_images = int(self.pyramid.num_images)
        self.seed = seed
        self.mirror = mirror

    def dataset(self, resolution, global_batch_size, start_position=0, input_context=None):
        return data.make_dataset(
            self.pyramid, resolution, global_batch_size=global_batch_size, seed=self.seed,
            start_position=start_position, mirror=self.mirror, input_context=input_context,
            repeat=True)


def open_source(cfg, log=print):
    """Data source of `cfg` (raises a clear ValueError for an unusable dataset directory).
    With --create_embedded_data a missing --data_dir whose last part is the embedded set's name
    is built first; any other missing one is an error."""
    if cfg.create_embedded_data and not os.path.exists(cfg.data_dir):
        from data_tools.sources import embedded
        if os.path.basename(os.path.normpath(cfg.data_dir)) != embedded.DIRECTORY_NAME:
            # A mistyped path must not train on substitute data.
            raise ValueError(f"--data_dir: {cfg.data_dir} does not exist (--create_embedded_data "
                             f"builds the embedded set only at a path ending in "
                             f"{embedded.DIRECTORY_NAME})")
        log(f"Building the embedded Fashion-MNIST dataset in {cfg.data_dir}")
        embedded.create_embedded(cfg.data_dir)
    if not os.path.isdir(cfg.data_dir):
        raise ValueError(f"--data_dir: {cfg.data_dir} is not a directory")
    return PyramidSource(cfg.data_dir, seed=cfg.seed, mirror=cfg.mirror_augment)


def check_data(cfg, source):
    """Raises ValueError when the flags do not fit the data."""
    if cfg.resolution is not None and cfg.resolution != source.resolution:
        raise ValueError(f"--resolution: {cfg.resolution} does not match the dataset "
                         f"{cfg.data_dir} ({source.resolution}x{source.resolution})")
    if cfg.lod_initial_resolution > source.resolution:
        raise ValueError(f"--lod_initial_resolution: {cfg.lod_initial_resolution} is larger than "
                         f"the dataset's resolution {source.resolution}")
    if cfg.use_labels and not source.label_size:
        raise ValueError(f"--use_labels: the dataset {cfg.data_dir} has no labels")
