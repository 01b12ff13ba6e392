"""A real full disk: a small tmpfs mounted inside the test's temporary directory (tests run as
root; a refused mount fails the test) holds the run directory, the export or the new dataset.

At the moment a test chooses (just before a checkpoint, a grid, a tick's log and TensorBoard
writes, an export), `Tmpfs.fill` remounts the tmpfs with size = the bytes in use, so the next
write that needs a block meets ENOSPC for real. Each time: one clear line naming the file, the
previous checkpoint byte-identical and loadable, nothing half-written under a final name (files
that existed are unchanged, or only grew for the append-only log.txt and TensorBoard events,
whose last record may be cut), and after `mount -o remount,size=...` with more room,
`--resume=auto` continues the same run to its end. The same for `python -m data_tools
create_from_images` and `python -m exports`.

Tiny networks of tests/training_common.py on 4x4 data (one resolution: one trace per run).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from data_tools import cli as data_tools_cli
from exports import __main__ as exports_main
from progan_tf.training import loop
from progan_tf.training import run_dir as run_dir_lib
from progan_tf.training import snapshots as snapshots_lib
from progan_tf.training.state import read_state
from progan_tf.training.steps import GanTrainer
from progan_tf.utils import run_lock
from training_common import one_device, read_tensorboard, tiny_config, tiny_images, tree_bytes, \
    write_pyramid

DEVNULL = open(os.devnull, "w")  # noqa: SIM115
ROOMY = 32 << 20  # bytes: the size that gives every test enough room
APPEND_ONLY = re.compile(r"^(log\.txt|metrics\.jsonl|events\.out\.tfevents\..*)$")
TEMPORARY = re.compile(r"^\.tmp-|_temp|\.tempstate|^tmp-export-|\.partial-")
NO_SPACE = "No space left on device"
CHECKPOINT_FILE = re.compile(r"^(ckpt-\d+)\.(index|data-\d+-of-\d+)$")


class Tmpfs:
    """A tmpfs mounted at `path` for one test."""

    def __init__(self, path):
        self.path = str(path)
        os.makedirs(self.path)
        self._mount("-t", "tmpfs", "-o", f"size={ROOMY // 1024}k,mode=0755", "tmpfs")

    def _mount(self, *args):
        proc = subprocess.run(["mount", *args, self.path], capture_output=True, text=True,
                              timeout=30)
        if proc.returncode:
            pytest.fail(f"mount {' '.join(args)} {self.path} refused (these tests need root): "
                        f"{proc.stderr.strip()}")

    def used(self):
        stat = os.statvfs(self.path)
        return (stat.f_blocks - stat.f_bfree) * stat.f_frsize

    def resize(self, size):
        self._mount("-o", f"remount,size={-(-size // 1024)}k")

    def fill(self, room=0):
        """Leaves `room` bytes free (rounded up to pages): size = bytes in use + room."""
        self.resize(self.used() + room)

    def grow(self):
        self.resize(ROOMY)

    def unmount(self):
        if subprocess.run(["umount", self.path], timeout=30).returncode:
            subprocess.run(["umount", "-l", self.path], timeout=30)  # busy: detach it anyway


@pytest.fixture
def tmpfs(tmp_path):
    disk = Tmpfs(tmp_path / "tmpfs")
    try:
        yield disk
    finally:
        disk.unmount()


def assert_nothing_half_written(path, before):
    """Since the disk filled up (`before`: tree_bytes then), files are unchanged or, when
    append-only, only grew; no file is new but an empty append-only one; no file with a
    temporary name is left; everything under a final name is complete (PNGs decode, JSON
    parses); the run directory's lock is released."""
    after = tree_bytes(path)
    for name, data in after.items():
        base = os.path.basename(name)
        assert not TEMPORARY.search(name), name
        if base == run_lock.LOCK_FILE:
            assert data == b"", name  # released: it names no holder
        elif name in before and APPEND_ONLY.match(base):
            assert data.startswith(before[name]), name
        elif name in before:
            assert data == before[name], name
        else:
            assert APPEND_ONLY.match(base) and data == b"", name
        if base.endswith(".png"):
            PIL.Image.open(os.path.join(path, name)).load()
        if base.endswith(".json"):
            json.loads(data)
    # (A failed checkpoint save leaves its directory ckpt-N_temp/ behind, empty: the next save
    # of that number writes into it and removes it.)


def assert_checkpoint_intact(run_dir, prefix, files):
    """`prefix` is the newest checkpoint of the state file, its files are `files` (bytes
    read before the disk filled), every checkpoint listed loads, and no checkpoint file is
    there that the state file does not list."""
    directory = os.path.join(run_dir, run_dir_lib.CHECKPOINT_DIR)
    state = tf.train.get_checkpoint_state(directory)
    assert state.model_checkpoint_path == prefix
    listed = {os.path.basename(p) for p in state.all_model_checkpoint_paths}
    on_disk = {match.group(1) for match in map(CHECKPOINT_FILE.match, os.listdir(directory))
               if match}
    assert on_disk == listed
    for name, data in files.items():
        with open(os.path.join(directory, name), "rb") as file:
            assert file.read() == data, name
    for name in listed:
        reader = tf.train.load_checkpoint(os.path.join(directory, name))
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)  # reads every tensor: the CRCs are checked


