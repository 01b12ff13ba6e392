"""Monitoring of a training run: the original's progress line, log.txt, a terminal progress bar,
TensorBoard scalars and images (step = images shown), and PNG image grids written atomically."""

import io
import os
import sys
import tempfile
import time

import numpy as np
import PIL.Image


def format_time(seconds):
    """The original's time format: '45s', '3m 07s', '2h 05m 09s', '1d 03h 20m'."""
    s = int(np.rint(seconds))
    if s < 60:
        return f"{s}s"
    if s < 60 * 60:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m"


def progress_line(tick, kimg, lod, resolution, minibatch, total_sec, sec_per_tick, sec_per_kimg,
                  img_per_sec, maintenance_sec):
    """One fixed-width line per tick, the original's fields plus resolution and img/s."""
    return (f"tick {tick:<5d} kimg {kimg:<8.1f} lod {lod:<5.2f} resolution {resolution:<4d} "
            f"minibatch {minibatch:<4d} time {format_time(total_sec):<12s} "
            f"sec/tick {sec_per_tick:<7.1f} sec/kimg {sec_per_kimg:<7.2f} "
            f"img/s {img_per_sec:<7.1f} maintenance {maintenance_sec:.1f}")


def grid_shape(resolution):
    """(width, height) in images of the original's 1080p grid: clip(1920 // R, 3, 32) x
    clip(1080 // R, 2, 32)."""
    return (int(np.clip(1920 // resolution, 3, 32)), int(np.clip(1080 // resolution, 2, 32)))


def to_uint8(images):
    """[-1, 1] float images -> uint8 by x * 127.5 + 127.5, rounded and clipped (SPEC 2);
    NaN -> 128."""
    images = np.nan_to_num(np.asarray(images, dtype=np.float32))  # a diverged G shows black
    return np.clip(np.rint(images * 127.5 + 127.5), 0, 255).astype(np.uint8)


def upscale_nearest(images, resolution):
    """[N, r, r, C] -> [N, R, R, C] by repeating pixels (R a multiple of r), as the original
    shows lower-resolution stages at full size."""
    factor = resolution // images.shape[1]
    if factor <= 1:
        return images
    return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)


def image_grid(images, grid_size):
    """Tiles [N, H, W, C] images row by row into a [gh * H, gw * W, C] array (zeros where
    N < gw * gh). grid_size: (gw, gh)."""
    images = np.asarray(images)
    grid_w, grid_h = grid_size
    num, height, width, channels = images.shape
    if num > grid_w * grid_h:
        raise ValueError(f"{num} images do not fit a {grid_w}x{grid_h} grid")
    grid = np.zeros((grid_h * height, grid_w * width, channels), dtype=images.dtype)
    for index in range(num):
        y, x = divmod(index, grid_w)
        grid[y * height:(y + 1) * height, x * width:(x + 1) * width] = images[index]
    return grid


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, data):
    """Writes bytes to a temporary file in the same directory, then renames it over `path`
    (readers see the old file or the new one, never a part); permissions follow the umask."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def png_bytes(image):
    """PNG encoding of a uint8 [H, W, C] image (C = 1 gray, 3 RGB)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(images, path, grid_size, resolution=None):
    """[-1, 1] images [N, h, w, C] -> PNG grid at `path`, upscaled to `resolution`; returns the
    uint8 grid [H, W, C]."""
    images = np.asarray(images)
    if resolution is not None:
        images = upscale_nearest(images, resolution)
    grid = image_grid(to_uint8(images), grid_size)
    write_atomic(path, png_bytes(grid))
    return grid


def style_mixing_tiles(mapping, synthesis, column_latents, row_latents, layers):
    """StyleGAN's figure 3 as tiles for `image_grid` with grid_size (columns + 1, rows + 1).

    mapping: latents [N, Z] -> dlatents [N, L, D]; synthesis: dlatents -> images [N, H, W, C]
    in [-1, 1] (callables returning arrays or tensors). The top row shows the column latents'
    images, the left column the row latents' images; tile (i, j) renders row i's w with the
    style layers in `layers` (e.g. the coarse ones, 0-3) taken from column j. The corner is
    black (-1). Returns float32 [(rows + 1) * (columns + 1), H, W, C].
    """
    column_w = np.asarray(mapping(np.asarray(column_latents, np.float32)), np.float32)
    row_w = np.asarray(mapping(np.asarray(row_latents, np.float32)), np.float32)
    columns, rows = len(column_w), len(row_w)
    layers = list(layers)
    mixed = np.repeat(row_w[:, None], columns, axis=1)  # [rows, columns, L, D]
    mixed[:, :, layers] = column_w[None, :, layers]
    images = np.asarray(synthesis(np.concatenate(
        [column_w, row_w, mixed.reshape((-1,) + row_w.shape[1:])])), np.float32)
    tiles = np.full(((rows + 1) * (columns + 1),) + images.shape[1:], -1.0, np.float32)
    tiles[1:columns + 1] = images[:columns]
    for i in range(rows):
        start = (i + 1) * (columns + 1)
        tiles[start] = images[columns + i]
        offset = columns + rows + i * columns
        tiles[start + 1:start + 1 + columns] = images[offset:offset + columns]
    return tiles


def mixing_filename(kimg):
    """'mix000120.png': the style-mixing grid at 120 kimg (StyleGAN runs)."""
    return f"mix{int(kimg):06d}.png"


def fakes_filename(kimg):
    """'fakes000120.png' for 120 kimg, as the original names its snapshots."""
    return f"fakes{int(kimg):06d}.png"


class RunLog:
    """Prints messages and appends them to `<run dir>/log.txt` (flushed per line)."""

    def __init__(self, path=None, stream=None):
        self._stream = stream if stream is not None else sys.stdout
        self._file = None
        if path is not None:
            self.open(path)

    def open(self, path):
        self._file = open(path, "a", encoding="utf-8")

    def __call__(self, message):
        print(message, file=self._stream, flush=True)
        if self._file is not None:
            self._file.write(message + "\n")
            self._file.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


class ProgressBar:
    """A one-line bar on stderr, only when stderr is an interactive terminal; redrawn at most
    every `interval` seconds and erased before each progress line."""

    def __init__(self, stream=None, interval=0.5, width=30):
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = interval
        self._width = width
        self._last = 0.0
        self._shown = False

    def update(self, fraction, text):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        filled = int(round(self._width * min(max(fraction, 0.0), 1.0)))
        bar = "#" * filled + "." * (self._width - filled)
        self._stream.write(f"\r[{bar}] {100 * fraction:5.1f}% {text}\x1b[K")
        self._stream.flush()
        self._shown = True

    def clear(self):
        if self.enabled and self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False


class TensorBoard:
    """Scalars and images for TensorBoard in `log_dir`, step = images shown. Writing is done
    eagerly at tick time; `None` log_dir gives a writer that does nothing (non-chief workers)."""

    def __init__(self, log_dir):
        import tensorflow as tf  # deferred: the rest of this module works without TensorFlow
        self._tf = tf
        self._writer = tf.summary.create_file_writer(log_dir) if log_dir else None

    def scalars(self, values, step):
        """values: {tag: number}."""
        if self._writer is None:
            return
        with self._writer.as_default(step=int(step)):
            for tag, value in values.items():
                self._tf.summary.scalar(tag, float(value))

    def image(self, tag, image, step):
        """image: uint8 [H, W, C]."""
        if self._writer is None:
            return
        image = np.asarray(image)
        with self._writer.as_default(step=int(step)):
            self._tf.summary.image(tag, image[np.newaxis], max_outputs=1)

    @property
    def writer(self):
        """The tf.summary writer (None for a non-chief worker)."""
        return self._writer

    def flush(self):
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
