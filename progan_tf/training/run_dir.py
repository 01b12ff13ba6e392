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
    <run dir>/checkpoints/corrupt/ checkpoints that did not load on resume, moved aside
    <run dir>/reals.png, fakesKKKKKK.png, mixKKKKKK.png   image grids (KKKKKK = kimg)
    <run dir>/metrics.jsonl        one {"metric": name, "kimg": k, ...} object per line
    <run dir>/export/<model>/<n>/  SavedModel versions of the EMA generator
    <run dir>/_training-done.txt   written when training reached --total_kimg
    <run dir>/_run.lock            "pid host" of the run writing the directory (an flock:
                                   progan_tf/utils/run_lock.py)
"""

import json
import os
import re
import shutil
import tempfile

import tensorflow as tf
from google.protobuf import text_format

from progan_tf.utils.files import write_atomic, write_json_atomic

CHECKPOINT_DIR = "checkpoints"
CORRUPT_DIR = "corrupt"  # under CHECKPOINT_DIR
CHECKPOINT_STATE = "checkpoint"  # the CheckpointManager's list of kept checkpoints
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
    """True when the run's checkpoint state file lists a checkpoint (loadable or not: resuming
    then falls back to an older one, or says why none loads)."""
    return bool(listed_checkpoints(os.path.join(run_dir, CHECKPOINT_DIR)))


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


# ------------------------------------------------------------------------------------------------
# Checkpoints that do not load: found by the trainer and the readers (exports, generate, metrics)
# alike; only the trainer moves them aside.

_CHECKPOINT_NUMBER = re.compile(r"^ckpt-(\d+)(?!\d)")


def listed_checkpoints(directory):
    """Prefixes of the checkpoints that `<directory>/checkpoint` lists, newest first; [] when
    there is no readable state file."""
    try:
        state = tf.train.get_checkpoint_state(directory)
    except ValueError:  # a state file that names no latest checkpoint
        return []
    if state is None:
        return []
    latest = state.model_checkpoint_path
    return [latest] + [path for path in reversed(state.all_model_checkpoint_paths)
                       if path != latest]


def checkpoint_problem(prefix):
    """Why the checkpoint `prefix` does not load, or None when it does. Every tensor is read,
    which checks each one's CRC: a truncated or bit-flipped file, a missing shard or index."""
    if not os.path.isfile(prefix + ".index"):
        return f"its index file {os.path.basename(prefix)}.index is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_dtype_map():
            reader.get_tensor(name)
    except IndexError as error:  # what the bundle reader raises for a short .data file
        return f"{_first_line(error)} (a truncated file)"
    except Exception as error:  # noqa: BLE001 (OpError, ValueError, ...: any failure counts)
        # The caller names the checkpoint: its directory would only repeat.
        return _first_line(error).replace(os.path.dirname(prefix) + os.sep, "")
    return None


def newest_loadable_checkpoint(directory):
    """(prefix, skipped): the newest checkpoint listed in `directory` that loads (None when none
    does), and [(prefix, why)] of the newer ones that do not, newest first."""
    skipped = []
    for prefix in listed_checkpoints(directory):
        problem = checkpoint_problem(prefix)
        if problem is None:
            return prefix, skipped
        skipped.append((prefix, problem))
    return None, skipped


def describe_skipped(skipped):
    """'ckpt-4 (why); ckpt-3 (why)' for error messages."""
    return "; ".join(f"{os.path.basename(prefix)} ({why})" for prefix, why in skipped)


def _first_line(error):
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]


def _drop_from_state(directory, prefixes, latest):
    """Rewrites `<directory>/checkpoint` (atomically) without `prefixes`, naming `latest` as the
    newest; the other entries and their timestamps stay as they were."""
    state = tf.train.get_checkpoint_state(directory)
    paths = list(state.all_model_checkpoint_paths)
    timestamps = list(state.all_model_checkpoint_timestamps)
    kept = [index for index, path in enumerate(paths) if path not in prefixes]
    del state.all_model_checkpoint_paths[:]
    del state.all_model_checkpoint_timestamps[:]
    state.all_model_checkpoint_paths.extend(_relative(paths[i], directory) for i in kept)
    if len(timestamps) == len(paths):
        state.all_model_checkpoint_timestamps.extend(timestamps[i] for i in kept)
    state.model_checkpoint_path = _relative(latest, directory)
    write_atomic(os.path.join(directory, CHECKPOINT_STATE),
                 text_format.MessageToString(state).encode("utf-8"))


def _relative(prefix, directory):
    """As the CheckpointManager stores it: relative to `directory` when inside it."""
    if os.path.dirname(os.path.abspath(prefix)) == os.path.abspath(directory):
        return os.path.basename(prefix)
    return prefix


