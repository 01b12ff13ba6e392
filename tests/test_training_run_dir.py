"""The run directory: numbering, --resume discovery, network.json checks, checkpoint writing,
and the fallback past checkpoints that do not load."""

import errno
import io
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from progan_tf.training import loop
from progan_tf.training import run_dir as run_dir_lib
from progan_tf.training.sources import InMemorySource
from progan_tf.training.steps import GanTrainer
from training_common import one_device, tiny_config, tiny_images, tree_bytes, weights


def make_run(root, name, checkpoint=True, done=False):
    run_dir = root / name
    os.makedirs(run_dir / run_dir_lib.CHECKPOINT_DIR)
    if checkpoint:
        tf.train.Checkpoint(v=tf.Variable(1.0)).save(
            str(run_dir / run_dir_lib.CHECKPOINT_DIR / "ckpt"))
    if done:
        (run_dir / run_dir_lib.DONE_FILE).write_text("")
    return str(run_dir)


def test_resume_auto_picks_the_newest_unfinished_run_with_the_same_desc(tmp_path):
    make_run(tmp_path, "00000-faces")
    newest_unfinished = make_run(tmp_path, "00001-faces")
    make_run(tmp_path, "00002-faces", done=True)
    make_run(tmp_path, "00003-faces", checkpoint=False)
    make_run(tmp_path, "00004-cars")
    assert run_dir_lib.find_resumable_run(str(tmp_path), "faces") == newest_unfinished
    assert run_dir_lib.find_resumable_run(str(tmp_path), "dogs") is None
    assert run_dir_lib.create_run_dir(str(tmp_path), "faces").endswith("00005-faces")
    assert run_dir_lib.resolve_resume(tiny_config(tmp_path, resume="auto", desc="faces")) == \
        newest_unfinished
    assert run_dir_lib.resolve_resume(tiny_config(tmp_path)) is None
    with pytest.raises(run_dir_lib.TrainingError, match="has no checkpoint"):
        run_dir_lib.resolve_resume(tiny_config(tmp_path, resume=str(tmp_path / "00003-faces")))


def test_network_json_is_written_once_and_checked_on_resume_without_a_dtype(tmp_path):
    network = {"architecture": "progan", "generator": {"resolution": 16, "fmap_max": 16},
               "discriminator": {"resolution": 16}}
    run_dir_lib.write_new_run(str(tmp_path), network, {"fmap_max": 16})
    assert json.load(open(tmp_path / run_dir_lib.FLAGS_JSON)) == {"fmap_max": 16}
    run_dir_lib.check_network(str(tmp_path), network)
    # Runs made before the configs dropped the dtype policy stored one: it is ignored.
    older = json.loads(json.dumps(network))
    older["generator"]["dtype"] = {"class_name": "DTypePolicy", "config": {"name": "float32"}}
    run_dir_lib.write_new_run(str(tmp_path), older, {})
    run_dir_lib.check_network(str(tmp_path), network)
    wider = dict(network, generator={"resolution": 16, "fmap_max": 32})
    with pytest.raises(run_dir_lib.TrainingError, match=r"network.json differ .* --fmap_max"):
        run_dir_lib.check_network(str(tmp_path), wider)


def test_snapshot_file_names_carry_the_kimg():
    assert run_dir_lib.fakes_filename(12.7) == "fakes000012.png"
    assert run_dir_lib.mixing_filename(120) == "mix000120.png"


def test_checkpoints_keep_the_newest_and_a_failed_write_names_the_last_good_one(
        tmp_path, monkeypatch):
    variable = tf.Variable(1.0)
    checkpoints = run_dir_lib.Checkpoints(tf.train.Checkpoint(v=variable), str(tmp_path), keep=2)
    paths = [checkpoints.save() for _ in range(3)]
    assert checkpoints.saved and [os.path.basename(p) for p in paths] == [
        "ckpt-1", "ckpt-2", "ckpt-3"]
    assert not os.path.exists(paths[0] + ".index")  # keep=2
    variable.assign(5.0)
    assert checkpoints.restore_latest() == paths[-1] and variable.numpy() == 1.0

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", self.directory)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", disk_full)
    with pytest.raises(run_dir_lib.TrainingError, match=r"cannot write a checkpoint to \S+"
                       r"checkpoints \(disk full .*the last complete checkpoint \S+ckpt-3 is "
                       r"intact"):
        checkpoints.save()


def test_a_worker_without_a_run_directory_saves_nothing_that_remains(tmp_path):
    checkpoints = run_dir_lib.Checkpoints(tf.train.Checkpoint(v=tf.Variable(1.0)), None, keep=2)
    path = checkpoints.save()
    assert not os.path.exists(path + ".index")


# ------------------------------------------------------------------------------------------------
# A checkpoint that does not load: the trainer falls back to the one before.


