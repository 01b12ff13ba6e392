"""One module per input format; each `create_*` function reads its source in the original tool's
order and hands CHW uint8 images to `write_pyramid`."""

import collections
import concurrent.futures
import os
import time

import numpy as np

from data_tools.errors import DataError
from data_tools.pyramid import PyramidWriter
from progan_tf.utils import safe_pickle
from progan_tf.utils.progress import Progress

_BATCH_BYTES = 4 << 20  # float32 working set of one batch; small batches stay in cache


def write_pyramid(tfrecord_dir, images, num_images, *, labels=None, overwrite=False,
                  manifest=None, progress_label="Writing", hash_files=False):
    """Writes a pyramid from an iterable of uint8 [C, R, R] images given in final record order.

    num_images: expected count for the progress line (None if unknown). labels: float32 [N, L] or
    None, row i for the i-th image. manifest: extra entries for manifest.json; hash_files: store
    each file's SHA-256 in it too. Returns the manifest
    with "seconds" added. Nothing is left behind on error or Ctrl-C.
    """
    start = time.monotonic()
    with PyramidWriter(tfrecord_dir, overwrite=overwrite) as writer, \
            Progress(progress_label, total=num_images) as progress:
        batch = []
        batch_limit = None
        for image in images:
            batch.append(image)
            if batch_limit is None:
                batch_limit = max(1, _BATCH_BYTES // max(1, np.asarray(image).nbytes * 4))
            if len(batch) >= batch_limit:
                writer.add(np.stack(batch))
                progress.update(len(batch))
                batch = []
        if batch:
            writer.add(np.stack(batch))
            progress.update(len(batch))
        if labels is not None:
            writer.set_labels(labels)
        written = writer.commit(manifest, hash_files=hash_files)
    written["seconds"] = time.monotonic() - start
    return written


def ordered_map(function, items, num_threads=None, in_flight=None):
    """Yields function(item) for each item, in order, computed by a small thread pool.

    Decoders (PIL, zlib) release the GIL, so threads use both cores. At most `in_flight` results
    are pending at once, so memory stays bounded for any number of items.
    """
    num_threads = num_threads or min(4, (os.cpu_count() or 1) + 1)
    in_flight = in_flight or 4 * num_threads
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        pending = collections.deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def require_file(path, what):
    """`path` if it is a file, else DataError naming it and what it should be."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: {what} not found")
    return path


def load_pickle(path):
    """The plain data (containers, NumPy arrays of plain dtypes) pickled in `path`, read by
    progan_tf.utils.safe_pickle, which never runs pickled code; DataError naming the file
    when it cannot be read or is refused."""
    try:
        with open(path, "rb") as file:
            return safe_pickle.load(file, safe_pickle.NUMPY_GLOBALS)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    except safe_pickle.UnpicklingError as error:
        raise DataError(f"{path}: not loaded ({error})") from None


def require_dir(path, what):
    if not os.path.isdir(path):
        raise DataError(f"{path}: {what} not found (not a directory)")
    return path