def _move_aside(prefix, corrupt_dir):
    """Moves the files of checkpoint `prefix` into `corrupt_dir` under a name not used there
    (`ckpt-4`, else `ckpt-4_2`, ...); returns the new prefix."""
    directory, name = os.path.split(prefix)
    files = sorted(file for file in os.listdir(directory) if file.startswith(name + "."))
    os.makedirs(corrupt_dir, exist_ok=True)
    taken = set(os.listdir(corrupt_dir))
    target, copy = name, 1
    while any(target + file[len(name):] in taken for file in files):
        copy += 1
        target = f"{name}_{copy}"
    for file in files:
        os.rename(os.path.join(directory, file),
                  os.path.join(corrupt_dir, target + file[len(name):]))
    return os.path.join(corrupt_dir, target)


class Checkpoints:
    """Checkpoints of `checkpoint` (a tf.train.Checkpoint) in `<run dir>/checkpoints`.

    run_dir: the run directory on the chief, None on the other workers. Every worker saves
    (TensorFlow's pattern for MultiWorkerMirroredStrategy): the other workers into a scratch
    directory that is deleted at once, so only the chief's checkpoints remain. The other workers
    never restore: the chief broadcasts what it restored.
    """

    def __init__(self, checkpoint, run_dir, keep):
        self.checkpoint = checkpoint
        self.keep = keep
        self.directory = os.path.join(run_dir, CHECKPOINT_DIR) if run_dir else None
        self.manager = (tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=keep)
                        if run_dir else None)
        self.saved = False

    def restore_latest(self, log=print):
        """Restores the newest checkpoint that loads; returns its path. Every object of
        `checkpoint` must be in it; values it has no object for (StyleGAN's former noise
        switches) are ignored.

        Each newer checkpoint that does not load (checked before anything is restored) gets one
        line to `log`, its files move to checkpoints/corrupt/ and the state file drops it, so
        it takes none of the --keep_checkpoints places. When none loads, TrainingError names
        each and why, and nothing is moved.
        """
        prefix, skipped = newest_loadable_checkpoint(self.directory)
        if prefix is None:
            if not skipped:
                raise TrainingError(f"--resume: no checkpoint listed in {self.directory}")
            raise TrainingError(
                f"--resume: no checkpoint in {self.directory} loads: {describe_skipped(skipped)}. "
                f"Nothing was moved; replace the damaged files from a copy, or start a new run "
                f"without --resume")
        if skipped:
            _drop_from_state(self.directory, [bad for bad, _ in skipped], prefix)
            corrupt_dir = os.path.join(self.directory, CORRUPT_DIR)
            for bad, why in skipped:
                moved = _move_aside(bad, corrupt_dir)
                log(f"Checkpoint {bad} does not load ({why}): moved to {moved}, trying "
                    f"the one before")
            # Re-read the state file, so the manager keeps --keep_checkpoints good ones.
            self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                      max_to_keep=self.keep)
        self.checkpoint.restore(prefix).assert_existing_objects_matched().expect_partial()
        return prefix

    def _next_number(self):
        """1 + the largest checkpoint number ever used here: the save counter, the kept
        checkpoints' files and names, and the ones moved to corrupt/."""
        names = [os.path.basename(prefix) for prefix in self.manager.checkpoints]
        for directory in (self.directory, os.path.join(self.directory, CORRUPT_DIR)):
            if os.path.isdir(directory):
                names.extend(os.listdir(directory))
        numbers = [int(match.group(1)) for match in map(_CHECKPOINT_NUMBER.match, names)
                   if match]
        return max([int(self.checkpoint.save_counter.numpy())] + numbers) + 1

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
            # The manager numbers by the save counter, which a fallback restored from an older
            # checkpoint: set it so the new checkpoint takes a number never used before.
            self.checkpoint.save_counter.assign(self._next_number() - 1)
            return self.manager.save()
        except (OSError, tf.errors.OpError) as error:
            last = self.manager.latest_checkpoint
            kept = (f"the last complete checkpoint {last} is intact" if last
                    else "no earlier checkpoint exists")
            raise TrainingError(
                f"cannot write a checkpoint to {self.directory} (disk full or not writable?): "
                f"{write_failure_reason(error)}; {kept}") from None


def write_failure_reason(error):
    """Why a write failed, short: "No space left on device" of an OSError or of a TensorFlow
    error "{{function_node ...}} <temporary file>; No space left on device [Op:SaveV2]"."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    line = re.sub(r"\s*\[Op:\w+\]$", "", re.sub(r"^\{\{[^}]*\}\}\s*", "", line))
    return line.rsplit("; ", 1)[-1][:300]
