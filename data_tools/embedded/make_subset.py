"""Makes the embedded Fashion-MNIST subset from the full training set (run once; output is committed).

    apt-get install dataset-fashion-mnist        # Debian package, MIT licence (Zalando SE)
    python data_tools/embedded/make_subset.py /usr/share/datasets/fashion-mnist data_tools/embedded

Keeps the first PER_CLASS images of each of the 10 classes of `train-*-idx*-ubyte.gz`, in their
original file order, and writes them as IDX files gzipped with a zero timestamp, so the output is
byte-for-byte reproducible and `python -m data_tools create_mnist` reads it as it reads MNIST.
"""

import argparse
import gzip
import os
import struct

import numpy as np

PER_CLASS = 1200
NUM_CLASSES = 10


def read_idx_gz(path):
    with gzip.open(path, "rb") as file:
        content = file.read()
    ndim = content[3]
    dims = struct.unpack(f">{ndim}I", content[4:4 + 4 * ndim])
    return np.frombuffer(content, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx_gz(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                               compresslevel=9) as file:
        file.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def class_balanced_indices(labels, per_class):
    """Sorted indices of the first `per_class` examples of each class."""
    picked = [np.flatnonzero(labels == label)[:per_class] for label in range(NUM_CLASSES)]
    if any(len(indices) < per_class for indices in picked):
        raise SystemExit(f"fewer than {per_class} images in some class")
    return np.sort(np.concatenate(picked))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source_dir", help="folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz")
    parser.add_argument("output_dir", help="where to write the subset")
    parser.add_argument("--per_class", type=int, default=PER_CLASS, help="images kept per class")
    args = parser.parse_args()
    images = read_idx_gz(os.path.join(args.source_dir, "train-images-idx3-ubyte.gz"))
    labels = read_idx_gz(os.path.join(args.source_dir, "train-labels-idx1-ubyte.gz"))
    keep = class_balanced_indices(labels, args.per_class)
    write_idx_gz(os.path.join(args.output_dir, "train-images-idx3-ubyte.gz"), images[keep])
    write_idx_gz(os.path.join(args.output_dir, "train-labels-idx1-ubyte.gz"), labels[keep])
    print(f"kept {len(keep)} of {len(labels)} images ({args.per_class} per class)")


if __name__ == "__main__":
    main()
