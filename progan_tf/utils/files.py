"""Files written atomically (`write_atomic`, `write_json_atomic`) and the numbered version
directories of a TF Serving model directory (`existing_versions`, `latest_version_dir`,
`find_saved_model`)."""

import json
import os
import tempfile

SAVED_MODEL_FILE = "saved_model.pb"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, data):
    """Writes bytes to a temporary file in the same directory, fsyncs it, then renames it over
    `path`: readers see the old file or the new one, never a part, also after a crash.
    Permissions follow the umask as for a plain open()."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def write_json_atomic(path, value):
    """`value` as indented JSON with sorted keys and a final newline, written atomically."""
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def existing_versions(model_dir, marker=None):
    """Integer version directories under `model_dir` (what TF Serving would load), ascending;
    with `marker` (a file name such as SAVED_MODEL_FILE) only those holding that file."""
    if not os.path.isdir(model_dir):
        return []
    versions = []
    for name in os.listdir(model_dir):
        path = os.path.join(model_dir, name)
        if name.isdigit() and os.path.isdir(path) and (
                marker is None or os.path.isfile(os.path.join(path, marker))):
            versions.append(int(name))
    return sorted(versions)


def latest_version_dir(model_dir, marker=None):
    """Path of the largest integer version under `model_dir` (holding `marker` if given), or
    None."""
    versions = existing_versions(model_dir, marker)
    return os.path.join(model_dir, str(versions[-1])) if versions else None


def find_saved_model(path):
    """`path` when it is a SavedModel directory, else its latest numbered version holding a
    saved_model.pb, else None."""
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    return latest_version_dir(path, SAVED_MODEL_FILE)
