"""`create_from_images`: a folder tree of PNG/JPEG/WebP images -> pyramid.

Files are taken in sorted relative-path order (as the original's sorted glob of one folder) and
written in the original's shuffled order (`--shuffle 1`, default). Images must be square and of
one size, unless `--center_crop` (central square of each image) and/or `--resize R` (Lanczos, as
the original's `ANTIALIAS`) make them so. Grayscale input gives 1 channel when every image is
grayscale, else 3; alpha (RGBA, LA, transparent palettes) is composited over `background`.
"""

import os

import numpy as np

from data_tools.errors import DataError
from data_tools.pyramid import original_order
from data_tools.sources import ordered_map, require_dir, write_pyramid
from progan_tf.utils.progress import Progress
from progan_tf.utils.resolution import is_resolution

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
_GRAY_MODES = {"1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def list_images(image_dir):
    """Sorted relative paths ('/'-separated) of the image files under `image_dir`, and the count
    of other files ignored."""
    found, ignored = [], 0
    for root, dirs, files in os.walk(image_dir):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), image_dir).replace(os.sep, "/"))
            else:
                ignored += 1
    return sorted(found), ignored


def _describe(error):
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _header(path):
    """(width, height, mode) from the image header, or the reason it cannot be read."""
    import PIL.Image  # noqa: PLC0415

    try:
        with PIL.Image.open(path) as image:
            return image.size, image.mode, None
    except Exception as error:  # noqa: BLE001 (any decoder failure is a bad image)
        return None, None, _describe(error)


def _to_channels(image, channels, background):
    """PIL image in mode L (channels 1) or RGB (channels 3), alpha composited over background."""
    import PIL.Image  # noqa: PLC0415

    if image.mode in _SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.uint16)
        image = PIL.Image.fromarray(np.rint(pixels / 257.0).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("LA", "La", "PA", "RGBa") or (image.mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        base = PIL.Image.new("RGBA", image.size, tuple(background) + (255,))
        image = PIL.Image.alpha_composite(base, image).convert("RGB")
    if channels == 1:
        return image if image.mode == "L" else image.convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(path, channels, *, resize=None, center_crop=False, background=(255, 255, 255)):
    """uint8 [C, R, R] of one image file; DataError naming the file if it cannot be decoded."""
    import PIL.Image  # noqa: PLC0415

    try:
        with PIL.Image.open(path) as image:
            image.load()
            image = _to_channels(image, channels, background)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001
        raise DataError(f"{path}: unreadable or truncated image ({_describe(error)})") from None
    width, height = image.size
    if center_crop and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if resize and image.size != (resize, resize):
        image = image.resize((resize, resize), PIL.Image.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _probe_full(path):
    import PIL.Image  # noqa: PLC0415

    try:
        with PIL.Image.open(path) as image:
            image.load()
            return image.size, image.mode, None
    except Exception as error:  # noqa: BLE001
        return None, None, _describe(error)


def create_from_images(tfrecord_dir, image_dir, *, shuffle=True, resize=None, center_crop=False,
                       background=(255, 255, 255), skip_bad=False, overwrite=False):
    """Pyramid of every image under `image_dir`. Returns the manifest written (with "skipped")."""
    require_dir(image_dir, "image folder")
    names, ignored = list_images(image_dir)
    if not names:
        raise DataError(f"{image_dir}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} "
                        "files in the folder tree)")
    if resize is not None and not is_resolution(resize):
        raise DataError(f"--resize {resize}: must be a power of two >= 4")
    paths = [os.path.join(image_dir, name) for name in names]

    # Pass 1: headers only (full decode with --skip_bad, to find truncated files before the
    # record order, which depends on the count, is fixed).
    probe = _probe_full if skip_bad else _header
    infos, skipped = [], []
    with Progress("Checking images", total=len(paths)) as progress:
        for name, path, (size, mode, problem) in zip(names, paths, ordered_map(probe, paths)):
            progress.update()
            if problem is not None:
                if not skip_bad:
                    raise DataError(f"{path}: unreadable image ({problem}); pass --skip_bad to skip such files")
                skipped.append(f"{name}: {problem}")
                continue
            infos.append((name, path, size, mode))
    if not infos:
        raise DataError(f"{image_dir}: none of the {len(paths)} image files could be read")

    resolution = None
    for name, path, (width, height), _ in infos:
        if width != height and not center_crop:
            raise DataError(f"{path}: image is {width}x{height}, not square; pass --center_crop "
                            "(and --resize R if sizes differ)")
        side = min(width, height)
        if resize is None:
            if resolution is None:
                resolution = side
            elif side != resolution:
                first = infos[0][1]
                raise DataError(f"{path}: image is {side}x{side} but {first} is {resolution}x{resolution}; "
                                "pass --resize R to bring all images to one size")
    resolution = resize or resolution
    if not is_resolution(resolution):
        raise DataError(f"{infos[0][1]}: images are {resolution}x{resolution}, not a power of two >= 4; "
                        f"pass --resize {max(4, 1 << (resolution - 1).bit_length())}")
    channels = 1 if all(mode in _GRAY_MODES for *_, mode in infos) else 3

    order = original_order(len(infos)) if shuffle else np.arange(len(infos))
    ordered_paths = [infos[i][1] for i in order]

    def load(path):
        return load_image(path, channels, resize=resize, center_crop=center_crop, background=background)

    manifest = write_pyramid(
        tfrecord_dir, ordered_map(load, ordered_paths), len(ordered_paths), overwrite=overwrite,
        progress_label="Writing",
        manifest={"command": "create_from_images", "source": os.fspath(image_dir),
                  "shuffle": bool(shuffle), "resize": resize, "center_crop": bool(center_crop),
                  "background": list(background), "skipped_count": len(skipped)})
    manifest["skipped"] = skipped
    manifest["ignored_files"] = ignored
    return manifest
