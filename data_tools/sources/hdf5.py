"""`create_from_hdf5`: the legacy (Theano-era) HDF5 archive -> pyramid.

As the original: of the datasets whose name starts with "data", the one with the largest
resolution (uint8 [N, C, H, W]); labels from `<archive without extension>-labels.npy` if present;
records shuffled with RandomState(123) when `shuffle` (default). h5py is imported only here.
"""

import os

import numpy as np

from data_tools.errors import DataError
from data_tools.pyramid import load_labels, original_order
from data_tools.sources import require_file, write_pyramid


def create_from_hdf5(tfrecord_dir, hdf5_filename, *, shuffle=True, overwrite=False):
    require_file(hdf5_filename, "HDF5 archive")
    try:
        import h5py  # noqa: PLC0415
    except ImportError:
        raise DataError("create_from_hdf5 needs the h5py package: pip install h5py") from None
    try:
        archive = h5py.File(hdf5_filename, "r")
    except OSError as error:
        raise DataError(f"{hdf5_filename}: not a readable HDF5 file ({error})") from None
    with archive:
        candidates = [value for key, value in archive.items()
                      if key.startswith("data") and isinstance(value, h5py.Dataset) and value.ndim == 4]
        if not candidates:
            raise DataError(f"{hdf5_filename}: no 4-D dataset named data* (expected [N, C, H, W] images)")
        data = max(candidates, key=lambda dataset: dataset.shape[3])
        num_images = data.shape[0]
        labels = None
        labels_path = os.path.splitext(hdf5_filename)[0] + "-labels.npy"
        if os.path.isfile(labels_path):
            labels = load_labels(labels_path, num_images)
        order = original_order(num_images) if shuffle else np.arange(num_images)

        def images():
            for index in order:
                yield data[index]

        return write_pyramid(
            tfrecord_dir, images(), num_images, labels=None if labels is None else labels[order],
            overwrite=overwrite,
            manifest={"command": "create_from_hdf5", "source": os.fspath(hdf5_filename),
                      "dataset": data.name, "shuffle": bool(shuffle)})
