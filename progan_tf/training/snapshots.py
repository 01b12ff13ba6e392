"""Image snapshots of a run: the EMA generator rendered in fixed-size chunks (`Renderer`), and
the run directory's grids with their TensorBoard images (`Snapshots`): reals.png, fakesKKKKKK.png
and, for styled generators, StyleGAN's figure-3 style-mixing grid mixKKKKKK.png."""

import os

import numpy as np
import tensorflow as tf

from progan_tf.networks import stylegan
from progan_tf.training import run_dir as run_dir_lib
from progan_tf.utils import images as images_lib

# The style-mixing grid: source images per side.
MIXING_GRID_COLUMNS = 5
MIXING_GRID_ROWS = 3


class Renderer:
    """Images of `generator` called with training=False (a styled generator renders its fixed
    noise). label_size: 0 for an unconditional generator."""

    def __init__(self, generator, label_size, batch_size=64):
        self.generator = generator
        self.label_size = label_size
        self.batch_size = batch_size
        self._functions = {}

    def __call__(self, latents, labels, resolution):
        """float32 [N, r, r, C] numpy images at `resolution` of latents [N, Z] (and labels
        [N, L]). Runs in chunks of `batch_size` (the last one padded), so one trace serves
        every call."""
        if resolution not in self._functions:
            model = self.generator.model_for(resolution)
            # A plain forward pass: nothing for AutoGraph to convert (see GanTrainer._step_fn).
            self._functions[resolution] = tf.function(
                lambda *inputs: model(inputs[0] if len(inputs) == 1 else list(inputs),
                                      training=False), autograph=False)
        function = self._functions[resolution]
        size = self.batch_size
        out = []
        for start in range(0, len(latents), size):
            chunk = [latents[start:start + size]]
            if self.label_size:
                chunk.append(labels[start:start + size])
            count = len(chunk[0])
            chunk = [np.concatenate([c, np.zeros((size - count,) + c.shape[1:], c.dtype)])
                     for c in chunk]
            images = function(*[tf.constant(c) for c in chunk])
            out.append(np.asarray(images, np.float32)[:count])
        return np.concatenate(out)

    def style_mixing(self, column_latents, row_latents, layers, resolution, label=None):
        """utils.images.style_mixing_tiles of a styled generator at `resolution`: float32
        [(rows + 1) * (columns + 1), r, r, C]; label: [1, L], the label of every image of a
        conditional generator."""
        mapping = self.generator.mapping_model()
        synthesis = self.generator.synthesis_model_for(resolution)

        def map_latents(latents):
            latents = np.asarray(latents, np.float32)
            inputs = latents if not self.label_size else [
                latents, np.repeat(label, len(latents), axis=0)]
            return np.asarray(mapping(inputs, training=False), np.float32)

        return images_lib.style_mixing_tiles(
            map_latents(column_latents), map_latents(row_latents), layers,
            lambda dlatents: np.asarray(synthesis(dlatents, training=False), np.float32),
            background=-1.0)


class Snapshots:
    """The image grids of a run, written by the chief.

    cfg: the TrainConfig (seed, grid_size); arch: its architectures.Architecture; source: the
    data source; renderer: a Renderer of the EMA generator; latent_size: of the generator;
    run_dir: the run directory (None on the other workers: nothing is written);
    tensorboard: summaries.TensorBoard.
    """

    def __init__(self, cfg, arch, source, renderer, latent_size, run_dir, tensorboard):
        self.cfg = cfg
        self.arch = arch
        self.source = source
        self.renderer = renderer
        self.latent_size = latent_size
        self.run_dir = run_dir
        self.tensorboard = tensorboard
        self.grid_size = cfg.grid_size or images_lib.grid_shape(source.resolution)
        self.grid_latents = self.grid_labels = None

    def reals(self):
        """reals.png (the first images of the data) and Samples/reals; fixes the latents and
        labels of every later fakes grid."""
        if self.run_dir is None:
            return
        count = self.grid_size[0] * self.grid_size[1]
        reals, labels = next(iter(self.source.dataset(self.source.resolution, count, 0, None)))
        self.grid_labels = labels.numpy()
        rng = np.random.default_rng(self.cfg.seed)
        self.grid_latents = rng.standard_normal((count, self.latent_size)).astype(np.float32)
        grid = _save_grid(reals.numpy(), self._path(run_dir_lib.REALS_PNG), self.grid_size)
        self.tensorboard.image("Samples/reals", grid, 0)

    def fakes(self, nimg, resolution):
        """fakesKKKKKK.png and Samples/fakes of the EMA generator at `resolution` (shown at the
        data's resolution); the style-mixing grid too for styled generators."""
        if self.run_dir is None:
            return
        images = self.renderer(self.grid_latents, self.grid_labels, resolution)
        grid = _save_grid(images, self._path(run_dir_lib.fakes_filename(nimg // 1000)),
                          self.grid_size, self.source.resolution)
        self.tensorboard.image("Samples/fakes", grid, nimg)
        if self.arch.styles:
            self._style_mixing(nimg, resolution)

    def _style_mixing(self, nimg, resolution):
        """Figure 3 of StyleGAN: columns give the coarse styles (layers 0-3, at most half of
        the layers in use), rows the rest."""
        columns, rows = MIXING_GRID_COLUMNS, MIXING_GRID_ROWS
        rng = np.random.default_rng(self.cfg.seed + 1)
        latents = rng.standard_normal((columns + rows, self.latent_size)).astype(np.float32)
        layers = range(min(4, stylegan.num_layers_at(resolution) // 2))
        tiles = self.renderer.style_mixing(latents[:columns], latents[columns:], layers,
                                           resolution, self.grid_labels[:1])
        path = self._path(run_dir_lib.mixing_filename(nimg // 1000))
        grid = _save_grid(tiles, path, (columns + 1, rows + 1), self.source.resolution)
        self.tensorboard.image("Samples/style_mixing", grid, nimg)

    def _path(self, name):
        return os.path.join(self.run_dir, name)


def _save_grid(images, path, grid_size, resolution=None):
    """images_lib.save_grid (written atomically); a failed write (a full disk) raises an OSError
    that names `path`."""
    try:
        return images_lib.save_grid(images, path, grid_size, resolution)
    except OSError as error:
        if error.filename:
            raise
        raise OSError(error.errno, error.strerror, path) from None
