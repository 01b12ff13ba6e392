"""The training loop: stops (non-finite steps, bad flags or data, SIGINT), exact resume, a run
directory made before progan_tf/training/ existed, a short end-to-end run of
`python -m progan_tf.train`, and the run directory's lock (a second run refused, in this process
and from another one; a warning where the file system has no locks). Tiny networks and data of
tests/training_common.py."""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import conftest
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from progan_tf.training import loop
from progan_tf.training import run_dir as run_dir_lib
from progan_tf.training.snapshots import Renderer
from progan_tf.training.sources import InMemorySource
from progan_tf.training.state import read_state
from progan_tf.training.steps import GanTrainer
from progan_tf.utils.images import image_grid, to_uint8, upscale_nearest
from training_common import REPO, one_device, read_tensorboard, tiny_config, tiny_images, \
    write_pyramid

DEVNULL = open(os.devnull, "w")  # noqa: SIM115
OLD_RUNS = os.path.join(REPO, "tests", "fixtures", "old_run")


@pytest.mark.parametrize("minibatch_repeats", [1, 4])
def test_run_stops_after_max_nonfinite_steps_with_a_checkpoint(tmp_path, minibatch_repeats):
    # minibatch_repeats 4: the third skipped step ends the call of four steps.
    cfg = tiny_config(tmp_path, max_nonfinite_steps=3, total_kimg=1.0,
                      minibatch_repeats=minibatch_repeats)
    images = np.full((16, 16, 16, 1), np.nan, np.float32)
    with pytest.raises(loop.TrainingError, match=r"3 training steps in a row had non-finite "
                       r"gradients .* The last good state is in .*ckpt-\d+"):
        loop.train(cfg, source=InMemorySource(images), log_stream=DEVNULL)
    run_dir = os.path.join(tmp_path, "00000-memory")
    state = read_state(os.path.join(run_dir, "checkpoints"))
    assert (state["skipped_steps"], state["d_steps"], state["nimg"]) == (3, 3, 24)
    gan = GanTrainer(cfg, one_device(), 16, 1)
    gan.checkpoint.restore(tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")))
    assert int(gan.d_optimizer.iterations.numpy()) == 0


def checkpoint_values(cfg, run_dir):
    """{name: value} of every variable in the newest checkpoint of `run_dir` (the state's
    wall-clock seconds aside)."""
    gan = GanTrainer(cfg, one_device(), 16, 1)
    gan.checkpoint.restore(tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
                           ).assert_consumed()
    return {f"{index}:{getattr(v, 'path', v.name)}": v.numpy()
            for index, v in enumerate(gan.checkpoint_variables())
            if "train_seconds" not in v.name}


def test_steps_per_call_changes_nothing_but_the_calls(tmp_path):
    # Three iterations of 4 minibatches (4x4, then fading in 8x8; one tick each) with one
    # minibatch per call and with all four in one call.
    runs = {}
    for steps_per_call in (1, 0):
        cfg = tiny_config(tmp_path / str(steps_per_call), minibatch_repeats=4,
                          steps_per_call=steps_per_call, total_kimg=0.096,
                          lod_training_kimg=0.032, lod_transition_kimg=0.064,
                          tick_kimg_base=0.032)
        result = loop.train(cfg, source=InMemorySource(tiny_images()), log_stream=DEVNULL)
        events = read_tensorboard(result.run_dir)
        runs[steps_per_call] = (checkpoint_values(cfg, result.run_dir),
                                [float(tf.make_ndarray(e.tensor_proto))
                                 for e in events.Tensors("Loss/D")])
    (values, losses), (fused_values, fused_losses) = runs[1], runs[0]
    assert len(losses) == 3 and len(values) > 60 and set(fused_values) == set(values)
    for key, value in values.items():
        np.testing.assert_allclose(fused_values[key], value, rtol=0, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(fused_losses, losses, rtol=1e-6)


_RESUME_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    sys.path.insert(0, {tests!r})
    from training_common import tiny_config, tiny_images
    from progan_tf.training import loop
    from progan_tf.training.sources import InMemorySource
    from progan_tf.training.steps import GanTrainer

    out = sys.argv[1]
    quiet = open(os.devnull, "w")
    # 6 steps of 8 images: 4x4 for 2 steps, fade to 8x8 for 2, then 8x8; stop after 3.
    common = dict(lod_training_kimg=0.016, lod_transition_kimg=0.016, tick_kimg_base=0.008)
    def run(results, total_kimg, resume=""):
        cfg = tiny_config(os.path.join(out, results), total_kimg=total_kimg, resume=resume,
                          **common)
        return loop.train(cfg, source=InMemorySource(tiny_images(resolution=8)),
                          log_stream=quiet)
    whole = run("whole", 0.048)
    part = run("split", 0.024)
    resumed = run("split", 0.048, resume=part.run_dir)
    assert resumed.run_dir == part.run_dir
    result = {{}}
    for name, run_dir in (("whole", whole.run_dir), ("split", resumed.run_dir)):
        gan = GanTrainer(tiny_config(**common), tf.distribute.OneDeviceStrategy("/cpu:0"), 8, 1)
        path = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
        gan.checkpoint.restore(path).assert_consumed()
        result[name] = {{"state": gan.state.values(), "variables": {{
            f"{{index}}:{{getattr(v, 'path', v.name)}}": v.numpy().tolist()
            for index, v in enumerate(gan.checkpoint_variables())}}}}
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
    for name in ("nimg", "data_position", "d_steps", "g_steps", "prev_lod", "tick"):
        assert split["state"][name] == whole["state"][name], name
    assert whole["state"]["nimg"] == 48 and whole["state"]["prev_lod"] == 0.0
    # Networks and optimizers (the state's wall-clock seconds aside) are the same.
    variables = [key for key in whole["variables"] if "train_seconds" not in key]
    assert len(variables) > 60 and set(whole["variables"]) == set(split["variables"])
    for key in variables:
        np.testing.assert_allclose(split["variables"][key], whole["variables"][key], rtol=0,
                                   atol=1e-6, err_msg=key)


def test_bad_data_and_batches_fail_before_any_run_directory_exists(tmp_path):
    source = InMemorySource(tiny_images())
    cases = [
        (tiny_config(tmp_path, resolution=32), None,
         r"--resolution: 32 does not match the dataset memory \(16x16\)"),
        (tiny_config(tmp_path, use_labels=True), None, r"--use_labels: the dataset .* no labels"),
        (tiny_config(tmp_path, minibatch_base=7, strategy="mirrored"), conftest.two_replicas(),
         r"the minibatch 7 at resolution 4 is not divisible by the 2 replicas"),
        (tiny_config(tmp_path, data_dir=str(tmp_path / "missing")), None,
         r"--data_dir: .*missing is not a directory"),
    ]
    for cfg, strategy, message in cases:
        with pytest.raises(loop.TrainingError, match=message):
            loop.train(cfg, source=None if "missing" in cfg.data_dir else source,
                       strategy=strategy, log_stream=DEVNULL)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# A run directory of the previous trainer (progan_tf/trainer.py, commit e76a6d3).


def _old_run_config(results_dir, desc, total_kimg):
    """tests/fixtures/old_run/make_old_run.py's config of run `desc`."""
    sys.path.insert(0, OLD_RUNS)
    try:
        import make_old_run
    finally:
        sys.path.remove(OLD_RUNS)
    cfg = make_old_run.run_config(desc, total_kimg=total_kimg)
    return cfg.replace(results_dir=str(results_dir), resume="auto"), make_old_run.images()


@pytest.mark.parametrize("desc", ["progan", "stylegan"])
def test_a_run_directory_of_the_previous_trainer_resumes(tmp_path, desc):
    results = tmp_path / "results"
    shutil.copytree(OLD_RUNS, results, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    run_dir = str(next(results.glob(f"*-{desc}")))
    checkpoints = os.path.join(run_dir, "checkpoints")
    old = read_state(checkpoints)
    assert (old["nimg"], old["tick"], old["prev_lod"]) == (24, 3, 1.0)
    cfg, images = _old_run_config(results, desc, total_kimg=0.040)

    # Every network, optimizer and counter of today's trainer is in the old checkpoint, and
    # the restored EMA generator draws the old trainer's last grid (4x4, shown at 8x8).
    gan = GanTrainer(cfg, one_device(), 8, 1)
    gan.checkpoint.restore(tf.train.latest_checkpoint(checkpoints)
                           ).assert_existing_objects_matched()
    assert gan.state.values() == old
    latents = np.random.default_rng(cfg.seed).standard_normal((4, gan.latent_size))
    fakes = Renderer(gan.generator_ema, 0)(latents.astype(np.float32), None, 4)
    grid = image_grid(to_uint8(upscale_nearest(fakes, 8)), (2, 2))[..., 0]
    old_grid = np.asarray(PIL.Image.open(os.path.join(run_dir, "fakes000000.png")))
    assert np.abs(grid.astype(int) - old_grid).max() <= 1

    result = loop.train(cfg, source=InMemorySource(images), log_stream=DEVNULL)
    assert result.status == "done" and result.run_dir == run_dir
    log = open(os.path.join(run_dir, "log.txt")).read()
    assert f"Resuming {run_dir} from ckpt-3 at kimg 0.0" in log
    ticks = [int(line.split()[1]) for line in log.splitlines() if line.startswith("tick ")]
    assert ticks == [1, 2, 3, 4, 5]
    new = read_state(checkpoints)
    assert (new["nimg"], new["data_position"], new["d_steps"], new["tick"]) == (40, 40, 5, 5)
    assert new["prev_lod"] == 0.0 and new["train_seconds"] > old["train_seconds"]
    assert os.path.exists(os.path.join(run_dir, run_dir_lib.DONE_FILE))


# ------------------------------------------------------------------------------------------------
# End to end through the command line, on a pyramid written by data_tools.


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
                 run_dir_lib.DONE_FILE):
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


# ------------------------------------------------------------------------------------------------
# The run directory's lock (progan_tf/utils/run_lock.py): one run at a time writes a directory.


def tree_snapshot(path):
    """{relative path: (bytes, mtime_ns)} of every file under `path`."""
    snapshot = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as file:
                snapshot[os.path.relpath(full, path)] = (file.read(), os.stat(full).st_mtime_ns)
    return snapshot


def test_a_locked_run_directory_is_refused_and_the_lock_ends_with_each_train_call(tmp_path):
    from progan_tf.utils import run_lock
    host = socket.gethostname()
    images = tiny_images(16, resolution=4)
    cfg = tiny_config(tmp_path, max_nonfinite_steps=2, total_kimg=0.064)
    with pytest.raises(loop.TrainingError, match="non-finite"):
        loop.train(cfg, source=InMemorySource(np.full_like(images, np.nan)), log_stream=DEVNULL)
    run_dir = str(tmp_path / "00000-memory")
    run_lock.acquire(run_dir).release()  # released although train() failed

    held = run_lock.acquire(run_dir)  # as another run would hold it
    try:
        before = tree_snapshot(tmp_path)
        for resume in (run_dir, "auto"):  # auto: the newest unfinished run is this one
            with pytest.raises(loop.TrainingError) as refused:
                loop.train(cfg.replace(resume=resume), source=InMemorySource(images),
                           log_stream=DEVNULL)
            assert str(refused.value) == (
                f"{run_dir} is in use by another training run: this process (pid {os.getpid()} "
                f"on host {host}, through an earlier lock) holds its lock _run.lock; stopped "
                f"without writing anything. Wait for that run to end (or stop it) and try again")
        assert tree_snapshot(tmp_path) == before  # nothing written, no other run started
    finally:
        held.release()

    result = loop.train(cfg.replace(resume="auto", total_kimg=0.032),
                        source=InMemorySource(images), log_stream=DEVNULL)
    assert result.status == "done" and result.run_dir == run_dir
    assert sorted(os.listdir(tmp_path)) == ["00000-memory"]
    assert read_state(os.path.join(run_dir, "checkpoints"))["nimg"] == 32
    run_lock.acquire(run_dir).release()  # released at the end


def test_a_run_directory_on_a_file_system_without_locks_trains_after_a_warning(
        tmp_path, monkeypatch):
    import fcntl

    def unsupported(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", unsupported)
    result = loop.train(tiny_config(tmp_path, total_kimg=0.016),
                        source=InMemorySource(tiny_images(16, resolution=4)), log_stream=DEVNULL)
    assert result.status == "done"
    lock_file = os.path.join(result.run_dir, "_run.lock")
    warning = (f"Warning: cannot lock {lock_file} ({os.strerror(errno.ENOLCK)}): this file "
               f"system does not support file locks, so nothing stops a second run from writing "
               f"{result.run_dir} at the same time")
    log = open(os.path.join(result.run_dir, "log.txt")).read().splitlines()
    assert log[0] == warning and log[1].startswith("Saving results to")


def test_a_second_process_on_a_training_run_directory_stops_and_leaves_it_untouched(tmp_path):
    data_dir = write_pyramid(tmp_path / "blobs-4", tiny_images(32, resolution=4))
    results = tmp_path / "results"
    command = [sys.executable, "-m", "progan_tf.train", f"--data_dir={data_dir}",
               f"--results_dir={results}", "--fmap_base=64", "--fmap_max=16",
               "--minibatch_base=8", "--minibatch_dict=", "--minibatch_repeats=1",
               "--tick_kimg_base=0.016", "--tick_kimg_dict=", "--grid_size=2x2",
               "--strategy=one_device", "--export=false", "--resume=auto"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run_dir = results / "00000-blobs-4"
    first = subprocess.Popen(command + ["--total_kimg=100"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and first.poll() is None:
            if (run_dir / "checkpoints" / "checkpoint").exists():
                break
            time.sleep(0.2)
        assert (run_dir / "checkpoints" / "checkpoint").exists(), first.communicate()[1][-3000:]
        first.send_signal(signal.SIGSTOP)  # frozen, so that any write by the second shows
        before = tree_snapshot(results)
        start = time.time()
        second = subprocess.run(command + ["--total_kimg=100"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=120)
        seconds = time.time() - start
        assert second.returncode == 1, second.stderr[-3000:]
        assert second.stderr.strip().splitlines()[-1] == (
            f"progan_tf.train: error: {run_dir} is in use by another training run: pid "
            f"{first.pid} on host {socket.gethostname()} holds its lock _run.lock; stopped "
            f"without writing anything. Wait for that run to end (or stop it) and try again")
        assert "Traceback" not in second.stderr
        assert tree_snapshot(results) == before
        print(f"second run refused after {seconds:.1f} s")
        first.send_signal(signal.SIGCONT)
        time.sleep(1.0)  # trains on
        first.send_signal(signal.SIGINT)
        stdout, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "Stopped at kimg" in stdout
    log = (run_dir / "log.txt").read_text()
    assert "Resuming" not in log and log.count("Saving results to") == 1
    ticks = [int(line.split()[1]) for line in log.splitlines() if line.startswith("tick ")]
    assert ticks == list(range(1, len(ticks) + 1))
    assert sorted(os.listdir(results)) == ["00000-blobs-4"]
