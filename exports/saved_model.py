"""Writing a generator as a versioned SavedModel for TF Serving through
`keras.export.ExportArchive`: `<out_dir>/<model name>/<version>/saved_model.pb + variables/
+ assets.extra/serving_meta.json`.

A version is written into a temporary directory beside the versions (its name is not an
integer, so TF Serving ignores it) and renamed to 1 + the largest existing version; an
existing version is never written into or replaced.
"""

import datetime
import json
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from exports.run_dir import ExportError
from progan_tf import architectures
from progan_tf import serving as signatures_lib
from progan_tf.training.run_dir import write_failure_reason
# existing_versions and latest_version_dir are part of the `exports` API (exports/__init__.py).
from progan_tf.utils.files import existing_versions, latest_version_dir  # noqa: F401

META_FILENAME = "serving_meta.json"
META_DIR = "assets.extra"  # TF Serving's place for files that travel with a version
_TEMP_PREFIX = "tmp-export-"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def export_generator(generator, out_dir, model_name="generator", meta=None, *, resolution=None,
                     endpoints=None, verbose=False):
    """Export `generator` as the next version of `<out_dir>/<model_name>/`.

    generator: a progan_tf.networks.Generator, or any object with .model_for(res), .resolution,
        .latent_size, .label_size, .num_channels (an `architecture` attribute selects another
        endpoint table, the architecture registry's `endpoints`).
    out_dir: directory holding one directory per model name (training uses
        `<run dir>/export`); created when missing.
    model_name: TF Serving model name, e.g. "generator" (letters, digits, ".", "_", "-").
    meta: extra JSON-able entries for serving_meta.json, e.g. {"training_kimg": 1200.0,
        "flags": {...}, "metrics": {...}}; they take precedence over the computed ones.
    resolution: resolution to export, default the generator's final one.
    endpoints: an explicit endpoint table (list of signatures.Endpoint); default
        architectures.of(generator).endpoints(generator, resolution).
    verbose: let ExportArchive print the endpoints it wrote.

    Returns the path of the new version directory `<out_dir>/<model_name>/<version>`.
    """
    if not isinstance(model_name, str) or not _MODEL_NAME.match(model_name) or model_name.isdigit():
        raise ExportError(f"model_name must be letters, digits, '.', '_' or '-' and not a pure "
                          f"number, received {model_name!r}")
    resolution = resolution or generator.resolution
    if endpoints is None:
        endpoints = architectures.of(generator).endpoints(generator, resolution)
    names = [endpoint.name for endpoint in endpoints]
    if "serving_default" not in names or len(set(names)) != len(names):
        raise ValueError(f"endpoints need distinct names including 'serving_default', "
                         f"received {names}")

    archive = keras.export.ExportArchive()
    traced = {}
    for endpoint in endpoints:
        function = archive.add_endpoint(endpoint.name, endpoint.positional_fn(),
                                        input_signature=list(endpoint.inputs))
        traced[endpoint.name] = function.get_concrete_function()

    model_dir = os.path.join(os.fspath(out_dir), model_name)
    temp_dir = None
    try:
        os.makedirs(model_dir, exist_ok=True)
        temp_dir = tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=model_dir)
        archive.write_out(temp_dir, verbose=verbose)
        serving_meta = {
            **generator_meta(generator, resolution),
            "model_name": model_name,
            "signatures": describe_signatures(endpoints, traced),
            "seed_rule": signatures_lib.SEED_RULE,
            "image_rule": signatures_lib.IMAGE_RULE,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            **(meta or {}),
        }
        meta_dir = os.path.join(temp_dir, META_DIR)
        os.makedirs(meta_dir, exist_ok=True)
        with open(os.path.join(meta_dir, META_FILENAME), "w", encoding="utf-8") as file:
            json.dump(serving_meta, file, indent=2, sort_keys=True, default=_json_fallback)
            file.write("\n")
        return _publish(temp_dir, model_dir)
    except (OSError, tf.errors.OpError) as error:  # a full disk, no permission
        raise ExportError(f"cannot write a new version into {model_dir} (disk full or not "
                          f"writable?): {write_failure_reason(error)}; no version was "
                          f"published, the existing ones are untouched") from None
    finally:
        if temp_dir is not None and os.path.isdir(temp_dir):
            shutil.rmtree(temp_dir, ignore_errors=True)


def _publish(temp_dir, model_dir):
    """Rename `temp_dir` to the next free integer version; never onto an existing entry."""
    version = max(existing_versions(model_dir), default=0) + 1
    while True:
        target = os.path.join(model_dir, str(version))
        if not os.path.lexists(target):
            try:
                os.rename(temp_dir, target)
                return target
            except OSError:
                # An exporter running beside this one took `version` between the check and the
                # rename (a non-empty directory cannot be replaced); try the next one.
                if not os.path.lexists(target):
                    raise
        version += 1


def generator_meta(generator, resolution):
    """Shape facts about the exported generator for serving_meta.json."""
    meta = {
        "architecture": architectures.of(generator).name,
        "resolution": int(resolution),
        "num_channels": int(generator.num_channels),
        "latent_size": int(generator.latent_size),
        "label_size": int(generator.label_size),
        "conditional": bool(generator.label_size),
        "fade_alpha": float(keras.ops.convert_to_numpy(generator.fade_alpha)),
        "generator_config": generator.get_config(),
    }
    return meta


def describe_signatures(endpoints, traced):
    """{name: {"description", "inputs": {name: {dtype, shape}}, "outputs": {...}}}, shapes with
    -1 for the batch dimension as `saved_model_cli show` prints them."""

    def spec_json(spec):
        return {"dtype": spec.dtype.name, "shape": [-1 if d is None else int(d) for d in spec.shape]}

    described = {}
    for endpoint in endpoints:
        outputs = traced[endpoint.name].structured_outputs
        described[endpoint.name] = {
            "description": endpoint.description,
            "inputs": {spec.name: spec_json(spec) for spec in endpoint.inputs},
            "outputs": {name: spec_json(tf.TensorSpec.from_tensor(tensor))
                        for name, tensor in sorted(outputs.items())},
        }
    return described


def _json_fallback(value):
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return str(value)
