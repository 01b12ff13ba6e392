"""The run directory: numbering, --resume discovery, network.json checks, checkpoint writing."""

import errno
import json
import os

import pytest
import tensorflow as tf

from progan_tf.training import run_dir as run_dir_lib
from training_common import tiny_config


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
