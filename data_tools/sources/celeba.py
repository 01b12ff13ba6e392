"""`create_celeba`: aligned CelebA (178x218) -> 3x128x128, the original's crop centred at (89, 121).

Reads `img_align_celeba_png/*.png` as the original does, or else the common JPEG release
`img_align_celeba/*.jpg` (JPEG decoders may differ from the PNG conversion in a few pixel values).
Records in RandomState(123) order; the full set has 202,599 images.
"""

import glob
import os

import numpy as np

from data_tools.errors import DataError
from data_tools.pyramid import original_order
from data_tools.sources import ordered_map, require_dir, write_pyramid

FULL_COUNT = 202599
ALIGNED_SHAPE = (218, 178, 3)


def list_celeba(celeba_dir):
    require_dir(celeba_dir, "CelebA folder")
    for sub, pattern in (("img_align_celeba_png", "*.png"), ("img_align_celeba", "*.jpg")):
        names = sorted(glob.glob(os.path.join(glob.escape(os.path.join(celeba_dir, sub)), pattern)))
        if names:
            return names
    raise DataError(f"{celeba_dir}: no img_align_celeba_png/*.png or img_align_celeba/*.jpg images")


def load_crop(path, cx, cy):
    import PIL.Image  # noqa: PLC0415

    try:
        with PIL.Image.open(path) as image:
            pixels = np.asarray(image)
    except Exception as error:  # noqa: BLE001
        raise DataError(f"{path}: unreadable or truncated image ({str(error).strip()})") from None
    if pixels.shape != ALIGNED_SHAPE:
        raise DataError(f"{path}: shape {list(pixels.shape)}, aligned CelebA images are {list(ALIGNED_SHAPE)}")
    return pixels[cy - 64:cy + 64, cx - 64:cx + 64].transpose(2, 0, 1)


def create_celeba(tfrecord_dir, celeba_dir, *, cx=89, cy=121, overwrite=False):
    if not (64 <= cx <= ALIGNED_SHAPE[1] - 64 and 64 <= cy <= ALIGNED_SHAPE[0] - 64):
        raise DataError(f"--cx {cx} --cy {cy}: the 128x128 crop must lie inside the 178x218 image")
    paths = list_celeba(celeba_dir)
    order = original_order(len(paths))
    manifest = write_pyramid(
        tfrecord_dir, ordered_map(lambda path: load_crop(path, cx, cy), [paths[i] for i in order]),
        len(paths), overwrite=overwrite,
        manifest={"command": "create_celeba", "source": os.fspath(celeba_dir), "cx": cx, "cy": cy})
    if len(paths) != FULL_COUNT:
        manifest["note"] = f"{len(paths):,} images; the full aligned CelebA has {FULL_COUNT:,}"
    return manifest
