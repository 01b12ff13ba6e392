"""`create_lsun`: one LSUN category (an LMDB of JPEG/WebP bytes) -> 3xRxR, centre crop + Lanczos resize.

As the original: images in LMDB cursor order (no shuffle), central square crop, resize to
`resolution` (default 256), optionally only the first `max_images`. Needs the optional `lmdb`
package (`pip install "progan-tf[lsun]"`), imported only by this command.
"""

import io
import itertools
import os

import numpy as np

from data_tools.errors import DataError
from data_tools.sources import ordered_map, require_dir, write_pyramid
from progan_tf.utils.progress import format_count
from progan_tf.utils.resolution import is_resolution

LMDB_HINT = 'create_lsun needs the optional "lmdb" package: pip install "progan-tf[lsun]" (or pip install lmdb)'


def import_lmdb():
    try:
        import lmdb  # noqa: PLC0415
    except ImportError:
        raise DataError(LMDB_HINT) from None
    return lmdb


def decode_crop_resize(value, resolution):
    """uint8 [3, R, R] from encoded image bytes: central square crop, then Lanczos resize."""
    import PIL.Image  # noqa: PLC0415

    try:
        image = PIL.Image.open(io.BytesIO(value))
    except PIL.UnidentifiedImageError:  # its message names a BytesIO object, not the entry
        raise ValueError(f"not an image format PIL reads ({len(value)} bytes)") from None
    with image:
        pixels = np.asarray(image.convert("RGB"))
    crop = min(pixels.shape[:2])
    height, width = pixels.shape[:2]
    pixels = pixels[(height - crop) // 2:(height + crop) // 2, (width - crop) // 2:(width + crop) // 2]
    image = PIL.Image.fromarray(pixels, "RGB").resize((resolution, resolution), PIL.Image.LANCZOS)
    return np.asarray(image).transpose(2, 0, 1)


def create_lsun(tfrecord_dir, lmdb_dir, *, resolution=256, max_images=None, skip_bad=False, overwrite=False):
    """Pyramid of an LSUN LMDB in cursor order. Returns the manifest written (with "skipped")."""
    if not is_resolution(resolution):
        raise DataError(f"--resolution {resolution}: must be a power of two >= 4")
    if max_images is not None and max_images < 1:
        raise DataError(f"--max_images {max_images}: must be >= 1")
    require_dir(lmdb_dir, "LMDB folder")
    lmdb = import_lmdb()
    try:
        environment = lmdb.open(os.fspath(lmdb_dir), readonly=True, lock=False, readahead=False)
    except lmdb.Error as error:
        raise DataError(f"{lmdb_dir}: not a readable LMDB database ({error})") from None
    skipped = []

    def decode(item):
        """(image, None), or (None, problem) for an unreadable entry under --skip_bad."""
        key, value = item
        try:
            return decode_crop_resize(value, resolution), None
        except Exception as error:  # noqa: BLE001
            problem = f"entry {key.decode('latin1')!r}: {str(error).strip() or type(error).__name__}"
            if not skip_bad:
                raise DataError(f"{lmdb_dir}: unreadable image in {problem}; pass --skip_bad to skip such "
                                "entries") from None
            return None, problem

    with environment, environment.begin(write=False) as transaction:
        total = transaction.stat()["entries"]
        expected = total if max_images is None else min(total, max_images)
        entries = ((bytes(key), bytes(value)) for key, value in transaction.cursor())
        images = _kept(ordered_map(decode, entries), skipped)
        manifest = write_pyramid(
            tfrecord_dir, itertools.islice(images, expected), expected, overwrite=overwrite,
            manifest={"command": "create_lsun", "source": os.fspath(lmdb_dir), "resolution": resolution,
                      "max_images": max_images})
    manifest["skipped"] = skipped
    if manifest["num_images"] < expected:
        manifest["note"] = f"{format_count(manifest['num_images'])} of {format_count(expected)} entries written"
    return manifest


def _kept(results, skipped):
    """The images of (image, problem) results; problems go to `skipped`, in cursor order (decode
    runs on a thread pool, so appending there would list them in completion order)."""
    for image, problem in results:
        if problem is None:
            yield image
        else:
            skipped.append(problem)
