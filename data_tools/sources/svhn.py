"""`create_svhn`: the original's pickled SVHN batches `train_1.pkl` .. `train_3.pkl`, each a tuple
(uint8 [n, 3, 32, 32] images, [n] class ids), read without running pickled code (`load_pickle`)
-> 3x32x32 + one-hot labels."""

import os

import numpy as np

from data_tools.errors import DataError
from data_tools.pyramid import one_hot, original_order
from data_tools.sources import load_pickle, require_dir, require_file, write_pyramid


def load_svhn(svhn_dir):
    require_dir(svhn_dir, "SVHN folder")
    images, labels = [], []
    for batch in range(1, 4):
        path = require_file(os.path.join(svhn_dir, f"train_{batch}.pkl"), "SVHN batch")
        value = load_pickle(path)
        if not isinstance(value, (tuple, list)) or len(value) < 2:
            raise DataError(f"{path}: expected a pickled (images, labels) pair")
        batch_images, batch_labels = np.asarray(value[0]), np.asarray(value[1]).reshape(-1)
        if batch_images.dtype != np.uint8 or batch_images.ndim != 4 or batch_images.shape[1:] != (3, 32, 32):
            raise DataError(f"{path}: images must be uint8 [n, 3, 32, 32], found "
                            f"{batch_images.dtype} {list(batch_images.shape)}")
        if batch_labels.shape[0] != batch_images.shape[0]:
            raise DataError(f"{path}: {batch_labels.shape[0]} labels for {batch_images.shape[0]} images")
        images.append(batch_images)
        labels.append(batch_labels.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def create_svhn(tfrecord_dir, svhn_dir, *, overwrite=False):
    images, class_ids = load_svhn(svhn_dir)
    labels = one_hot(class_ids)
    order = original_order(len(images))
    return write_pyramid(tfrecord_dir, (images[i] for i in order), len(images), labels=labels[order],
                         overwrite=overwrite, manifest={"command": "create_svhn", "source": os.fspath(svhn_dir)})