def truncate_data(prefix):
    path = prefix + ".data-00000-of-00001"
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)


def flip_a_byte(prefix):
    path = prefix + ".data-00000-of-00001"
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


def remove_index(prefix):
    os.remove(prefix + ".index")


def remove_shard(prefix):
    os.remove(prefix + ".data-00000-of-00001")


def fresh_trainer():
    return GanTrainer(tiny_config(), one_device(), 16, 1)


def copy_run(trained_run, tmp_path):
    return shutil.copytree(trained_run, tmp_path / "run")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run: 4 ticks of 16 images, a checkpoint at each, --keep_checkpoints 3
    keeps ckpt-2, ckpt-3 and ckpt-4. It stays at 4x4 (one resolution to trace)."""
    cfg = tiny_config(tmp_path_factory.mktemp("trained"), keep_checkpoints=3,
                      lod_training_kimg=1.0)
    result = loop.train(cfg, source=InMemorySource(tiny_images()), log_stream=io.StringIO())
    directory = os.path.join(result.run_dir, run_dir_lib.CHECKPOINT_DIR)
    assert run_dir_lib.listed_checkpoints(directory) == [
        os.path.join(directory, name) for name in ("ckpt-4", "ckpt-3", "ckpt-2")]
    return result.run_dir


@pytest.mark.parametrize("damage, reason", [
    (truncate_data, r"\(Read less bytes than requested \(a truncated file\)\)"),
    (flip_a_byte, r"\(TensorBundle at ckpt-4 shard 0 \(\d+ bytes\): Checksum does not match"),
    (remove_index, r"\(its index file ckpt-4\.index is missing\)"),
    (remove_shard, r"\(ckpt-4\.data-00000-of-00001; No such file or directory\)"),
], ids=["truncated", "flipped_byte", "missing_index", "missing_shard"])
def test_resume_moves_a_checkpoint_that_does_not_load_aside_and_restores_the_one_before(
        trained_run, tmp_path, damage, reason):
    run_dir = copy_run(trained_run, tmp_path)
    directory = os.path.join(run_dir, run_dir_lib.CHECKPOINT_DIR)
    newest = os.path.join(directory, "ckpt-4")
    damage(newest)
    damaged = {name: content for name, content in tree_bytes(directory).items()
               if name.startswith("ckpt-4.")}
    trainer, lines = fresh_trainer(), []
    checkpoints = run_dir_lib.Checkpoints(trainer.checkpoint, run_dir, keep=3)

    assert checkpoints.restore_latest(lines.append) == os.path.join(directory, "ckpt-3")
    corrupt = os.path.join(directory, run_dir_lib.CORRUPT_DIR)
    assert len(lines) == 1 and lines[0].startswith(f"Checkpoint {newest} does not load (")
    assert re.search(reason, lines[0]) and lines[0].endswith(
        f"): moved to {os.path.join(corrupt, 'ckpt-4')}, trying the one before")
    # Exactly ckpt-3's weights, optimizer slots and counters.
    reference = fresh_trainer()
    reference.checkpoint.restore(
        os.path.join(trained_run, run_dir_lib.CHECKPOINT_DIR, "ckpt-3")).assert_consumed()
    for restored, expected in zip(trainer.checkpoint_variables(),
                                  reference.checkpoint_variables(), strict=True):
        np.testing.assert_array_equal(restored.numpy(), expected.numpy())
    assert trainer.state.values() == reference.state.values()
    assert trainer.state.values()["nimg"] == 48
    # Moved aside byte for byte, and the state file lists the others.
    assert tree_bytes(corrupt) == damaged
    assert not [name for name in os.listdir(directory) if name.startswith("ckpt-4")]
    assert run_dir_lib.listed_checkpoints(directory) == [
        os.path.join(directory, "ckpt-3"), os.path.join(directory, "ckpt-2")]
    state_file = open(os.path.join(directory, run_dir_lib.CHECKPOINT_STATE)).read()
    assert 'model_checkpoint_path: "ckpt-3"' in state_file and "ckpt-4" not in state_file
    assert state_file.count("all_model_checkpoint_timestamps") == 2
    # The next checkpoints take new numbers; the bad one took none of the three places.
    assert os.path.basename(checkpoints.save()) == "ckpt-5"
    assert all(os.path.exists(os.path.join(directory, f"ckpt-{n}.index")) for n in (2, 3, 5))
    assert os.path.basename(checkpoints.save()) == "ckpt-6"
    assert sorted(name for name in os.listdir(directory) if name.endswith(".index")) == [
        "ckpt-3.index", "ckpt-5.index", "ckpt-6.index"]
    assert tree_bytes(corrupt) == damaged


def test_resume_names_every_checkpoint_when_none_loads_and_moves_nothing(trained_run, tmp_path):
    run_dir = copy_run(trained_run, tmp_path)
    directory = os.path.join(run_dir, run_dir_lib.CHECKPOINT_DIR)
    truncate_data(os.path.join(directory, "ckpt-4"))
    flip_a_byte(os.path.join(directory, "ckpt-3"))
    remove_index(os.path.join(directory, "ckpt-2"))
    before = tree_bytes(run_dir)
    trainer, lines = fresh_trainer(), []
    initial = weights(trainer.checkpoint_variables())
    with pytest.raises(run_dir_lib.TrainingError) as raised:
        run_dir_lib.Checkpoints(trainer.checkpoint, run_dir, keep=3).restore_latest(lines.append)
    message = str(raised.value)
    assert "\n" not in message and directory in message
    assert re.search(r"loads: ckpt-4 \(Read less bytes than requested \(a truncated file\)\); "
                     r"ckpt-3 \(.*Checksum does not match.*\); "
                     r"ckpt-2 \(its index file ckpt-2.index is missing\)\. Nothing was moved",
                     message), message
    assert tree_bytes(run_dir) == before and lines == []
    for value, start in zip(weights(trainer.checkpoint_variables()), initial, strict=True):
        np.testing.assert_array_equal(value, start)  # nothing restored into the live objects


def test_fallback_never_reuses_a_number_also_of_checkpoints_moved_aside_before(
        trained_run, tmp_path):
    run_dir = copy_run(trained_run, tmp_path)
    directory = os.path.join(run_dir, run_dir_lib.CHECKPOINT_DIR)
    corrupt = os.path.join(directory, run_dir_lib.CORRUPT_DIR)
    os.makedirs(corrupt)
    for name in ("ckpt-4.index", "ckpt-9.index"):  # from earlier fallbacks
        open(os.path.join(corrupt, name), "wb").write(name.encode())
    flip_a_byte(os.path.join(directory, "ckpt-4"))
    damaged = open(os.path.join(directory, "ckpt-4.index"), "rb").read()
    lines = []
    checkpoints = run_dir_lib.Checkpoints(fresh_trainer().checkpoint, run_dir, keep=3)
    assert checkpoints.restore_latest(lines.append).endswith("ckpt-3")
    assert sorted(os.listdir(corrupt)) == ["ckpt-4.index", "ckpt-4_2.data-00000-of-00001",
                                           "ckpt-4_2.index", "ckpt-9.index"]
    assert open(os.path.join(corrupt, "ckpt-4.index"), "rb").read() == b"ckpt-4.index"
    assert open(os.path.join(corrupt, "ckpt-4_2.index"), "rb").read() == damaged
    assert f"moved to {os.path.join(corrupt, 'ckpt-4_2')}," in lines[0]
    path = checkpoints.save()
    assert os.path.basename(path) == "ckpt-10"
    assert int(tf.train.load_checkpoint(path).get_tensor("save_counter/.ATTRIBUTES/"
                                                         "VARIABLE_VALUE")) == 10


def test_training_resumes_from_the_checkpoint_before_a_truncated_one(trained_run, tmp_path):
    run_dir = str(copy_run(trained_run, tmp_path))
    truncate_data(os.path.join(run_dir, run_dir_lib.CHECKPOINT_DIR, "ckpt-4"))
    log = io.StringIO()
    # --total_kimg at ckpt-3's 48 images: the run resumes and ends without a step.
    result = loop.train(tiny_config(tmp_path, resume=run_dir, total_kimg=0.048),
                        source=InMemorySource(tiny_images()), log_stream=log)
    assert (result.run_dir, result.status, result.kimg) == (run_dir, "done", 0.048)
    lines = [line for line in log.getvalue().splitlines() if "ckpt-" in line]
    assert re.search(r"^Checkpoint \S+ckpt-4 does not load \(Read less bytes", lines[0]), lines
    assert lines[1] == f"Resuming {run_dir} from ckpt-3 at kimg 0.0"
    assert lines[0] in open(os.path.join(run_dir, run_dir_lib.LOG_FILE)).read()


def test_resume_auto_still_finds_a_run_whose_newest_checkpoint_lost_its_index(tmp_path):
    run_dir = make_run(tmp_path, "00000-faces")
    os.remove(os.path.join(run_dir, run_dir_lib.CHECKPOINT_DIR, "ckpt-1.index"))
    assert run_dir_lib.find_resumable_run(str(tmp_path), "faces") == run_dir
    checkpoints = run_dir_lib.Checkpoints(tf.train.Checkpoint(v=tf.Variable(0.0)), run_dir, 2)
    with pytest.raises(run_dir_lib.TrainingError,
                       match=r"ckpt-1 \(its index file ckpt-1.index is missing\)"):
        checkpoints.restore_latest()
