"""`create_mnist` / `create_mnistrgb`: IDX files (MNIST, Fashion-MNIST), plain or gzipped.

As the original: 28x28 digits zero-padded by 2 px to 1x32x32, one-hot labels, records in
RandomState(123) order; `create_mnistrgb` stacks 3 random digits as R, G, B (no labels).
"""

import gzip
import os
import zlib

import numpy as np

from data_tools.errors import DataError
from data_tools.pyramid import one_hot, original_order
from data_tools.sources import write_pyramid

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLITS = ("train", "t10k", "all")


def read_idx(path):
    """The array stored in an IDX file (`.gz` is decompressed); DataError naming the file if bad."""
    try:
        if str(path).endswith(".gz"):
            with gzip.open(path, "rb") as file:
                content = file.read()
        else:
            with open(path, "rb") as file:
                content = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = content[3]
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(content[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_DTYPES[content[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(content) - header != expected:
        raise DataError(f"{path}: IDX data holds {len(content) - header} bytes, dimensions {dims} need {expected}")
    return np.frombuffer(content, dtype, offset=header).reshape(dims)


def find_idx(mnist_dir, stem):
    """Path of `<stem>` or `<stem>.gz` in mnist_dir; DataError if neither exists."""
    for name in (stem + ".gz", stem):
        path = os.path.join(mnist_dir, name)
        if os.path.isfile(path):
            return path
    raise DataError(f"{os.path.join(mnist_dir, stem)}(.gz): not found")


def load_mnist(mnist_dir, split="train"):
    """uint8 [N, 28, 28] images and uint8 [N] class ids of one split ("all" = train then t10k)."""
    if not os.path.isdir(mnist_dir):
        raise DataError(f"{mnist_dir}: MNIST folder not found (not a directory)")
    if split not in SPLITS:
        raise DataError(f"--split {split}: must be one of {', '.join(SPLITS)}")
    parts = ("train", "t10k") if split == "all" else (split,)
    images, labels = [], []
    for part in parts:
        image_path = find_idx(mnist_dir, f"{part}-images-idx3-ubyte")
        label_path = find_idx(mnist_dir, f"{part}-labels-idx1-ubyte")
        part_images, part_labels = read_idx(image_path), read_idx(label_path)
        if part_images.ndim != 3 or part_images.shape[1:] != (28, 28) or part_images.dtype != np.uint8:
            raise DataError(f"{image_path}: expected uint8 images [N, 28, 28], found "
                            f"{part_images.dtype} {list(part_images.shape)}")
        if part_labels.shape != (part_images.shape[0],):
            raise DataError(f"{label_path}: {part_labels.size} labels for {part_images.shape[0]} images")
        images.append(part_images)
        labels.append(part_labels)
    return np.concatenate(images), np.concatenate(labels)


def pad_to_32(images):
    """uint8 [N, 28, 28] -> [N, 1, 32, 32], 2 zero pixels on each side."""
    return np.pad(images[:, None], [(0, 0), (0, 0), (2, 2), (2, 2)], constant_values=0)


def create_mnist(tfrecord_dir, mnist_dir, *, split="train", overwrite=False, command="create_mnist",
                 manifest=None, hash_files=False):
    """Pyramid 1x32x32 with one-hot labels from IDX files. Returns the manifest written."""
    images, class_ids = load_mnist(mnist_dir, split)
    images = pad_to_32(images)
    labels = one_hot(class_ids)
    order = original_order(len(images))
    return write_pyramid(tfrecord_dir, (images[i] for i in order), len(images), labels=labels[order],
                         overwrite=overwrite, hash_files=hash_files,
                         manifest={"command": command, "source": os.fspath(mnist_dir), "split": split,
                                   **(manifest or {})})


def create_mnistrgb(tfrecord_dir, mnist_dir, *, num_images=1000000, random_seed=123, overwrite=False):
    """Pyramid 3x32x32 of random digit triples (R, G, B), as the original; no labels."""
    if num_images < 1:
        raise DataError(f"--num_images {num_images}: must be >= 1")
    images, _ = load_mnist(mnist_dir, "train")
    images = pad_to_32(images)[:, 0]
    rng = np.random.RandomState(random_seed)

    def triples():
        for _ in range(num_images):
            yield images[rng.randint(images.shape[0], size=3)]

    return write_pyramid(tfrecord_dir, triples(), num_images, overwrite=overwrite,
                         manifest={"command": "create_mnistrgb", "source": os.fspath(mnist_dir),
                                   "random_seed": random_seed})
