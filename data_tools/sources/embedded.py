"""`create_embedded`: the Fashion-MNIST subset shipped in `data_tools/embedded/` -> 1x32x32 pyramid.

Built like `create_mnist` (2-px padding, one-hot labels of 10 classes, RandomState(123) order).
The manifest stores the SHA-256 of the inputs and of every file written, so running the command
again on an identical pyramid only re-checks those hashes (well under a second) and succeeds.
"""

import os

from data_tools.errors import DataError
from data_tools.pyramid import MANIFEST_NAME, file_sha256
from data_tools.sources.mnist import create_mnist

EMBEDDED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "embedded")
INPUT_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
COMMAND = "create_embedded"
# The directory name of the embedded set (the quickstart's --data_dir ends in it): the trainer's
# --create_embedded_data builds it only at a path whose last part is this name.
DIRECTORY_NAME = "fashion-mnist-32"
BUILD_VERSION = 1  # bump when the records this command writes change


def input_hashes(embedded_dir=EMBEDDED_DIR):
    hashes = {"build_version": BUILD_VERSION}
    for name in INPUT_FILES:
        path = os.path.join(embedded_dir, name)
        if not os.path.isfile(path):
            raise DataError(f"{path}: embedded dataset file missing (is the package installed completely?)")
        hashes[name] = file_sha256(path)
    return hashes


def existing_matches(tfrecord_dir, inputs):
    """None if `tfrecord_dir` holds exactly the pyramid these inputs give, else the reason it does not."""
    import json  # noqa: PLC0415

    manifest_path = os.path.join(tfrecord_dir, MANIFEST_NAME)
    try:
        with open(manifest_path, encoding="utf-8") as file:
            manifest = json.load(file)
    except (OSError, ValueError):
        return f"no readable {MANIFEST_NAME}"
    if manifest.get("command") != COMMAND or manifest.get("inputs") != inputs:
        return "it was made from other inputs"
    expected = set(manifest.get("files", {})) | {MANIFEST_NAME}
    present = set(os.listdir(tfrecord_dir))
    if present != expected:
        return f"its files differ ({', '.join(sorted(present ^ expected))})"
    for name, size in manifest["files"].items():
        path = os.path.join(tfrecord_dir, name)
        if os.path.getsize(path) != size or file_sha256(path) != manifest.get("sha256", {}).get(name):
            return f"{name} was changed"
    return None


def create_embedded(tfrecord_dir, *, overwrite=False, embedded_dir=EMBEDDED_DIR):
    """Builds (or confirms) the embedded pyramid. Returns the manifest, with "up_to_date" True when
    an identical pyramid was already there."""
    inputs = input_hashes(embedded_dir)
    tfrecord_dir = os.path.normpath(os.fspath(tfrecord_dir))
    if os.path.isdir(tfrecord_dir) and os.listdir(tfrecord_dir):
        reason = existing_matches(tfrecord_dir, inputs)
        if reason is None:
            import json  # noqa: PLC0415

            with open(os.path.join(tfrecord_dir, MANIFEST_NAME), encoding="utf-8") as file:
                manifest = json.load(file)
            manifest["up_to_date"] = True
            return manifest
        if not overwrite:
            raise DataError(f"{tfrecord_dir}: already exists and is not the embedded pyramid ({reason}); "
                            "pass --overwrite to rebuild it")
    manifest = create_mnist(tfrecord_dir, embedded_dir, split="train", overwrite=overwrite, command=COMMAND,
                            manifest={"inputs": inputs, "source": "data_tools/embedded"}, hash_files=True)
    manifest["up_to_date"] = False
    return manifest
