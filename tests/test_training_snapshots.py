"""Snapshots: rendering in fixed chunks, and the grids a run directory receives."""

import os

import numpy as np
import PIL.Image

from progan_tf.summaries import TensorBoard
from progan_tf.training import run_dir as run_dir_lib
from progan_tf.training.snapshots import Renderer, Snapshots
from progan_tf.training.sources import InMemorySource
from progan_tf.training.steps import GanTrainer
from training_common import one_device, tiny_config, tiny_images


def test_renderer_gives_the_images_of_the_model_in_chunks_of_any_size():
    gan = GanTrainer(tiny_config(), one_device(), 16, 1)
    latents = np.random.default_rng(0).standard_normal((5, gan.latent_size)).astype(np.float32)
    render = Renderer(gan.generator_ema, 0, batch_size=2)
    images = render(latents, None, 8)
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.float32
    expected = gan.generator_ema.model_for(8)(latents, training=False).numpy()
    np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-6)


def test_grids_are_written_by_the_chief_only(tmp_path):
    cfg = tiny_config(grid_size=(3, 2))
    source = InMemorySource(tiny_images(num=8))
    gan = GanTrainer(cfg, one_device(), 16, 1)
    gan.apply_phase(cfg.build_schedule(16).at(0.0))
    renderer = Renderer(gan.generator_ema, 0)
    board = TensorBoard(str(tmp_path))
    snapshots = Snapshots(cfg, gan.arch, source, renderer, gan.latent_size, str(tmp_path), board)
    snapshots.reals()
    snapshots.fakes(2500, 4)
    board.close()
    reals = np.asarray(PIL.Image.open(tmp_path / run_dir_lib.REALS_PNG))
    fakes = np.asarray(PIL.Image.open(tmp_path / run_dir_lib.fakes_filename(2)))
    assert reals.shape == fakes.shape == (32, 48)  # 3x2 images of 16x16 (4x4 upscaled)
    assert not os.path.exists(tmp_path / run_dir_lib.mixing_filename(2))  # ProGAN: no styles
    worker = Snapshots(cfg, gan.arch, source, renderer, gan.latent_size, None, TensorBoard(None))
    worker.reals()
    worker.fakes(0, 4)
    assert sorted(os.listdir(tmp_path)) == sorted(
        [run_dir_lib.REALS_PNG, run_dir_lib.fakes_filename(2)]
        + [name for name in os.listdir(tmp_path) if name.startswith("events")])