def checkpoint_files(run_dir):
    """(newest prefix, {file name: bytes} of its files)."""
    directory = os.path.join(run_dir, run_dir_lib.CHECKPOINT_DIR)
    prefix = tf.train.latest_checkpoint(directory)
    names = [n for n in os.listdir(directory) if n.startswith(os.path.basename(prefix) + ".")]
    return prefix, {n: open(os.path.join(directory, n), "rb").read() for n in names}


class FullDiskAt:
    """Monkeypatches owner.name so that its `call`-th call first fills the disk (recording the
    run directory and its newest checkpoint as they are then)."""

    def __init__(self, monkeypatch, disk, run_dir, owner, name, call=1):
        self.disk, self.run_dir, self.before, self.checkpoint = disk, run_dir, None, None
        original, calls = getattr(owner, name), []

        def wrapper(*args, **kwargs):
            calls.append(1)
            if len(calls) == call:
                self.before = tree_bytes(self.run_dir)
                self.checkpoint = checkpoint_files(self.run_dir)
                self.disk.fill()
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    def check(self, error):
        """The TrainingError's message is one line; nothing half-written; the checkpoint of
        the moment the disk filled is intact and the newest. Returns the message."""
        assert self.before is not None, "the disk was never filled"
        message = str(error)
        assert "\n" not in message and NO_SPACE in message, message
        assert_nothing_half_written(self.run_dir, self.before)
        prefix, files = self.checkpoint
        assert_checkpoint_intact(self.run_dir, prefix, files)
        return message


def test_training_meets_a_full_disk_at_each_write_and_resume_auto_finishes_the_run(
        tmpfs, tmp_path, monkeypatch):
    data_dir = write_pyramid(tmp_path / "blobs-4", tiny_images(32, resolution=4))
    results = os.path.join(tmpfs.path, "results")
    run_dir = os.path.join(results, "00000-blobs-4")
    ckpt = os.path.join(run_dir, "checkpoints", "ckpt-")
    # 16 ticks of 16 images; ticks 1 and 2 are repeated after each failure below.
    cfg = tiny_config(results, data_dir=data_dir, total_kimg=0.256, export=True, resume="auto")

    def train(at, **overrides):
        with monkeypatch.context() as patch, pytest.raises(loop.TrainingError) as failed:
            full = FullDiskAt(patch, tmpfs, run_dir, *at)
            loop.train(cfg.replace(**overrides), log_stream=DEVNULL)
        message = full.check(failed.value)
        tmpfs.grow()  # mount -o remount,size=...
        return message

    # 1. The second checkpoint (tick 2) of a new run.
    message = train((run_dir_lib.Checkpoints, "save", 2))
    assert message.startswith(f"cannot write a checkpoint to {run_dir}/checkpoints")
    assert f"{ckpt}1 is intact" in message

    # 2. A fakes grid (tick 2 again, resumed from ckpt-1); the old grid stays as it was.
    message = train((snapshots_lib.Snapshots, "fakes", 1))
    assert message == (f"cannot write {run_dir}/fakes000000.png (disk full or not writable?): "
                       f"{NO_SPACE}; stopped at kimg 0.0, the last complete checkpoint {ckpt}1 "
                       f"is intact; make room and continue with --resume={run_dir}")

    # 3. Inside the ticks: from tick 2 on, no grid and no checkpoint is due, so the first write
    # that needs a block is the log's or TensorBoard's (a new events file each session).
    message = train((loop, "progress_line", 1), checkpoint_ticks=100, image_snapshot_ticks=100)
    assert re.match(rf"cannot write (the TensorBoard events in {run_dir}|{run_dir}/log\.txt) "
                    rf"\(disk full or not writable\?\): {NO_SPACE}; stopped at kimg 0\.\d, the "
                    rf"last complete checkpoint {ckpt}1 is intact", message), message
    read_tensorboard(run_dir)  # the cut record at the end of an events file is skipped

    # 4. The export at the end (after training to --total_kimg from ckpt-1).
    message = train((loop._Run, "export", 1), checkpoint_ticks=4)
    assert message.startswith(f"cannot write a new version into {run_dir}/export/generator "
                              f"(disk full or not writable?): {NO_SPACE}; no version was "
                              f"published")
    assert "stopped at kimg 0.3" in message and not os.path.exists(
        os.path.join(run_dir, run_dir_lib.DONE_FILE))

    # 5. With room: the same run exports and is done.
    result = loop.train(cfg, log_stream=DEVNULL)
    assert result.status == "done" and result.run_dir == run_dir
    assert os.listdir(results) == ["00000-blobs-4"]
    state = read_state(os.path.join(run_dir, "checkpoints"))
    assert state["nimg"] == 256 and state["tick"] == 16
    assert os.path.exists(os.path.join(run_dir, run_dir_lib.DONE_FILE))
    assert result.export_dir == os.path.join(run_dir, "export", "generator", "1")
    assert os.listdir(os.path.dirname(result.export_dir)) == ["1"]
    model = tf.saved_model.load(result.export_dir)
    images = model.signatures["generate_seeds"](seeds=tf.constant([0, 1], tf.int64))["images"]
    assert images.shape == (2, 4, 4, 1)
    log = open(os.path.join(run_dir, "log.txt"), encoding="utf-8").read()
    assert log.count(f"Resuming {run_dir} from ckpt-1 at kimg 0.0") == 3
    assert "Training done at kimg 0.3" in log


