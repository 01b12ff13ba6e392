"""Trainer: replica equivalence, EMA, optimizer reset, retracing, non-finite steps, checkpoints,
exact resume, run directories and a short end-to-end run of `python -m progan_tf.train`.

Tiny networks throughout (fmap_base 64, fmap_max 16: 16/16/8 channels at 4/8/16), 16x16
grayscale images, global batch 8 (4 per replica on the two logical CPUs of conftest).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import conftest
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from multiworker_common import BATCH, tiny_config, tiny_images  # noqa: F401 (re-exported)
from progan_tf import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def two_replicas():
    return conftest.two_replicas()


def first_batch(gan, source, resolution, minibatch=BATCH):
    dataset = gan.distribute(lambda ctx: source.dataset(resolution, minibatch, 0, ctx))
    return next(iter(dataset))


def weights(variables):
    return [v.numpy().copy() for v in variables]


def copy_networks(source_gan, target_gan):
    for name in ("generator", "generator_ema", "discriminator"):
        for target, value in zip(getattr(target_gan, name).weights,
                                 getattr(source_gan, name).weights):
            target.assign(value)


# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss, use_labels", [("wgan_gp", False), ("logistic_r1", False),
                                              ("lsgan", True)])
def test_two_replicas_give_the_losses_and_summed_gradients_of_one_device(loss, use_labels):
    cfg = tiny_config(loss=loss, use_labels=use_labels)
    labels = np.eye(4, dtype=np.float32)[np.arange(32) % 4] if use_labels else None
    source = trainer.InMemorySource(tiny_images(), labels)
    label_size = 4 if use_labels else 0
    single = trainer.GanTrainer(cfg, one_device(), 16, 1, label_size, labels)
    mirrored = trainer.GanTrainer(cfg, two_replicas(), 16, 1, label_size, labels)
    assert mirrored.num_replicas == 2
    copy_networks(single, mirrored)
    phase = cfg.schedule(16).at(0.056)  # fading in 16x16: alpha 0.5
    assert (phase.resolution, phase.fade_alpha) == (16, pytest.approx(0.5))
    for gan in (single, mirrored):
        gan.apply_phase(phase)
    grads_1, stats_1 = single.d_gradients(first_batch(single, source, 16), 16, BATCH)
    grads_2, stats_2 = mirrored.d_gradients(first_batch(mirrored, source, 16), 16, BATCH)
    assert set(grads_1) == set(grads_2) and len(grads_1) == 18
    for path, grad in grads_1.items():
        np.testing.assert_allclose(grads_2[path], grad, rtol=1e-5, atol=1e-6, err_msg=path)
    assert ("Loss/label_real" in stats_1) == use_labels
    assert ("Loss/gradient_penalty" in stats_1) == (loss == "wgan_gp")
    assert ("Loss/r1_penalty" in stats_1) == (loss == "logistic_r1")
    for tag, value in stats_1.items():
        np.testing.assert_allclose(stats_2[tag], value, rtol=1e-5, atol=1e-6, err_msg=tag)
    g_grads_1, g_stats_1 = single.g_gradients(16, BATCH)
    g_grads_2, g_stats_2 = mirrored.g_gradients(16, BATCH)
    for path, grad in g_grads_1.items():
        np.testing.assert_allclose(g_grads_2[path], grad, rtol=1e-5, atol=1e-6, err_msg=path)
    np.testing.assert_allclose(g_stats_2["Loss/G"], g_stats_1["Loss/G"], rtol=1e-5)


def test_ema_generator_moves_toward_the_generator_with_each_d_step():
    cfg = tiny_config()
    source = trainer.InMemorySource(tiny_images())
    gan = trainer.GanTrainer(cfg, one_device(), 16, 1)
    gan.apply_phase(cfg.schedule(16).at(0.0))
    for variable in gan.generator_ema.trainable_variables:
        variable.assign(tf.zeros_like(variable))
    live = weights(gan.generator.trainable_variables)
    _, applied = gan.d_step(first_batch(gan, source, 4), 4, BATCH, ema_beta=0.9)
    assert bool(applied)
    # The D step leaves G alone, so Gs = G + 0.9 * (0 - G) = 0.1 * G.
    for ema, value in zip(gan.generator_ema.trainable_variables, live):
        np.testing.assert_allclose(ema.numpy(), 0.1 * value, rtol=1e-6, atol=1e-7)
    assert gan.generator_ema.fade_alpha.numpy() == gan.generator.fade_alpha.numpy()
    assert trainer.ema_beta_for(cfg, 32) == 0.999
    half_life = tiny_config(ema_kimg=10.0)
    assert trainer.ema_beta_for(half_life, 32) == pytest.approx(0.99778, abs=1e-5)


def test_optimizer_state_is_reset_at_lod_changes_but_never_the_learning_rate():
    cfg = tiny_config(lrate_base=0.002)
    source = trainer.InMemorySource(tiny_images())
    gan = trainer.GanTrainer(cfg, one_device(), 16, 1)
    sched = cfg.schedule(16)
    assert gan.apply_phase(sched.at(0.0))  # first phase: counts as a change
    batch = first_batch(gan, source, 4)
    for _ in range(2):
        gan.d_step(batch, 4, BATCH, 0.999)
        gan.g_step(4, BATCH)
    optimizers = (gan.g_optimizer, gan.d_optimizer)
    assert [int(opt.iterations.numpy()) for opt in optimizers] == [2, 2]
    assert not gan.apply_phase(sched.at(0.008))  # still lod 2: state kept
    assert [int(opt.iterations.numpy()) for opt in optimizers] == [2, 2]
    assert gan.apply_phase(sched.at(0.020))  # fade to 8x8 starts: ceil(lod) 2 -> floor 1
    for opt in optimizers:
        assert int(opt.iterations.numpy()) == 0
        assert float(opt.learning_rate.numpy()) == pytest.approx(0.002)
        slots = [v for v in opt.variables if v.name not in ("learning_rate", "iteration")]
        assert slots and all(not np.any(v.numpy()) for v in slots)


def test_each_resolution_is_traced_once_while_alpha_changes():
    cfg = tiny_config()
    source = trainer.InMemorySource(tiny_images())
    gan = trainer.GanTrainer(cfg, one_device(), 16, 1)
    sched = cfg.schedule(16)
    for resolution, kimgs in ((8, (0.020, 0.024, 0.028, 0.036)), (16, (0.052, 0.056, 0.060))):
        batch = first_batch(gan, source, resolution)
        alphas = []
        for kimg in kimgs:
            phase = sched.at(kimg)
            assert phase.resolution == resolution
            gan.apply_phase(phase)
            alphas.append(phase.fade_alpha)
            gan.d_step(batch, resolution, BATCH, 0.999)
            gan.g_step(resolution, BATCH)
        assert len(set(alphas)) > 1
    assert dict(gan.trace_counts) == {("d_step", 8): 1, ("g_step", 8): 1,
                                      ("d_step", 16): 1, ("g_step", 16): 1}


def test_non_finite_batch_skips_the_step_and_leaves_the_weights_unchanged():
    cfg = tiny_config()
    images = tiny_images()
    images[3, 2, 2, 0] = np.nan
    source = trainer.InMemorySource(images)
    gan = trainer.GanTrainer(cfg, two_replicas(), 16, 1)  # NaN only on replica 0's half
    gan.apply_phase(cfg.schedule(16).at(0.0))
    networks = (gan.generator, gan.generator_ema, gan.discriminator)
    before = [weights(n.weights) for n in networks]
    stats, applied = gan.d_step(first_batch(gan, source, 4), 4, BATCH, 0.999)
    assert not bool(applied)
    assert not np.isfinite(stats["Loss/D"].numpy())
    for network, values in zip(networks, before):
        for variable, value in zip(network.weights, values):
            np.testing.assert_array_equal(variable.numpy(), value)
    assert int(gan.d_optimizer.iterations.numpy()) == 0
    assert int(gan.state.d_steps.numpy()) == 1  # the random stream still advances
    _, applied = gan.g_step(4, BATCH)  # the generator step does not see reals
    assert bool(applied)


def test_run_stops_after_max_nonfinite_steps_with_a_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, max_nonfinite_steps=3, total_kimg=1.0)
    images = np.full((16, 16, 16, 1), np.nan, np.float32)
    with pytest.raises(trainer.TrainingError, match=r"3 training steps in a row had non-finite "
                       r"gradients .* The last good state is in .*ckpt-\d+"):
        trainer.train(cfg, source=trainer.InMemorySource(images), log_stream=open(os.devnull, "w"))
    run_dir = os.path.join(tmp_path, "00000-memory")
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints"))
    assert reader.get_tensor("state/skipped_steps/.ATTRIBUTES/VARIABLE_VALUE") == 3
    assert reader.get_tensor("d_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 0


def test_checkpoint_restores_every_variable_of_a_fresh_trainer(tmp_path):
    cfg = tiny_config()
    source = trainer.InMemorySource(tiny_images())
    gan = trainer.GanTrainer(cfg, one_device(), 16, 1)
    gan.apply_phase(cfg.schedule(16).at(0.056))
    gan.d_step(first_batch(gan, source, 16), 16, BATCH, 0.999)
    gan.g_step(16, BATCH)
    gan.state.assign(nimg=1234, data_position=1234)
    path = gan.checkpoint.save(str(tmp_path / "ckpt"))
    keras_seed_changed = tiny_config(seed=7)
    fresh = trainer.GanTrainer(keras_seed_changed, one_device(), 16, 1)
    fresh.checkpoint.restore(path).assert_consumed()
    groups = ("generator", "generator_ema", "discriminator")
    for name in groups:
        for restored, value in zip(getattr(fresh, name).weights, getattr(gan, name).weights):
            np.testing.assert_array_equal(restored.numpy(), value.numpy(), err_msg=value.path)
    for name in ("g_optimizer", "d_optimizer"):
        for restored, value in zip(getattr(fresh, name).variables, getattr(gan, name).variables):
            np.testing.assert_array_equal(restored.numpy(), value.numpy())
    assert fresh.state.values() == gan.state.values()
    assert int(fresh.d_optimizer.iterations.numpy()) == 1


_RESUME_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    sys.path.insert(0, {tests!r})
    from test_trainer import tiny_config, tiny_images
    from progan_tf import trainer

    out = sys.argv[1]
    quiet = open(os.devnull, "w")
    # 6 steps of 8 images: 4x4 for 2 steps, fade to 8x8 for 2, then 8x8; stop after 3.
    common = dict(lod_training_kimg=0.016, lod_transition_kimg=0.016, tick_kimg_base=0.008)
    def run(results, total_kimg, resume=""):
        cfg = tiny_config(os.path.join(out, results), total_kimg=total_kimg, resume=resume,
                          **common)
        return trainer.train(cfg, source=trainer.InMemorySource(tiny_images(resolution=8)),
                             log_stream=quiet)
    whole = run("whole", 0.048)
    part = run("split", 0.024)
    resumed = run("split", 0.048, resume=part.run_dir)
    assert resumed.run_dir == part.run_dir
    result = {{}}
    for name, run_dir in (("whole", whole.run_dir), ("split", resumed.run_dir)):
        reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints"))
        result[name] = {{key: reader.get_tensor(key).tolist()
                         for key in reader.get_variable_to_shape_map()
                         if key.endswith("VARIABLE_VALUE") and "save_counter" not in key}}
    log = open(os.path.join(resumed.run_dir, "log.txt")).read().splitlines()
    result["split_log"] = log
    json.dump(result, open(os.path.join(out, "result.json"), "w"))
""")


