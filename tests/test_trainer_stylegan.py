"""StyleGAN in the trainer: mapping + mixing + dlatent_avg in the training forward, the EMA
generator's fixed noise, checkpoints, export signatures, the style-mixing grid, rosinality's
schedule, the architecture presets and a short `python -m progan_tf.train --architecture
stylegan` run.

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

from progan_tf import config
from progan_tf import schedule
from progan_tf.networks import stylegan
from progan_tf import summaries
from progan_tf import train
from progan_tf import trainer
from test_trainer import BATCH, first_batch, one_device, tiny_config, tiny_images, weights
from test_trainer import read_tensorboard, write_pyramid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def style_config(tmp_path=None, **overrides):
    values = dict(architecture="stylegan", loss="logistic_r1", latent_size=16, mapping_layers=2,
                  lod_initial_resolution=8, ema_kimg=10.0)
    values.update(overrides)
    return tiny_config(tmp_path, **values)


def test_training_run_updates_dlatent_avg_restores_and_exports_four_signatures(tmp_path):
    cfg = style_config(tmp_path, total_kimg=0.064, export=True)
    result = trainer.train(cfg, source=trainer.InMemorySource(tiny_images()),
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
    assert "Samples/style_mixing" in tags and "Train/mixing_cutoff" in tags

    # The checkpoint holds a moved dlatent_avg for G and (copied) for the EMA generator.
    gan = trainer.GanTrainer(cfg, one_device(), 16, 1)
    assert np.all(gan.generator.dlatent_avg.numpy() == 0)
    gan.checkpoint.restore(tf.train.latest_checkpoint(
        os.path.join(run_dir, "checkpoints"))).assert_existing_objects_matched()
    avg = gan.generator.dlatent_avg.numpy()
    assert np.all(np.isfinite(avg)) and np.abs(avg).max() > 1e-3
    assert np.abs(gan.generator_ema.dlatent_avg.numpy()).max() > 1e-3
    assert gan.state.values()["nimg"] == 64

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
    gan = trainer.GanTrainer(cfg, one_device(), 16, 1)
    phase = cfg.schedule(16).at(0.0)
    gan.apply_phase(phase)
    assert phase.resolution == 8
    cutoffs = []
    for counter in range(6):
        stats = {}
        gan._fakes(tf.zeros([BATCH, 16]), None, tf.constant(counter, tf.int64),
                   trainer._G_LATENTS, 8, BATCH, stats)
        cutoffs.append(int(stats["_mixing_cutoff"]))
        # Mixing always on: the crossover lies in [1, num_layers_at(8) = 4).
        assert 1 <= cutoffs[-1] < stylegan.num_layers_at(8)
        # With z = 0, w_0 is the mapping of 0 for every sample: the batch mean is that w.
        w0 = gan.generator.mapping_model()(tf.zeros([1, 16]))[0, 0]
        np.testing.assert_allclose(stats["_dlatent_mean"], w0, rtol=1e-5, atol=1e-6)
    assert len(set(cutoffs)) > 1  # a different draw per step counter
    never = trainer.GanTrainer(style_config(style_mixing_prob=0.0), one_device(), 16, 1)
    stats = {}
    never._fakes(tf.zeros([BATCH, 16]), None, tf.constant(0, tf.int64), trainer._G_LATENTS, 8,
                 BATCH, stats)
    assert "_mixing_cutoff" not in stats

    # A G step moves dlatent_avg by (1 - 0.995) towards the batch mean of w_0.
    before = gan.generator.dlatent_avg.numpy().copy()
    latents = gan._latents(gan.state.g_steps.read_value(), trainer._G_LATENTS, BATCH)
    mean = gan.generator.mapping_model()(latents)[:, 0].numpy().mean(0)
    stats, applied = gan.g_step(8, BATCH)
    assert bool(applied) and "Train/mixing_cutoff" in stats and "_dlatent_mean" not in stats
    np.testing.assert_allclose(gan.generator.dlatent_avg.numpy(),
                               mean + 0.995 * (before - mean), rtol=1e-4, atol=1e-6)


def test_ema_generator_keeps_fixed_noise_and_copies_dlatent_avg():
    cfg = style_config()
    source = trainer.InMemorySource(tiny_images())
    gan = trainer.GanTrainer(cfg, one_device(), 16, 1)
    gan.apply_phase(cfg.schedule(16).at(0.0))
    assert all(layer.randomize.numpy() == 1.0 for layer in gan.generator.noise_layers())
    assert all(layer.randomize.numpy() == 0.0 for layer in gan.generator_ema.noise_layers())
    gan.generator.dlatent_avg.assign(tf.fill([16], 0.5))
    live = weights(gan.generator.trainable_variables)
    _, applied = gan.d_step(first_batch(gan, source, 8), 8, BATCH, ema_beta=0.0)
    assert bool(applied)
    # beta 0: the EMA copies G; the noise switch stays "const" on the EMA generator.
    for ema, value in zip(gan.generator_ema.trainable_variables, live):
        np.testing.assert_allclose(ema.numpy(), value, rtol=1e-6, atol=1e-7)
    assert all(layer.randomize.numpy() == 0.0 for layer in gan.generator_ema.noise_layers())
    np.testing.assert_allclose(gan.generator_ema.dlatent_avg.numpy(), 0.5)
    latents = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    first = gan.render(latents, None, 8)
    np.testing.assert_array_equal(gan.render(latents, None, 8), first)  # fixed noise


def test_style_mixing_tiles_follow_figure_3():
    # mapping: w = z broadcast to 4 layers; synthesis: image value = sum over layers of
    # (layer + 1) * w_l[0], so each tile's value says which source gave which layer.
    def mapping(latents):
        return np.repeat(np.asarray(latents)[:, None, :], 4, axis=1)

    def synthesis(dlatents):
        value = (np.asarray(dlatents)[:, :, 0] * np.arange(1, 5)).sum(1)
        return np.tile(value[:, None, None, None], (1, 2, 2, 1)).astype(np.float32)

    columns = np.array([[1.0], [2.0]])
    rows = np.array([[10.0], [20.0], [30.0]])
    tiles = summaries.style_mixing_tiles(mapping, synthesis, columns, rows, layers=[0, 1])
    values = tiles[:, 0, 0, 0].reshape(4, 3)
    assert values[0, 0] == -1.0  # black corner
    np.testing.assert_array_equal(values[0, 1:], [10.0, 20.0])  # column sources: 1+2+3+4 = 10
    np.testing.assert_array_equal(values[1:, 0], [100.0, 200.0, 300.0])
    # Row 10, column 2: layers 0, 1 from the column (2 * (1 + 2)), 2, 3 from the row.
    assert values[1, 2] == 2 * 3 + 10 * 7
    assert values[3, 1] == 1 * 3 + 30 * 7


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


def test_architecture_and_schedule_presets_apply_only_to_flags_not_given():
    base = {"architecture": "stylegan", "schedule": "progan", "loss": "wgan_gp",
            "ema_kimg": 0.0, "lod_initial_resolution": 4, "total_kimg": 12000,
            "lrate_dict": "1024:0.0015"}
    values = train.apply_preset_defaults(base, given={"architecture", "loss"})
    assert values["loss"] == "wgan_gp"  # given: kept
    assert values["ema_kimg"] == 10.0 and values["lod_initial_resolution"] == 8
    assert values["total_kimg"] == 25000
    assert values["lrate_dict"] == "128:0.0015,256:0.002,512:0.003,1024:0.003"
    ros = config.preset_defaults("stylegan", "rosinality")
    assert ros["minibatch_dict"] == {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 32, 256: 32}
    assert ros["lod_training_kimg"] == ros["lod_transition_kimg"] == 600
    assert config.preset_defaults("progan") == {}
    with pytest.raises(config.ConfigError, match="--schedule"):
        config.TrainConfig(data_dir="x", schedule_name="linear")
    with pytest.raises(config.ConfigError, match="--style_mixing_prob"):
        config.TrainConfig(data_dir="x", style_mixing_prob=1.5)


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
    assert (nvidia.architecture, nvidia.schedule_name, nvidia.loss) == (
        "stylegan", "progan", "logistic_r1")
    assert (nvidia.lod_initial_resolution, nvidia.total_kimg, nvidia.ema_kimg) == (8, 25000, 10)
    assert nvidia.schedule(1024).kimg_fully_grown() == 8400
    assert dict(nvidia.lrate_dict) == schedule.STYLEGAN_LRATE_DICT
    ros = parse(f"--flagfile={REPO}/configs/stylegan-rosinality.flags")
    assert ros.schedule_name == "rosinality" and not ros.reset_optimizer_on_lod_change
    phase = ros.schedule(1024).at(1500.0)
    assert (phase.resolution, phase.minibatch) == (16, 128)
    assert phase.fade_alpha == pytest.approx(0.5, abs=1e-5)
    quick = parse(f"--flagfile={REPO}/configs/stylegan-quickstart.flags")
    assert quick.architecture == "stylegan"
    assert quick.schedule(32).at(quick.total_kimg).resolution == 32


def test_two_replicas_mix_and_average_w_as_one_device():
    from test_trainer import copy_networks, two_replicas
    cfg = style_config(style_mixing_prob=1.0)
    single = trainer.GanTrainer(cfg, one_device(), 16, 1)
    mirrored = trainer.GanTrainer(cfg, two_replicas(), 16, 1)
    copy_networks(single, mirrored)
    for gan in (single, mirrored):
        gan.apply_phase(cfg.schedule(16).at(0.0))
    g_grads_1, stats_1 = single.g_gradients(8, BATCH)
    g_grads_2, stats_2 = mirrored.g_gradients(8, BATCH)
    # Each replica maps its half of the same global latents: the summed partial means are the
    # global mean of w_0, and both replicas drew the same crossover.
    np.testing.assert_allclose(stats_2["_dlatent_mean"], stats_1["_dlatent_mean"], rtol=1e-5,
                               atol=1e-6)
    assert int(stats_2["_mixing_cutoff"]) == 2 * int(stats_1["_mixing_cutoff"])
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
    mean = stats_1["_dlatent_mean"].numpy()
    np.testing.assert_allclose(mirrored.generator.dlatent_avg.numpy(), 0.005 * mean, rtol=1e-4,
                               atol=1e-7)