def test_data_tools_create_on_a_full_disk_leaves_nothing_and_succeeds_with_room(
        tmpfs, tmp_path, capsys):
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    rng = np.random.default_rng(0)
    for index in range(64):
        pixels = rng.integers(0, 256, (16, 16), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(images_dir / f"{index:03d}.png")
    scratch, out = os.path.join(tmpfs.path, "scratch"), os.path.join(tmpfs.path, "blobs")
    # How much a create writes: once with room, then removed.
    empty = tmpfs.used()
    assert data_tools_cli.main(["create_from_images", scratch, str(images_dir)]) == 0
    needed = tmpfs.used() - empty
    expected = {name: hashlib.sha256(data).hexdigest()
                for name, data in tree_bytes(scratch).items() if name != "manifest.json"}
    shutil.rmtree(scratch)
    capsys.readouterr()

    tmpfs.fill(room=needed // 2)  # some level files fit, not all
    assert data_tools_cli.main(["create_from_images", out, str(images_dir)]) == 1
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines()[-1] == (
        f"error: {out}: cannot write the dataset (disk full or not writable?): {NO_SPACE}; "
        f"nothing was created")
    assert "Traceback" not in stderr
    assert os.listdir(tmpfs.path) == []  # no pyramid, no hidden .blobs.partial-* directory
    assert tmpfs.used() == empty

    tmpfs.resize(empty + 2 * needed)  # mount -o remount,size=...
    assert data_tools_cli.main(["create_from_images", out, str(images_dir)]) == 0
    assert os.listdir(tmpfs.path) == ["blobs"]
    created = {name.replace("blobs", "scratch"): hashlib.sha256(data).hexdigest()
               for name, data in tree_bytes(out).items() if name != "manifest.json"}
    assert created == expected  # the same pyramid, byte for byte


def test_python_m_exports_on_a_full_disk_publishes_nothing_and_succeeds_with_room(
        tmpfs, capsys):
    # A run directory (network.json, flags.json, one checkpoint) on the tmpfs.
    cfg = tiny_config(tmpfs.path)
    run_dir = run_dir_lib.create_run_dir(tmpfs.path, "blobs")
    gan = GanTrainer(cfg, one_device(), 4, 1)
    run_dir_lib.write_new_run(run_dir, gan.network_json(), cfg.to_json_dict())
    run_dir_lib.Checkpoints(gan.checkpoint, run_dir, 3).save()
    model_dir = os.path.join(run_dir, "export", "generator")
    # How much an export writes: once with room, then removed.
    empty = tmpfs.used()
    scratch = os.path.join(tmpfs.path, "scratch")
    assert exports_main.main(["--checkpoint", run_dir, "--out_dir", scratch]) == 0
    needed = tmpfs.used() - empty
    shutil.rmtree(scratch)
    capsys.readouterr()

    before = tree_bytes(run_dir)
    tmpfs.fill(room=needed // 2)  # the variables fit, not the whole SavedModel
    assert exports_main.main(["--checkpoint", run_dir]) == 1
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines() == [
        f"python -m exports: error: cannot write a new version into {model_dir} (disk full or "
        f"not writable?): {NO_SPACE}; no version was published, the existing ones are untouched"]
    assert os.listdir(model_dir) == []  # no version, no temporary directory
    assert tree_bytes(run_dir) == before
    assert tmpfs.used() == empty

    tmpfs.resize(empty + 2 * needed)  # mount -o remount,size=...
    assert exports_main.main(["--checkpoint", run_dir]) == 0
    assert capsys.readouterr().out.strip() == os.path.join(model_dir, "1")
    model = tf.saved_model.load(os.path.join(model_dir, "1"))
    images = model.signatures["serving_default"](
        latents=tf.random.stateless_normal([3, gan.latent_size], seed=[1, 2]))["images"]
    assert images.shape == (3, 4, 4, 1)
