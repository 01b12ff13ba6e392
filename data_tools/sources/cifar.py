"""`create_cifar10` / `create_cifar100`: the binary or the python release -> 3x32x32 + one-hot labels.

The folder may be the release folder itself (`cifar-10-batches-bin`, `cifar-10-batches-py`,
`cifar-100-binary`, `cifar-100-python`) or the folder that contains it. Python pickles are read by
`progan_tf.utils.safe_pickle`, which never executes pickled code. Records in RandomState(123) order.
"""

import os

import numpy as np

from data_tools.errors import DataError
from data_tools.pyramid import one_hot, original_order
from data_tools.sources import load_pickle, require_dir, write_pyramid

_CIFAR10_DIRS = ("cifar-10-batches-py", "cifar-10-batches-bin")
_CIFAR100_DIRS = ("cifar-100-python", "cifar-100-binary")
_PIXELS = 3 * 32 * 32


def _locate(root, candidates, probe):
    """The folder among root and root/<candidate> that holds `probe`, else DataError."""
    for folder in (root,) + tuple(os.path.join(root, name) for name in candidates):
        if os.path.exists(os.path.join(folder, probe)) or os.path.exists(os.path.join(folder, probe + ".bin")):
            return folder
    raise DataError(f"{root}: no {probe} or {probe}.bin found (also looked in {', '.join(candidates)})")


def _read_binary(path, label_bytes):
    """uint8 [N, 3, 32, 32] images and uint8 [N, label_bytes] labels of a binary batch file."""
    try:
        with open(path, "rb") as file:
            content = np.frombuffer(file.read(), np.uint8)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    record = label_bytes + _PIXELS
    if content.size == 0 or content.size % record:
        raise DataError(f"{path}: {content.size} bytes is not a whole number of {record}-byte records "
                        "(truncated file?)")
    rows = content.reshape(-1, record)
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), rows[:, :label_bytes]


def _pickle_dict(path):
    value = load_pickle(path)
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(value).__name__}")
    return {key.decode("latin1") if isinstance(key, bytes) else key: item for key, item in value.items()}


def _pickle_images(path, content, label_key):
    for key in ("data", label_key):
        if key not in content:
            raise DataError(f"{path}: the pickled dict has no {key!r} entry")
    data = np.asarray(content["data"])
    labels = np.asarray(content[label_key]).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(f"{path}: 'data' must be uint8 [N, 3072], found {data.dtype} {list(data.shape)}")
    if labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: {labels.shape[0]} {label_key} for {data.shape[0]} images")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(cifar10_dir):
    """uint8 [N, 3, 32, 32] images and int [N] class ids of the five training batches."""
    require_dir(cifar10_dir, "CIFAR-10 folder")
    folder = _locate(cifar10_dir, _CIFAR10_DIRS, "data_batch_1")
    images, labels = [], []
    for batch in range(1, 6):
        path = os.path.join(folder, f"data_batch_{batch}")
        if os.path.isfile(path):
            batch_images, batch_labels = _pickle_images(path, _pickle_dict(path), "labels")
        elif os.path.isfile(path + ".bin"):
            batch_images, batch_labels = _read_binary(path + ".bin", 1)
            batch_labels = batch_labels[:, 0]
        else:
            raise DataError(f"{path}: CIFAR-10 batch not found (nor {path}.bin)")
        images.append(batch_images)
        labels.append(batch_labels.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_cifar100(cifar100_dir):
    """uint8 [N, 3, 32, 32] images and int [N] fine class ids of the training set."""
    require_dir(cifar100_dir, "CIFAR-100 folder")
    folder = _locate(cifar100_dir, _CIFAR100_DIRS, "train")
    path = os.path.join(folder, "train")
    if os.path.isfile(path):
        images, labels = _pickle_images(path, _pickle_dict(path), "fine_labels")
    else:
        images, labels = _read_binary(path + ".bin", 2)
        labels = labels[:, 1]  # coarse label first, then fine
    return images, labels.astype(np.int64)


def _create(tfrecord_dir, source, images, class_ids, command, overwrite):
    labels = one_hot(class_ids)
    order = original_order(len(images))
    return write_pyramid(tfrecord_dir, (images[i] for i in order), len(images), labels=labels[order],
                         overwrite=overwrite, manifest={"command": command, "source": os.fspath(source)})


def create_cifar10(tfrecord_dir, cifar10_dir, *, overwrite=False):
    images, class_ids = load_cifar10(cifar10_dir)
    return _create(tfrecord_dir, cifar10_dir, images, class_ids, "create_cifar10", overwrite)


def create_cifar100(tfrecord_dir, cifar100_dir, *, overwrite=False):
    images, class_ids = load_cifar100(cifar100_dir)
    return _create(tfrecord_dir, cifar100_dir, images, class_ids, "create_cifar100", overwrite)
