"""StyleGAN in training: mapping + mixing + dlatent_avg in the training forward, the EMA
generator's fixed noise, checkpoints, export signatures, the style-mixing grid, rosinality's
schedule and flag files, and a short `python -m progan_tf.train --architecture stylegan` run.

Tiny networks (fmap_base 64, fmap_max 16, latent 16, 2 mapping layers), 16x16 grayscale images,
global batch 8.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import conftest
from progan_tf import architectures
from progan_tf import schedule
from progan_tf.networks import stylegan
from progan_tf.training import loop
from progan_tf.training import rng
from progan_tf.training.snapshots import Renderer
from progan_tf.training.sources import InMemorySource
from progan_tf.training.state import read_state
from progan_tf.training.steps import DLATENT_MEAN, MIXING_CUTOFF, GanTrainer
from training_common import BATCH, REPO, copy_networks, first_batch, one_device, \
    read_tensorboard, tiny_config, tiny_images, weights, write_pyramid


def style_config(tmp_path=None, **overrides):
    values = dict(architecture="stylegan", loss="logistic_r1", latent_size=16, mapping_layers=2,
                  lod_initial_resolution=8, ema_kimg=10.0)
    values.update(overrides)
    return tiny_config(tmp_path, **values)


def test_training_run_updates_dlatent_avg_restores_and_exports_four_signatures(tmp_path):
    cfg = style_config(tmp_path, total_kimg=0.064, export=True)
    result = loop.train(cfg, source=InMemorySource(tiny_images()),
                        log_stream=open(os.devnull, "w"))
    assert result.status == "done"
    run_dir = result.run_dir
    network = json.load(open(os.path.join(run_dir, "network.json")))
    assert network["architecture"] == "stylegan"
    assert network["generator"]["latent_size"] == 16
    assert network["generator"]["mapping_layers"] == 2
    assert network["discriminator"]["blur_filter"] == [1, 2, 1]
    for name in ("fakes000000.png", "mix000000.png", "reals.png"):
        assert os.path.exists(os.path.join(run_dir, name)), name

    tags = read_tensorboard(run_dir).Tags()["tensors"]
    scalars = {tag: [float(tf.make_ndarray(e.tensor_proto))
                     for e in read_tensorboard(run_dir).Tensors(tag)]
               for tag in ("Loss/G", "Loss/D", "Loss/r1_penalty")}
    for tag, values in scalars.items():
        assert values and np.all(np.isfinite(values)), tag
    assert "Samples/style_mixing" in tags and MIXING_CUTOFF in tags

    # The checkpoint holds a moved dlatent_avg for G and (copied) for the EMA generator.
    gan = GanTrainer(cfg, one_device(), 16, 1)
    assert np.all(gan.generator.dlatent_avg.numpy() == 0)
    gan.checkpoint.restore(tf.train.latest_checkpoint(
        os.path.join(run_dir, "checkpoints"))).assert_existing_objects_matched()
    avg = gan.generator.dlatent_avg.numpy()
    assert np.all(np.isfinite(avg)) and np.abs(avg).max() > 1e-3
    assert np.abs(gan.generator_ema.dlatent_avg.numpy()).max() > 1e-3
    assert gan.state.values()["nimg"] == 64
    assert read_state(os.path.join(run_dir, "checkpoints"))["nimg"] == 64

    loaded = tf.saved_model.load(result.export_dir)
    assert {"serving_default", "generate_seeds", "mapping", "synthesis"} <= set(
        loaded.signatures)
    out = loaded.signatures["generate_seeds"](
        seeds=tf.constant([1, 2], tf.int64), truncation_psi=tf.constant([0.0, 0.0]))
    # psi 0 maps every seed to the tracked average: both images coincide.
    images = out["images_float"].numpy()
    np.testing.assert_allclose(images[0], images[1], atol=1e-5)


def test_mixing_uses_a_second_latent_from_the_drawn_cutoff_and_dlatent_avg_follows_w():
    cfg = style_config(style_mixing_prob=1.0)
    gan = GanTrainer(cfg, one_device(), 16, 1)
    phase = cfg.build_schedule(16).at(0.0)
    gan.apply_phase(phase)
    assert phase.resolution == 8
    cutoffs = []
    for counter in range(6):
        gan.state.g_steps.assign(counter)
        _, stats = gan.g_gradients(8, BATCH)
        cutoffs.append(float(stats[MIXING_CUTOFF]))
        # Mixing always on: the crossover lies in [1, num_layers_at(8) = 4).
        assert cutoffs[-1] in range(1, stylegan.num_layers_at(8))
        # The mean of w_0 over the step's latents.
        latents = gan.random.latents(counter, rng.G_LATENTS, BATCH, 16)
        mean = gan.generator.mapping_model()(latents)[:, 0].numpy().mean(0)
        np.testing.assert_allclose(stats[DLATENT_MEAN], mean, rtol=1e-5, atol=1e-6)
    assert len(set(cutoffs)) > 1  # a different draw per step counter
    never = GanTrainer(style_config(style_mixing_prob=0.0), one_device(), 16, 1)
    never.apply_phase(phase)
    assert MIXING_CUTOFF not in never.g_gradients(8, BATCH)[1]

    # The same crossover is used: the images of the mixed forward pass equal the synthesis of
    # w with the layers from the cutoff on taken from the second latents' w.
    counter = tf.constant(0, tf.int64)
    latents = gan.random.latents(counter, rng.G_LATENTS, BATCH, 16)
    second = gan.random.mixing_latents(counter, rng.G_LATENTS, BATCH, 16)
    mixing = architectures.StyleMixing(second, gan.random.mixing_key(counter, rng.G_LATENTS),
                                       1.0)
    images, extras = gan.arch.fakes(gan.generator_ema, latents, 8, mixing)
    mapping = gan.generator_ema.mapping_model()
    w, w2 = mapping(latents).numpy(), mapping(second).numpy()
    w[:, int(extras["mixing_cutoff"]):] = w2[:, int(extras["mixing_cutoff"]):]
    expected = gan.generator_ema.synthesis_model_for(8)(w, training=True)
    np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-5)

    # A G step moves dlatent_avg by (1 - 0.995) towards the batch mean of w_0.
    gan.state.g_steps.assign(0)
    before = gan.generator.dlatent_avg.numpy().copy()
    latents = gan.random.latents(0, rng.G_LATENTS, BATCH, 16)
    mean = gan.generator.mapping_model()(latents)[:, 0].numpy().mean(0)
    stats, applied = gan.g_step(8, BATCH)
    assert bool(applied) and MIXING_CUTOFF in stats and DLATENT_MEAN not in stats
    np.testing.assert_allclose(gan.generator.dlatent_avg.numpy(),
                               mean + 0.995 * (before - mean), rtol=1e-4, atol=1e-6)


def set_noise_strengths(generator, value):
    for variable in generator.trainable_variables:
        if "/noise" in variable.path:
            variable.assign(tf.fill(variable.shape, value))


def test_training_draws_fresh_noise_and_the_ema_generator_renders_its_fixed_noise():
    cfg = style_config()
    source = InMemorySource(tiny_images())
    gan = GanTrainer(cfg, one_device(), 16, 1)
    gan.apply_phase(cfg.build_schedule(16).at(0.0))
    latents = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    for generator in (gan.generator, gan.generator_ema):
        set_noise_strengths(generator, 0.5)
    # The training forward pass: new noise on each call.
    first, _ = gan.arch.fakes(gan.generator, latents, 8)
    second, _ = gan.arch.fakes(gan.generator, latents, 8)
    assert not np.allclose(first, second)
    render = Renderer(gan.generator_ema, 0)
    np.testing.assert_array_equal(render(latents, None, 8), render(latents, None, 8))

    gan.generator.dlatent_avg.assign(tf.fill([16], 0.5))
    live = weights(gan.generator.trainable_variables)
    _, applied = gan.d_step(first_batch(gan, source, 8), 8, BATCH, ema_beta=0.0)
    assert bool(applied)
    # beta 0: the EMA copies G, non-trainables (dlatent_avg, fixed noise) included; it still
    # renders fixed noise.
    for ema, value in zip(gan.generator_ema.trainable_variables, live):
        np.testing.assert_allclose(ema.numpy(), value, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gan.generator_ema.dlatent_avg.numpy(), 0.5)
    np.testing.assert_array_equal(render(latents, None, 8), render(latents, None, 8))


def test_rosinality_schedule_fades_in_each_resolution_then_stabilises():
    sched = schedule.RosinalitySchedule(
        resolution=64, initial_resolution=8, minibatch_base=schedule.ROSINALITY_MINIBATCH_BASE,
        minibatch_dict=schedule.ROSINALITY_MINIBATCH_DICT, max_minibatch_per_replica={},
        g_lrate_dict=schedule.ROSINALITY_LRATE_DICT, d_lrate_dict=schedule.ROSINALITY_LRATE_DICT)
    first = sched.at(1000.0)  # 8x8 trains 1,200 kimg at alpha 1
    assert (first.resolution, first.fade_alpha, first.lod, first.minibatch) == (8, 1.0, 3.0, 256)
    start = sched.at(1200.0)  # 16x16 starts fading in: alpha = (0 + 1) / 600,000
    assert start.resolution == 16 and start.fade_alpha == pytest.approx(1 / 600000)
    assert start.minibatch == 128 and int(np.floor(start.lod)) == 2
    middle = sched.at(1500.0)
    assert middle.fade_alpha == pytest.approx(0.5, abs=1e-5)
    assert middle.lod == pytest.approx(2.5, abs=1e-5)
    assert schedule.resolution_at_lod(middle.lod, 64) == 16
    stable = sched.at(2000.0)
    assert (stable.resolution, stable.fade_alpha, stable.lod) == (16, 1.0, 2.0)
    assert sched.at(2400.0).resolution == 32 and sched.at(2400.0).minibatch == 64
    last = sched.at(3600.0 + 300.0)
    assert (last.resolution, last.minibatch) == (64, 32)
    assert last.fade_alpha == pytest.approx(0.5, abs=1e-5)
    assert sched.at(10000.0).lod == 0.0 and sched.at(10000.0).fade_alpha == 1.0
    assert sched.kimg_fully_grown() == 3 * 1200 + 600
    # The learning-rate table starts at 128.
    big = schedule.RosinalitySchedule(resolution=256, initial_resolution=8,
                                      g_lrate_dict=schedule.ROSINALITY_LRATE_DICT)
    assert big.at(4 * 1200 + 700.0).resolution == 128
    assert big.at(4 * 1200 + 700.0).g_lrate == 0.0015 and big.at(0.0).g_lrate == 0.001


def test_command_line_trains_stylegan_and_writes_its_network_json(tmp_path):
    data_dir = write_pyramid(tmp_path / "blobs-16", tiny_images(32))
    results = tmp_path / "results"
    command = [sys.executable, "-m", "progan_tf.train", f"--data_dir={data_dir}",
               f"--results_dir={results}", "--architecture=stylegan", "--schedule=rosinality",
               "--fmap_base=64", "--fmap_max=16", "--latent_size=16", "--mapping_layers=2",
               "--minibatch_base=8", "--minibatch_dict=", "--minibatch_repeats=1",
               "--lod_training_kimg=0.016", "--lod_transition_kimg=0.016",
               "--tick_kimg_base=0.016", "--tick_kimg_dict=", "--grid_size=4x2",
               "--strategy=one_device", "--total_kimg=0.032", "--noexport"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = results / "00000-blobs-16"
    network = json.load(open(run_dir / "network.json"))
    assert network["architecture"] == "stylegan"
    assert network["generator"]["dlatent_size"] == 16
    flags_json = json.load(open(run_dir / "flags.json"))
    # Presets for flags not given: rosinality's wgan_gp and EMA, StyleGAN's 8x8 start.
    assert flags_json["schedule"] == "rosinality" and flags_json["loss"] == "wgan_gp"
    assert flags_json["lod_initial_resolution"] == 8 and flags_json["ema_beta"] == 0.999
    log = open(run_dir / "log.txt").read()
    assert "resolution 8 " in log and "Training done" in log


def test_stylegan_flag_files_hold_nvidias_and_rosinalitys_settings():
    from test_train import parse
    nvidia = parse(f"--flagfile={REPO}/configs/stylegan-ffhq-1024.flags")
    assert (nvidia.architecture, nvidia.schedule, nvidia.loss) == (
        "stylegan", "progan", "logistic_r1")
    assert (nvidia.lod_initial_resolution, nvidia.total_kimg, nvidia.ema_kimg) == (8, 25000, 10)
    assert nvidia.build_schedule(1024).kimg_fully_grown() == 8400
    assert dict(nvidia.lrate_dict) == schedule.STYLEGAN_LRATE_DICT
    ros = parse(f"--flagfile={REPO}/configs/stylegan-rosinality.flags")
    assert ros.schedule == "rosinality" and not ros.reset_optimizer_on_lod_change
    phase = ros.build_schedule(1024).at(1500.0)
    assert (phase.resolution, phase.minibatch) == (16, 128)
    assert phase.fade_alpha == pytest.approx(0.5, abs=1e-5)
    quick = parse(f"--flagfile={REPO}/configs/stylegan-quickstart.flags")
    assert quick.architecture == "stylegan"
    assert quick.build_schedule(32).at(quick.total_kimg).resolution == 32


def test_two_replicas_mix_and_average_w_as_one_device():
    cfg = style_config(style_mixing_prob=1.0)
    single = GanTrainer(cfg, one_device(), 16, 1)
    mirrored = GanTrainer(cfg, conftest.two_replicas(), 16, 1)
    copy_networks(single, mirrored)
    for gan in (single, mirrored):
        gan.apply_phase(cfg.build_schedule(16).at(0.0))
    g_grads_1, stats_1 = single.g_gradients(8, BATCH)
    g_grads_2, stats_2 = mirrored.g_gradients(8, BATCH)
    # Each replica maps its half of the same global latents: the summed partial means are the
    # global mean of w_0, and both replicas drew the crossover of one device.
    np.testing.assert_allclose(stats_2[DLATENT_MEAN], stats_1[DLATENT_MEAN], rtol=1e-5,
                               atol=1e-6)
    assert float(stats_2[MIXING_CUTOFF]) == float(stats_1[MIXING_CUTOFF])
    assert float(stats_1[MIXING_CUTOFF]).is_integer()
    # Training noise is drawn by each replica's noise layers (not keyed by the step counter), so
    # only the noise strengths' gradients differ; at init (strength 0) the images do not.
    compared = [path for path in g_grads_1 if "/noise" not in path]
    assert len(compared) > 20
    # atol 1e-3: a bias before instance norm has a zero gradient up to round-off (~1e-4).
    for path in compared:
        np.testing.assert_allclose(g_grads_2[path], g_grads_1[path], rtol=1e-4, atol=1e-3,
                                   err_msg=path)
    stats, applied = mirrored.g_step(8, BATCH)
    assert bool(applied)
    mean = stats_1[DLATENT_MEAN].numpy()
    np.testing.assert_allclose(mirrored.generator.dlatent_avg.numpy(), 0.005 * mean, rtol=1e-4,
                               atol=1e-7)
