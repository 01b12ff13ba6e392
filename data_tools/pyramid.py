"""The multi-resolution layout: level files, the level arithmetic, `open_pyramid` and `PyramidWriter`.

A pyramid directory `D/` holds `D/<basename(D)>-rXX.tfrecords` for XX = log2 of 4, 8, ..., R
(record i is the same image in every file) and optionally `D/<basename(D)>-rxx.labels`, an `.npy`
float32 [N, L]. Level R is the input rounded and clipped to uint8; each lower level is the 2x2 box
mean in float32 of the *unrounded* level above, rounded half to even (`np.rint`) and clipped only
when stored. Files made by the original `dataset_tool.py` open unchanged.
"""

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import types

import numpy as np

from data_tools import records
from data_tools.errors import DataError
from progan_tf.utils.resolution import is_resolution

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "progan-multires-tfrecords"
_LEVEL_NAME = re.compile(r"-r(\d\d)\.tfrecords$")


def level_file_name(basename, resolution):
    """`<basename>-rXX.tfrecords`, XX = %02d of log2(resolution)."""
    return f"{basename}-r{int(resolution).bit_length() - 1:02d}.tfrecords"


def labels_file_name(basename):
    return f"{basename}-rxx.labels"


def build_levels(images):
    """All pyramid levels of a batch, top first, as the original computes them.

    images: [B, C, R, R] uint8 (or float, rounded and clipped for the top level), R a power of two
    >= 4. Returns [uint8 [B, C, R, R], uint8 [B, C, R/2, R/2], ..., uint8 [B, C, 4, 4]].
    """
    images = np.asarray(images)
    resolution = images.shape[-1]
    if images.ndim != 4 or images.shape[-2] != resolution or not is_resolution(resolution):
        raise ValueError(f"images must be [B, C, R, R] with R a power of two >= 4, got {images.shape}")
    levels = [images.copy() if images.dtype == np.uint8 else np.rint(images).clip(0, 255).astype(np.uint8)]
    current = images
    while current.shape[-1] > 4:
        current = current.astype(np.float32, copy=False)
        # Same float32 operations in the same order as the original: ((a + b) + c) + d, then * 0.25.
        mean = current[:, :, 0::2, 0::2] + current[:, :, 0::2, 1::2]
        mean += current[:, :, 1::2, 0::2]
        mean += current[:, :, 1::2, 1::2]
        mean *= np.float32(0.25)
        current = mean
        stored = np.rint(mean)
        np.clip(stored, 0, 255, out=stored)
        levels.append(stored.astype(np.uint8))
    return levels


def original_order(num_images):
    """Record order of the original `create_*` commands: RandomState(123).shuffle(arange(N))."""
    order = np.arange(num_images)
    np.random.RandomState(123).shuffle(order)
    return order


def one_hot(class_ids):
    """float32 [N, max(class_ids) + 1] one-hot rows, as the original builds labels."""
    class_ids = np.asarray(class_ids).astype(np.int64).reshape(-1)
    labels = np.zeros((class_ids.size, int(class_ids.max()) + 1), np.float32)
    labels[np.arange(class_ids.size), class_ids] = 1.0
    return labels


