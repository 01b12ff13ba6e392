"""Reading a training run: rebuild its generator from `network.json`, restore it from a
checkpoint, and collect what `serving_meta.json` records (flags, last metrics, kimg).

The run directory layout is defined in progan_tf/training/run_dir.py (network.json,
flags.json, metrics.jsonl, checkpoints/ of Checkpoint(generator=G, generator_ema=Gs, ...)).
"""

import dataclasses
import json
import os
import sys

import tensorflow as tf

from progan_tf import architectures
from progan_tf.training.run_dir import (CHECKPOINT_DIR, FLAGS_JSON, METRICS_JSONL, NETWORK_JSON,
                                       checkpoint_problem, describe_skipped,
                                       newest_loadable_checkpoint)


# Checkpointed variables (last path element) that hold the training progress.
_KIMG_KEYS = {"kimg": 1.0, "cur_kimg": 1.0, "images_seen": 1e-3, "cur_nimg": 1e-3,
              "nimg": 1e-3}


class ExportError(ValueError):
    """A run directory, checkpoint or export location that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class RunCheckpoint:
    """Where a generator comes from: its run directory and one checkpoint prefix in it."""

    run_dir: str
    checkpoint: str


def locate_checkpoint(path, warn=True):
    """`path` = a run directory (latest checkpoint in `<run dir>/checkpoints`), its
    `checkpoints/` directory, or a checkpoint prefix (`<run dir>/checkpoints/ckpt-12`).

    Of a run directory, the newest checkpoint that loads: each newer one that does not is
    skipped with a one-line warning on stderr (unless not `warn`) and left where it is (a
    trainer may be using the directory). Returns a RunCheckpoint; raises ExportError naming
    the path when any part is missing or no checkpoint loads.
    """
    path = os.path.normpath(os.fspath(path))
    if os.path.isdir(path):
        run_dir = path
        if (os.path.basename(path) == CHECKPOINT_DIR
                and not os.path.exists(os.path.join(path, NETWORK_JSON))):
            run_dir = os.path.dirname(path)
        _require_network_json(run_dir)
        checkpoints = os.path.join(run_dir, CHECKPOINT_DIR)
        prefix, skipped = newest_loadable_checkpoint(checkpoints)
        if prefix is None and skipped:
            raise ExportError(f"{checkpoints}: no checkpoint loads: {describe_skipped(skipped)}")
        if prefix is None:
            raise ExportError(f"{checkpoints}: no checkpoint found (expected a CheckpointManager "
                              f"directory with a 'checkpoint' file and ckpt-N.index files)")
        for bad, why in skipped if warn else ():
            print(f"warning: {bad}: skipped, it does not load ({why}); using "
                  f"{os.path.basename(prefix)}", file=sys.stderr)
        return RunCheckpoint(run_dir, prefix)
    if os.path.exists(path + ".index"):
        run_dir = os.path.dirname(os.path.dirname(path))
        _require_network_json(run_dir)
        problem = checkpoint_problem(path)
        if problem:
            raise ExportError(f"{path}: the checkpoint does not load ({problem})")
        return RunCheckpoint(run_dir, path)
    raise ExportError(f"{path}: no such run directory or checkpoint prefix")


def _require_network_json(run_dir):
    if not os.path.isfile(os.path.join(run_dir, NETWORK_JSON)):
        raise ExportError(f"{run_dir}: not a run directory (no network.json, which the trainer "
                          f"writes to describe the networks)")


def read_network_json(run_dir):
    """`<run dir>/network.json` as a dict with at least "architecture" and "generator"."""
    path = os.path.join(run_dir, NETWORK_JSON)
    network = _read_json(path)
    if not isinstance(network, dict) or not isinstance(network.get("generator"), dict):
        raise ExportError(f"{path}: expected an object with a \"generator\" config object")
    network.setdefault("architecture", "progan")
    if network["architecture"] not in architectures.NAMES:
        raise ExportError(f"{path}: unknown architecture {network['architecture']!r} "
                          f"(known: {', '.join(architectures.NAMES)})")
    return network


def build_generator(network):
    """A freshly initialised generator from a network.json dict."""
    generator_class = architectures.get(network["architecture"]).generator_class
    config = dict(network["generator"])
    try:
        return generator_class.from_config(config)
    except (TypeError, ValueError) as error:
        raise ExportError(f"network.json: generator config rejected by {generator_class.__name__}: "
                          f"{error}") from error


def load_generator(path, raw=False):
    """Rebuild and restore the generator of a run.

    path: run directory, its checkpoints/ directory, or a checkpoint prefix.
    raw: restore the trained generator (`generator`) instead of its moving average
        (`generator_ema`).
    Returns (generator, RunCheckpoint).
    """
    location = locate_checkpoint(path)
    generator = build_generator(read_network_json(location.run_dir))
    key = "generator" if raw else "generator_ema"
    status = tf.train.Checkpoint(**{key: generator}).read(location.checkpoint).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as error:
        raise ExportError(f"{location.checkpoint}: does not hold the {key!r} network described "
                          f"by network.json ({str(error).splitlines()[0]})") from error
    return generator, location


def read_flags(run_dir):
    """`<run dir>/flags.json`, or None when the run has none."""
    path = os.path.join(run_dir, FLAGS_JSON)
    return _read_json(path) if os.path.isfile(path) else None


def read_last_metrics(run_dir):
    """The last record of each metric in `<run dir>/metrics.jsonl`: {name: record}. Lines that
    are not JSON objects (e.g. one cut short by a crash) are skipped with a warning."""
    path = os.path.join(run_dir, METRICS_JSONL)
    last = {}
    if not os.path.isfile(path):
        return last
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or "metric" not in record:
                print(f"warning: {path}:{number}: skipped, not a metrics record", file=sys.stderr)
                continue
            last[str(record["metric"])] = record
    return last


def read_training_kimg(checkpoint):
    """Training progress stored in the checkpoint (a variable named kimg/cur_kimg, or
    images_seen/cur_nimg/nimg divided by 1000, at any depth); None when there is none."""
    reader = tf.train.load_checkpoint(checkpoint)
    for key in sorted(reader.get_variable_to_shape_map()):
        if not key.endswith("/.ATTRIBUTES/VARIABLE_VALUE") or ".OPTIMIZER_SLOT" in key:
            continue
        name = key[:-len("/.ATTRIBUTES/VARIABLE_VALUE")].split("/")[-1]
        if name in _KIMG_KEYS:
            value = reader.get_tensor(key)
            if getattr(value, "shape", ()) == ():
                return float(value) * _KIMG_KEYS[name]
    return None


def run_meta(location, raw=False):
    """What `serving_meta.json` records about the run behind a RunCheckpoint."""
    return {
        "training_kimg": read_training_kimg(location.checkpoint),
        "flags": read_flags(location.run_dir),
        "metrics": read_last_metrics(location.run_dir),
        "network": "generator" if raw else "generator_ema",
        "source_checkpoint": os.path.basename(location.checkpoint),
    }


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}: not valid JSON ({error})") from error
    except OSError as error:
        raise ExportError(f"{path}: cannot be read ({error.strerror})") from error