def test_resume_continues_exactly_where_training_stopped(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(_RESUME_SCRIPT.format(tests=os.path.join(REPO, "tests")))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    whole, split = result["whole"], result["split"]
    # The second call continued the first (ticks 4-6 after 1-3), it did not start over.
    ticks = [int(line.split()[1]) for line in result["split_log"] if line.startswith("tick ")]
    assert ticks == [1, 2, 3, 4, 5, 6]
    assert any(line.startswith("Resuming") for line in result["split_log"])
    assert set(whole) == set(split)
    state = "state/{}/.ATTRIBUTES/VARIABLE_VALUE"
    for name in ("nimg", "data_position", "d_steps", "g_steps", "prev_lod", "tick"):
        assert split[state.format(name)] == whole[state.format(name)], name
    assert whole[state.format("nimg")] == 48 and whole[state.format("prev_lod")] == 0.0
    networks = [key for key in whole if key.split("/")[0] in (
        "generator", "generator_ema", "discriminator", "g_optimizer", "d_optimizer")]
    assert len(networks) > 60
    for key in networks:
        np.testing.assert_allclose(split[key], whole[key], rtol=0, atol=1e-6, err_msg=key)


def test_bad_data_and_batches_fail_before_any_run_directory_exists(tmp_path):
    source = trainer.InMemorySource(tiny_images())
    quiet = open(os.devnull, "w")
    cases = [
        (tiny_config(tmp_path, resolution=32), None,
         r"--resolution: 32 does not match the dataset memory \(16x16\)"),
        (tiny_config(tmp_path, use_labels=True), None, r"--use_labels: the dataset .* no labels"),
        (tiny_config(tmp_path, minibatch_base=7, strategy="mirrored"), two_replicas(),
         r"the minibatch 7 at resolution 4 is not divisible by the 2 replicas"),
        (tiny_config(tmp_path, data_dir=str(tmp_path / "missing")), None,
         r"--data_dir: .*missing is not a directory"),
    ]
    for cfg, strategy, message in cases:
        with pytest.raises(trainer.TrainingError, match=message):
            trainer.train(cfg, source=None if "missing" in cfg.data_dir else source,
                          strategy=strategy, log_stream=quiet)
    assert os.listdir(tmp_path) == []


def test_resume_auto_picks_the_newest_unfinished_run_with_the_same_desc(tmp_path):
    def make_run(name, checkpoint=True, done=False):
        run_dir = tmp_path / name
        os.makedirs(run_dir / "checkpoints")
        if checkpoint:
            tf.train.Checkpoint(v=tf.Variable(1.0)).save(str(run_dir / "checkpoints" / "ckpt"))
        if done:
            (run_dir / trainer.DONE_FILE).write_text("")
        return str(run_dir)

    make_run("00000-faces")
    newest_unfinished = make_run("00001-faces")
    make_run("00002-faces", done=True)
    make_run("00003-faces", checkpoint=False)
    make_run("00004-cars")
    assert trainer.find_resumable_run(str(tmp_path), "faces") == newest_unfinished
    assert trainer.find_resumable_run(str(tmp_path), "dogs") is None
    assert trainer.create_run_dir(str(tmp_path), "faces").endswith("00005-faces")
    with pytest.raises(trainer.TrainingError, match="has no checkpoint"):
        trainer.resolve_resume(tiny_config(tmp_path, resume=str(tmp_path / "00003-faces")))


# ------------------------------------------------------------------------------------------------
# End to end through the command line, on a pyramid written by data_tools.


def write_pyramid(path, images_nhwc, labels=None):
    from data_tools.pyramid import PyramidWriter
    images = np.clip(np.rint((images_nhwc + 1) * 127.5), 0, 255).astype(np.uint8)
    writer = PyramidWriter(str(path))
    writer.add(images.transpose(0, 3, 1, 2))
    if labels is not None:
        writer.set_labels(labels)
    writer.commit()
    return str(path)


def read_tensorboard(run_dir):
    events = event_accumulator.EventAccumulator(
        run_dir, size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    return events


def test_command_line_run_stops_on_sigint_resumes_and_exports(tmp_path):
    data_dir = write_pyramid(tmp_path / "blobs-16", tiny_images(64))
    results = tmp_path / "results"
    command = [sys.executable, "-m", "progan_tf.train", f"--data_dir={data_dir}",
               f"--results_dir={results}", "--fmap_base=64", "--fmap_max=16",
               "--minibatch_base=8", "--minibatch_dict=", "--minibatch_repeats=1",
               "--lod_training_kimg=0.016", "--lod_transition_kimg=0.016",
               "--tick_kimg_base=0.016", "--tick_kimg_dict=", "--grid_size=4x2",
               "--strategy=one_device", "--resume=auto"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(command + ["--total_kimg=100"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log_path = results / "00000-blobs-16" / "log.txt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log_path.exists() and "tick 2 " in log_path.read_text():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "Stopped at kimg" in stdout and "--resume=" in stdout

    finished = subprocess.run(command + ["--total_kimg=0.16", "--metrics=swd",
                                         "--metrics_num=64"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr[-3000:]
    run_dir = str(results / "00000-blobs-16")
    assert sorted(os.listdir(results)) == ["00000-blobs-16"]  # resumed in place
    log = open(os.path.join(run_dir, "log.txt")).read()
    assert "Resuming" in log and "Training done" in log
    assert "tick 1     kimg 0.0      lod 2.00  resolution 4    minibatch 8" in log
    for name in ("flags.json", "network.json", "reals.png", "fakes000000.png",
                 trainer.DONE_FILE):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert json.load(open(os.path.join(run_dir, "flags.json")))["fmap_base"] == 64
    network = json.load(open(os.path.join(run_dir, "network.json")))
    assert network["architecture"] == "progan"
    assert network["generator"]["resolution"] == 16 and network["discriminator"]["fmap_max"] == 16

    tags = set(read_tensorboard(run_dir).Tags()["tensors"])
    expected = {"Loss/G", "Loss/D", "Loss/gradient_penalty", "Loss/drift", "Score/real",
                "Score/fake", "Progress/lod", "Progress/resolution", "Progress/alpha",
                "Progress/kimg", "Train/lr_G", "Train/lr_D", "Timing/sec_per_kimg",
                "Timing/img_per_sec", "Train/skipped_steps", "Samples/fakes", "Samples/reals"}
    assert expected <= tags, expected - tags
    assert any(tag.startswith("Metrics/SWDx1e3") for tag in tags), tags
    metrics = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert metrics[-1]["metric"] == "swd" and metrics[-1]["kimg"] == 0.16

    export_dir = os.path.join(run_dir, "export", "generator", "1")
    loaded = tf.saved_model.load(export_dir)
    latents = tf.random.stateless_normal([3, 16], seed=[1, 2])
    images = loaded.signatures["serving_default"](latents=latents)
    images = next(iter(images.values()))
    assert images.shape[0] == 3 and images.shape[1:3] == (16, 16)