def load_labels(path, num_images=None):
    """float32 [N, L] from an `.npy` labels file (pickle disabled); DataError naming the file."""
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy labels file ({error})") from None
    if labels.ndim != 2:
        raise DataError(f"{path}: labels must be 2-D [N, L], found shape {list(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.number):
        raise DataError(f"{path}: labels must be numeric, found dtype {labels.dtype}")
    if num_images is not None and labels.shape[0] != num_images:
        raise DataError(f"{path}: {labels.shape[0]} label rows for {num_images} images")
    return labels.astype(np.float32, copy=False)


@dataclasses.dataclass(frozen=True, eq=False)
class Pyramid:
    """An opened pyramid directory; every level file's framing and first record were checked.

    data_dir:     the directory.
    resolution:   R, side of the top level.
    num_channels: C, 1 or 3.
    num_images:   N, records per level file.
    levels:       read-only mapping resolution -> level file path, for 4, 8, ..., R.
    labels:       float32 [N, L] or None.
    labels_path:  the labels file or None.
    indexes:      read-only mapping resolution -> records.RecordIndex.
    """

    data_dir: str
    resolution: int
    num_channels: int
    num_images: int
    levels: types.MappingProxyType
    labels: np.ndarray | None
    labels_path: str | None
    indexes: types.MappingProxyType = dataclasses.field(repr=False)

    @property
    def label_size(self):
        """L, label columns (0 without labels)."""
        return 0 if self.labels is None else int(self.labels.shape[1])

    @property
    def resolutions(self):
        """(4, 8, ..., R)."""
        return tuple(sorted(self.levels))

    def shape(self, resolution):
        """[C, H, W] of the records at `resolution`."""
        self.check_resolution(resolution)
        return (self.num_channels, resolution, resolution)

    def check_resolution(self, resolution):
        if resolution not in self.levels:
            raise DataError(f"{self.data_dir}: no level for resolution {resolution}; "
                            f"levels are {list(self.resolutions)}")

    def open_level(self, resolution):
        """records.RecordFile for random access to the level at `resolution`."""
        self.check_resolution(resolution)
        return records.RecordFile(self.indexes[resolution])

    def manifest(self):
        """The manifest written beside the level files by data_tools, or None."""
        path = os.path.join(self.data_dir, MANIFEST_NAME)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as file:
                return json.load(file)
        except (OSError, ValueError):
            return None


def _first_shape(index):
    with records.RecordFile(index) as level:
        shape = level.image(0).shape
    return shape


def open_pyramid(data_dir):
    """Pyramid of a directory of level files (ours or the original tool's).

    Raises DataError naming the file when a directory or level file is missing, a file is not a
    TFRecord file of image Examples, or files disagree (channel counts, record counts, labels rows).
    """
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: not a directory (expected a pyramid of <name>-rXX.tfrecords files)")
    paths = sorted(glob.glob(os.path.join(glob.escape(data_dir), "*.tfrecords")))
    if not paths:
        raise DataError(f"{data_dir}: no .tfrecords files (expected <name>-rXX.tfrecords levels)")
    levels, indexes, shapes = {}, {}, {}
    for path in paths:
        index = records.scan_record_index(path)
        if len(index) == 0:
            raise DataError(f"{path}: holds no records")
        shape = _first_shape(index)
        channels, height, width = shape
        if channels not in (1, 3) or height != width or not is_resolution(height):
            raise DataError(f"{path}: records have shape {list(shape)}; expected [C, R, R] with C 1 or 3 "
                            "and R a power of two >= 4")
        match = _LEVEL_NAME.search(os.path.basename(path))
        if match and 2 ** int(match.group(1)) != height:
            raise DataError(f"{path}: the name says {2 ** int(match.group(1))}x{2 ** int(match.group(1))} "
                            f"but the records are {height}x{width}")
        if height in levels:
            raise DataError(f"{path}: a second level file for {height}x{height} (the first is {levels[height]})")
        levels[height], indexes[height], shapes[height] = path, index, shape
    resolution = max(levels)
    top = levels[resolution]
    prefix = top[:-len(".tfrecords")]
    prefix = prefix[:-4] if _LEVEL_NAME.search(os.path.basename(top)) else prefix
    expected = [4 << k for k in range(resolution.bit_length() - 2)]
    for level in expected:
        if level not in levels:
            missing = f"{prefix}-r{level.bit_length() - 1:02d}.tfrecords"
            raise DataError(f"{missing}: missing level file for {level}x{level} "
                            f"(the top level {top} is {resolution}x{resolution})")
    num_channels, num_images = shapes[resolution][0], len(indexes[resolution])
    for level in expected:
        if shapes[level][0] != num_channels:
            raise DataError(f"{levels[level]}: {shapes[level][0]} channels, but {top} has {num_channels}")
        if len(indexes[level]) != num_images:
            raise DataError(f"{levels[level]}: {len(indexes[level])} records, but {top} has {num_images}")
    labels = labels_path = None
    label_paths = sorted(glob.glob(os.path.join(glob.escape(data_dir), "*.labels")))
    if label_paths:
        labels_path = label_paths[0]
        labels = load_labels(labels_path, num_images)
        labels.setflags(write=False)
    return Pyramid(data_dir=data_dir, resolution=resolution, num_channels=num_channels,
                   num_images=num_images,
                   levels=types.MappingProxyType({k: levels[k] for k in expected}),
                   labels=labels, labels_path=labels_path,
                   indexes=types.MappingProxyType({k: indexes[k] for k in expected}))


# --- writing ------------------------------------------------------------------------------------

_PYRAMID_FILE = re.compile(r".*(\.tfrecords|\.labels)$|^" + re.escape(MANIFEST_NAME) + "$")


def check_output_dir(output_dir, overwrite, owned=_PYRAMID_FILE.match, what="part of a pyramid"):
    """DataError unless `output_dir` is absent, empty, or (with overwrite) holds only files this
    tool wrote there: names for which `owned(name)` is true (default: a pyramid's files)."""
    if not os.path.exists(output_dir):
        return
    if not os.path.isdir(output_dir):
        raise DataError(f"{output_dir}: exists and is not a directory")
    entries = os.listdir(output_dir)
    if not entries:
        return
    if not overwrite:
        raise DataError(f"{output_dir}: already exists and is not empty; pass --overwrite to replace it")
    others = sorted(name for name in entries if not owned(name))
    if others:
        raise DataError(f"{output_dir}: --overwrite refused, the directory holds files that are not "
                        f"{what} ({', '.join(others[:3])})")


def file_sha256(path, chunk_bytes=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def replace_dir(staging_dir, final_dir):
    """Moves a finished staging directory to `final_dir`, replacing whatever is there."""
    old = None
    if os.path.lexists(final_dir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(final_dir)}.old-",
                               dir=os.path.dirname(final_dir) or ".")
        os.rename(final_dir, os.path.join(old, "d"))
    os.rename(staging_dir, final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class PyramidWriter:
    """Writes a pyramid into a hidden staging directory and moves it into place on `commit()`.

    An interrupted or failed create leaves no directory that looks like a finished pyramid: the
    staging directory `.<name>.partial-*` beside the target is removed on error (`with` block or
    `abort()`). Records are added in final order with `add(images)`, images uint8 [B, C, R, R].
    """

    def __init__(self, tfrecord_dir, *, overwrite=False):
        self.tfrecord_dir = os.path.normpath(os.fspath(tfrecord_dir))
        self.basename = os.path.basename(self.tfrecord_dir)
        if not self.basename or self.basename in (".", ".."):
            raise DataError(f"{tfrecord_dir}: give the pyramid directory a name (it names the files)")
        check_output_dir(self.tfrecord_dir, overwrite)
        parent = os.path.dirname(self.tfrecord_dir) or "."
        try:
            os.makedirs(parent, exist_ok=True)
            self.staging_dir = tempfile.mkdtemp(prefix=f".{self.basename}.partial-", dir=parent)
        except OSError as error:
            raise DataError(f"{parent}: cannot create the output there ({error.strerror})") from None
        self.shape = None
        self.num_images = 0
        self.labels = None
        self._writers = []

    @property
    def resolution(self):
        return None if self.shape is None else self.shape[-1]

    def _open(self, shape):
        import tensorflow as tf  # noqa: PLC0415

        channels, height, width = shape
        if channels not in (1, 3) or height != width or not is_resolution(height):
            raise DataError(f"{self.tfrecord_dir}: images of shape [C, H, W] = {list(shape)} cannot be "
                            "stored; need C 1 or 3, H = W a power of two >= 4")
        self.shape = tuple(shape)
        resolution = height
        while resolution >= 4:
            path = os.path.join(self.staging_dir, level_file_name(self.basename, resolution))
            self._writers.append(tf.io.TFRecordWriter(path))
            resolution //= 2

    def add(self, images):
        """Appends records for a batch of images [B, C, R, R] (uint8, or float rounded and clipped)."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if self.shape is None:
            self._open(images.shape[1:])
        elif tuple(images.shape[1:]) != self.shape:
            raise DataError(f"{self.tfrecord_dir}: image shape {list(images.shape[1:])} differs from the "
                            f"first image's {list(self.shape)}")
        with self._writing():
            for writer, level in zip(self._writers, build_levels(images)):
                for image in level:
                    writer.write(records.encode_example(image))
        self.num_images += len(images)

    def set_labels(self, labels):
        """float32 [N, L] labels, row i for record i (checked against the count on commit)."""
        labels = np.asarray(labels, dtype=np.float32)
        if labels.ndim != 2:
            raise DataError(f"{self.tfrecord_dir}: labels must be [N, L], got shape {list(labels.shape)}")
        self.labels = labels

    def _close_writers(self):
        """Closes every level file (also after one fails); raises the first failure."""
        writers, self._writers = self._writers, []
        failure = None
        for writer in writers:
            try:
                writer.close()  # flushes: a full disk shows here
            except Exception as error:  # noqa: BLE001 (OSError or a TensorFlow error)
                failure = failure or error
        if failure is not None:
            raise failure

    @contextlib.contextmanager
    def _writing(self):
        """A failed write into the staging directory (a full disk, no permission) becomes one
        DataError naming the dataset; the caller's abort() then removes the staging directory."""
        try:
            yield
        except Exception as error:
            tf = sys.modules.get("tensorflow")  # imported once records are written
            if not isinstance(error, OSError) and not (tf and isinstance(error, tf.errors.OpError)):
                raise
            if isinstance(error, OSError) and error.strerror:
                reason = error.strerror
            else:
                reason = str(error).strip().splitlines()[0].rsplit("; ", 1)[-1]
            raise DataError(f"{self.tfrecord_dir}: cannot write the dataset (disk full or not "
                            f"writable?): {reason}; nothing was created") from None

    def commit(self, manifest=None, hash_files=False):
        """Closes the files, writes labels and the manifest, and moves the pyramid into place.

        manifest: extra JSON-able entries for `manifest.json` (e.g. the command and its source).
        hash_files: also store each file's SHA-256 (one more read of everything written).
        Returns the manifest written.
        """
        with self._writing():
            return self._commit(manifest, hash_files)

    def _commit(self, manifest, hash_files):
        self._close_writers()
        if self.num_images == 0:
            self.abort()
            raise DataError(f"{self.tfrecord_dir}: no images were added; nothing written")
        files = sorted(os.listdir(self.staging_dir))
        if self.labels is not None:
            if self.labels.shape[0] != self.num_images:
                self.abort()
                raise DataError(f"{self.tfrecord_dir}: {self.labels.shape[0]} label rows for "
                                f"{self.num_images} images")
            name = labels_file_name(self.basename)
            with open(os.path.join(self.staging_dir, name), "wb") as file:
                np.save(file, self.labels.astype(np.float32))
            files.append(name)
        content = {
            "format": FORMAT_NAME,
            "num_images": self.num_images,
            "resolution": self.resolution,
            "num_channels": self.shape[0],
            "label_size": 0 if self.labels is None else int(self.labels.shape[1]),
            **(manifest or {}),
            "files": {name: os.path.getsize(os.path.join(self.staging_dir, name)) for name in sorted(files)},
        }
        if hash_files:
            content["sha256"] = {name: file_sha256(os.path.join(self.staging_dir, name)) for name in sorted(files)}
        with open(os.path.join(self.staging_dir, MANIFEST_NAME), "w", encoding="utf-8") as file:
            json.dump(content, file, indent=1, sort_keys=True)
            file.write("\n")
        os.chmod(self.staging_dir, 0o777 & ~_umask())
        replace_dir(self.staging_dir, self.tfrecord_dir)
        self.staging_dir = None
        return content

    def abort(self):
        """Closes and removes everything written so far."""
        try:
            self._close_writers()
        except Exception:  # noqa: BLE001, S110 (the files go below; the first error counts)
            pass
        if self.staging_dir is not None:
            shutil.rmtree(self.staging_dir, ignore_errors=True)
            self.staging_dir = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc_info):
        if exc_type is not None or self.staging_dir is not None:
            self.abort()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
