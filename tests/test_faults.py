"""Faults and bad input: kill -9 (also inside a checkpoint save) then --resume=auto, a checkpoint
that cannot be written, datasets whose level files disagree, a corrupt record met mid-training,
fuzzed TFRecord and image files, NaN in a batch, and no pickle loading anywhere.

Tiny networks (fmap_base 64, fmap_max 16), 16x16 grayscale data, global batch 8.
"""

import errno
import faulthandler
import io
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from data_tools import records
from data_tools.errors import DataError
from data_tools.sources import images as image_source
from progan_tf import data
from progan_tf.training import loop
from progan_tf.training.sources import InMemorySource
from progan_tf.training.state import read_state
from progan_tf.training.steps import GanTrainer
from tests.training_common import REPO, one_device, tiny_config, tiny_images, write_pyramid

DEVNULL = open(os.devnull, "w")  # noqa: SIM115


def cli(data_dir, results, *extra):
    return [sys.executable, "-m", "progan_tf.train", f"--data_dir={data_dir}",
            f"--results_dir={results}", "--fmap_base=64", "--fmap_max=16", "--minibatch_base=8",
            "--minibatch_dict=", "--minibatch_repeats=1", "--lod_training_kimg=0.016",
            "--lod_transition_kimg=0.016", "--tick_kimg_base=0.016", "--tick_kimg_dict=",
            "--grid_size=4x2", "--strategy=one_device", "--resume=auto", "--export=false",
            "--desc=blobs", *extra]


def run_until_killed(command, ready, env=None, limit=120):
    """Starts `command`, SIGKILLs it as soon as ready() is true; returns its stderr."""
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.1)
    proc.kill()
    return proc.communicate(timeout=30)[1]


def checkpoint_state(run_dir):
    return read_state(os.path.join(run_dir, "checkpoints"))


def assert_consistent(state, nimg):
    """Batch 8, one D and one G step per iteration, 16 images per tick, 8x8 from 16 images on."""
    assert state["nimg"] == nimg and state["data_position"] == nimg
    assert state["d_steps"] == state["g_steps"] == nimg // 8
    assert state["tick"] == nimg // 16


def assert_no_partial_files(run_dir):
    for root, _, names in os.walk(run_dir):
        for name in names:
            assert not re.search(r"\.tmp|_temp", name), os.path.join(root, name)
            if name.endswith(".png"):
                tf.io.decode_png(tf.io.read_file(os.path.join(root, name)))  # complete PNGs


# Run as the training process: the third checkpoint save writes its data files and is then
# killed before the checkpoint is committed (the state file names the last complete one).
KILL_IN_SAVE = """
import os, signal, sys
from progan_tf.training import run_dir
original = run_dir.Checkpoints.save
calls = []
def save(self):
    calls.append(1)
    if len(calls) == 3:
        self.checkpoint.write(os.path.join(self.directory, "ckpt-3"))
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self)
run_dir.Checkpoints.save = save
from progan_tf import train
sys.argv = ["progan_tf.train"] + sys.argv[1:]
train.run()
"""


