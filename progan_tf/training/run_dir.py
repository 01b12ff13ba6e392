"""The run directory: its file names (the one definition exports/ and metrics/ import), creating
`NNNNN-desc` directories, finding the run to resume, network.json, checkpoints (`Checkpoints`),
and `TrainingError`.

    <run dir>/network.json         {"architecture": ..., "generator": G config,
                                    "discriminator": D config}
    <run dir>/flags.json           the training flags
    <run dir>/log.txt              the messages and tick lines of every session
    <run dir>/checkpoints/         tf.train.CheckpointManager of Checkpoint(generator=G,
                                   generator_ema=Gs, discriminator=D, g_optimizer, d_optimizer,
                                   state=TrainingState)
    <run dir>/reals.png, fakesKKKKKK.png, mixKKKKKK.png   image grids (KKKKKK = kimg)
    <run dir>/metrics.jsonl        one {"metric": name, "kimg": k, ...} object per line
    <run dir>/export/<model>/<n>/  SavedModel versions of the EMA generator
    <run dir>/_training-done.txt   written when training reached --total_kimg
"""

import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from progan_tf.utils.files import write_json_atomic

CHECKPOINT_DIR = "checkpoints"
NETWORK_JSON = "network.json"
FLAGS_JSON = "flags.json"
LOG_FILE = "log.txt"
METRICS_JSONL = "metrics.jsonl"
EXPORT_DIR = "export"
DONE_FILE = "_training-done.txt"
REALS_PNG = "reals.png"


class TrainingError(RuntimeError):
    """Training cannot continue; the message says why and where the last good state is."""


def fakes_filename(kimg):
    """'fakes000120.png' for 120 kimg, as the original names its snapshots."""
    return f"fakes{int(kimg):06d}.png"


def mixing_filename(kimg):
    """'mix000120.png': the style-mixing grid at 120 kimg (styled generators)."""
    return f"mix{int(kimg):06d}.png"


def _run_id(name):
    match = re.match(r"^(\d+)-", name)
    return int(match.group(1)) if match else None


def create_run_dir(results_dir, desc):
    """Creates `results_dir/NNNNN-desc` with the next free number, as the original does."""
    os.makedirs(results_dir, exist_ok=True)
    while True:
        ids = [_run_id(name) for name in os.listdir(results_dir)]
        run_id = max([i for i in ids if i is not None], default=-1) + 1
        path = os.path.join(results_dir, f"{run_id:05d}-{desc}")
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            continue


def has_checkpoint(run_dir):
    return tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_DIR)) is not None


def find_resumable_run(results_dir, desc):
    """Newest `NNNNN-desc` run in `results_dir` with a checkpoint and no DONE_FILE."""
    if not os.path.isdir(results_dir):
        return None
    pattern = re.compile(r"^\d+-" + re.escape(desc) + r"$")
    candidates = sorted((name for name in os.listdir(results_dir) if pattern.match(name)),
                        key=_run_id, reverse=True)
    for name in candidates:
        path = os.path.join(results_dir, name)
        if not os.path.exists(os.path.join(path, DONE_FILE)) and has_checkpoint(path):
            return path
    return None


def resolve_resume(cfg):
    """Run directory to continue (--resume "auto" or a directory), or None for a new run."""
    if cfg.resume == "auto":
        return find_resumable_run(cfg.results_dir, cfg.run_desc)
    if cfg.resume:
        if not has_checkpoint(cfg.resume):
            raise TrainingError(f"--resume: {cfg.resume} has no checkpoint in "
                                f"{os.path.join(cfg.resume, CHECKPOINT_DIR)}")
        return cfg.resume
    return None


def write_new_run(run_dir, network, flags):
    """network.json and flags.json of a new run."""
    write_json_atomic(os.path.join(run_dir, NETWORK_JSON), network)
    write_json_atomic(os.path.join(run_dir, FLAGS_JSON), flags)


def check_network(run_dir, network):
    """Raises TrainingError unless the run's network.json describes `network`. A dtype policy in
    the stored configs (network.json of runs made before the configs dropped it) is ignored."""
    path = os.path.join(run_dir, NETWORK_JSON)
    try:
        with open(path, encoding="utf-8") as file:
            stored = json.load(file)
    except (OSError, ValueError) as error:
        raise TrainingError(f"--resume: cannot read {path}: {error}") from None
    if _comparable(stored) != _comparable(network):
        raise TrainingError(f"--resume: the networks in {path} differ from the ones the flags "
                            f"and dataset describe (check --fmap_base, --fmap_max, "
                            f"--latent_size, --use_labels, --data_dir)")


def _comparable(network):
    network = json.loads(json.dumps(network, sort_keys=True))
    for config in network.values():
        if isinstance(config, dict):
            config.pop("dtype", None)
    return network


class Checkpoints:
    """Checkpoints of `checkpoint` (a tf.train.Checkpoint) in `<run dir>/checkpoints`.

    run_dir: the run directory on the chief, None on the other workers. Every worker saves
    (TensorFlow's pattern for MultiWorkerMirroredStrategy): the other workers into a scratch
    directory that is deleted at once, so only the chief's checkpoints remain.
    """

    def __init__(self, checkpoint, run_dir, keep):
        self.checkpoint = checkpoint
        self.directory = os.path.join(run_dir, CHECKPOINT_DIR) if run_dir else None
        self.manager = (tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=keep)
                        if run_dir else None)
        self.saved = False

    def restore_latest(self):
        """Restores the newest checkpoint; returns its path. Every object of `checkpoint` must be
        in it; values it has no object for (StyleGAN's former noise switches) are ignored."""
        path = self.manager.latest_checkpoint
        self.checkpoint.restore(path).assert_existing_objects_matched().expect_partial()
        return path

    def save(self):
        """Saves a checkpoint; returns its path. A failed write (disk full, no permission)
        raises TrainingError naming the last complete checkpoint."""
        self.saved = True
        if self.manager is None:
            scratch = tempfile.mkdtemp(prefix="progan-worker-checkpoint-")
            try:
                return self.checkpoint.write(os.path.join(scratch, "ckpt"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        try:
            return self.manager.save()
        except (OSError, tf.errors.OpError) as error:
            last = self.manager.latest_checkpoint
            kept = (f"the last complete checkpoint {last} is intact" if last
                    else "no earlier checkpoint exists")
            raise TrainingError(
                f"cannot write a checkpoint to {self.directory} (disk full or not writable?): "
                f"{str(error).strip().splitlines()[0][:300]}; {kept}") from None