def test_kill_9_in_training_and_in_a_checkpoint_save_then_resume_auto_is_exact(tmp_path):
    data_dir = write_pyramid(tmp_path / "blobs-16", tiny_images(64))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # 1. Killed inside the third checkpoint save.
    results = tmp_path / "a"
    command = cli(data_dir, results, "--total_kimg=100")
    proc = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, *command[3:]], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=150)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    run_dir = str(results / "00000-blobs")
    assert tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")).endswith("ckpt-2")
    assert_consistent(checkpoint_state(run_dir), 32)
    assert_no_partial_files(run_dir)
    finished = subprocess.run(command[:-1] + ["--total_kimg=0.064"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=150)
    assert finished.returncode == 0, finished.stderr[-3000:]
    log = open(os.path.join(run_dir, "log.txt")).read()
    assert "from ckpt-2 at kimg 0.0" in log and "Training done at kimg 0.1" in log
    state = checkpoint_state(run_dir)
    assert_consistent(state, 64)
    # The lod of the last iteration (at 56 images) as the schedule gives it without a stop.
    assert state["prev_lod"] == tiny_config().build_schedule(16).at(0.056).lod == 0.5
    assert_no_partial_files(run_dir)

    # 2. Killed at a random point of training (SIGKILL, nothing can run on the way out).
    results = tmp_path / "b"
    command = cli(data_dir, results, "--total_kimg=100")
    ckpt_index = results / "00000-blobs" / "checkpoints" / "checkpoint"
    stderr = run_until_killed(command, lambda: ckpt_index.exists()
                              and "ckpt-3" in ckpt_index.read_text(), env=env)
    run_dir = str(results / "00000-blobs")
    saved = checkpoint_state(run_dir)
    assert saved["nimg"] >= 48, stderr[-3000:]
    assert_consistent(saved, saved["nimg"])
    assert_no_partial_files(run_dir)
    finished = subprocess.run(command[:-1] + [f"--total_kimg={(saved['nimg'] + 32) / 1000}"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=150)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert_consistent(checkpoint_state(run_dir), saved["nimg"] + 32)
    assert sorted(os.listdir(results)) == ["00000-blobs"]


def test_checkpoint_that_cannot_be_written_stops_clearly_and_keeps_the_last_good_one(
        tmp_path, monkeypatch):
    original = tf.train.CheckpointManager.save
    calls = []

    def disk_full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", self.directory)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", disk_full)
    cfg = tiny_config(tmp_path)
    with pytest.raises(loop.TrainingError, match=r"cannot write a checkpoint to \S+checkpoints "
                       r"\(disk full or not writable\?\).*No space left on device.*"
                       r"the last complete checkpoint \S+ckpt-1 is intact"):
        loop.train(cfg, source=InMemorySource(tiny_images()), log_stream=DEVNULL)
    run_dir = os.path.join(tmp_path, "00000-memory")
    assert_consistent(checkpoint_state(run_dir), 16)


def test_unwritable_results_dir_is_a_clear_command_line_error(tmp_path):
    data_dir = write_pyramid(tmp_path / "blobs-16", tiny_images(16))
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results directory should be")
    proc = subprocess.run(cli(data_dir, blocker, "--total_kimg=0.016"), cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("progan_tf.train")]
    assert len(lines) == 1 and str(blocker) in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_level_files_that_disagree_stop_before_training(tmp_path):
    data_dir = write_pyramid(tmp_path / "blobs-16", tiny_images(8))
    path = os.path.join(data_dir, "blobs-16-r02.tfrecords")
    index = records.scan_record_index(path)
    with open(path, "r+b") as file:
        file.truncate(int(index.offsets[5]))  # 5 records at 4x4, 8 at the other levels
    cfg = tiny_config(tmp_path, data_dir=data_dir)
    with pytest.raises(loop.TrainingError, match=r"blobs-16-r02\.tfrecords: 5 records, but"):
        loop.train(cfg, log_stream=DEVNULL)
    assert not os.path.exists(os.path.join(tmp_path, "00000-blobs-16"))


def test_corrupt_record_met_mid_training_names_file_and_record_and_saves_a_checkpoint(tmp_path):
    data_dir = write_pyramid(tmp_path / "blobs-16", tiny_images(64))
    path = os.path.join(data_dir, "blobs-16-r02.tfrecords")
    index = records.scan_record_index(path)
    content = bytearray(open(path, "rb").read())
    content[int(index.offsets[40]) + 30] ^= 0x10  # a pixel of record 40: its CRC fails
    open(path, "wb").write(bytes(content))
    cfg = tiny_config(tmp_path, data_dir=data_dir, lod_training_kimg=1.0, total_kimg=0.128)
    with pytest.raises(loop.TrainingError) as caught:
        loop.train(cfg, log_stream=DEVNULL)
    message = str(caught.value)
    assert f"bad training data: {path}: record 40 at byte offset {index.offsets[40]} cannot be " \
           f"read" in message, message
    assert re.search(r"with checkpoint \S+ckpt-\d+", message), message
    run_dir = os.path.join(tmp_path, "00000-blobs-16")
    state = checkpoint_state(run_dir)
    assert 0 < state["nimg"] < 128 and state["nimg"] % 8 == 0
    assert state["data_position"] == state["nimg"] == 8 * state["d_steps"]


def test_nan_in_a_batch_skips_that_step_and_training_goes_on(tmp_path):
    images = tiny_images(32)
    images[5, 3, 3, 0] = np.nan
    cfg = tiny_config(tmp_path)
    result = loop.train(cfg, source=InMemorySource(images), log_stream=DEVNULL)
    assert result.status == "done" and result.kimg == pytest.approx(0.064)
    skipped = read_state(os.path.join(result.run_dir, "checkpoints"))["skipped_steps"]
    gan = GanTrainer(cfg, one_device(), 16, 1)
    gan.checkpoint.restore(tf.train.latest_checkpoint(os.path.join(result.run_dir, "checkpoints")))
    applied = int(gan.d_optimizer.iterations.numpy())
    assert skipped >= 1 and applied >= 1 and skipped + applied <= 8 + 8


# --- fuzzing ---------------------------------------------------------------------------------


@pytest.fixture
def hang_guard():
    """Ends the test process with a traceback if a case hangs (no pytest-timeout here)."""
    faulthandler.dump_traceback_later(240, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def damaged_variants(content, rng, count):
    """Truncations at random points, random bytes, and random byte flips of `content`."""
    cases = [b"", bytes(rng.integers(0, 256, 11, dtype=np.uint8))]
    for _ in range(count):
        kind = rng.integers(3)
        if kind == 0:
            cases.append(content[:rng.integers(1, len(content))])
        elif kind == 1:
            cases.append(bytes(rng.integers(0, 256, rng.integers(1, 2 * len(content)),
                                            dtype=np.uint8)))
        else:
            flipped = bytearray(content)
            for _ in range(rng.integers(1, 4)):
                flipped[rng.integers(len(flipped))] ^= 1 << int(rng.integers(8))
            cases.append(bytes(flipped))
    return cases


def test_fuzzed_tfrecord_files_end_in_our_error(tmp_path, hang_guard):
    rng = np.random.default_rng(0)
    source = write_pyramid(tmp_path / "good", tiny_images(4))
    level = "good-r02.tfrecords"
    content = open(os.path.join(source, level), "rb").read()
    outcomes = {"error": 0, "read": 0}
    for case, damaged in enumerate(damaged_variants(content, rng, 200)):
        path = tmp_path / f"case-{case}.tfrecords"
        path.write_bytes(damaged)
        try:
            index = records.scan_record_index(path)
            for _, payload in records.iter_payloads(path, index):
                try:
                    records.decode_image(payload)
                except ValueError as error:  # decode_image's documented error
                    assert str(error)
                    outcomes["error"] += 1
                    break
            else:
                outcomes["read"] += 1  # a flip in padding-free data may still be a valid file
        except DataError as error:
            assert str(path) in str(error), error
            outcomes["error"] += 1
    assert outcomes["error"] > 150, outcomes


def test_fuzzed_level_file_in_the_training_pipeline_ends_in_our_error(tmp_path, hang_guard):
    rng = np.random.default_rng(1)
    source = write_pyramid(tmp_path / "good", tiny_images(8))
    names = os.listdir(source)
    content = open(os.path.join(source, "good-r02.tfrecords"), "rb").read()
    cases = damaged_variants(content, rng, 10)
    raised = intact = 0
    for case, damaged in enumerate(cases):
        if damaged == content:  # flips that cancel out give back the valid file
            intact += 1
            continue
        directory = tmp_path / f"case-{case}"
        directory.mkdir()
        for name in names:
            (directory / name).write_bytes(open(os.path.join(source, name), "rb").read())
        path = directory / "good-r02.tfrecords"
        path.write_bytes(damaged)
        try:
            pyramid = data.open_pyramid(str(directory))
            list(data.make_dataset(pyramid, 4, global_batch_size=8, seed=0, repeat=False))
        except DataError as error:
            assert str(path) in str(error), error
            raised += 1
        except tf.errors.InvalidArgumentError as error:
            assert loop.bad_record(error), error.message
            assert str(path) in loop.bad_record(error)
            raised += 1
        else:
            pytest.fail(f"case {case}: the damaged {path.name} ({len(damaged)} of {len(content)} bytes) "
                        "was read without an error")
    assert raised == len(cases) - intact and raised >= 10, (raised, intact, len(cases))


def test_fuzzed_image_files_end_in_our_error(tmp_path, hang_guard):
    import PIL.Image
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG", "BMP"):
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels).save(buffer, format=fmt)
        read = failed = 0
        for case, damaged in enumerate(damaged_variants(buffer.getvalue(), rng, 60)):
            path = tmp_path / f"case-{case}.{fmt.lower()}"
            path.write_bytes(damaged)
            try:
                image = image_source.load_image(str(path), 3)
                assert image.shape == (3, 16, 16) and image.dtype == np.uint8
                read += 1
            except DataError as error:
                assert str(path) in str(error), error
                failed += 1
        assert failed > 20, (fmt, read, failed)


# --- pickle ----------------------------------------------------------------------------------


def project_sources():
    for top in ("progan_tf", "data_tools", "exports", "bench", "tests", "docs"):
        for root, _, names in os.walk(os.path.join(REPO, top)):
            for name in names:
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(root, name), REPO)


def test_nothing_loads_pickle_and_np_load_refuses_pickles():
    # The two readers of pickled files rebuild arrays and containers only (README, Security).
    allowed_pickle = {"progan_tf/utils/safe_pickle.py"}
    this_file = os.path.relpath(__file__, REPO)
    for path in project_sources():
        if path == this_file:
            continue
        text = open(os.path.join(REPO, path), encoding="utf-8").read()
        assert not re.search(r"load\([^()]*allow_pickle=True", text), path
        if path.startswith("tests/"):
            continue  # tests write pickles to check that they are refused; np.load's default
            # there (allow_pickle=False since NumPy 1.16.3) reads only the arrays they wrote
        for call in re.finditer(r"np\.load\(([^()]*(\([^()]*\))?[^()]*)\)", text):
            assert "allow_pickle=False" in call.group(1), (path, call.group(0))
        assert "allow_pickle=True" not in text, path
        assert not re.search(r"\b(cPickle|dill|joblib|shelve|torch\.load|pd\.read_pickle)\b",
                             text), path
        if path not in allowed_pickle:
            assert not re.search(r"^\s*(import pickle|from pickle )", text, re.M), path
