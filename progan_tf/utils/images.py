"""Image helpers: [-1, 1] floats to uint8, grids, nearest upscaling, PNG and GIF files (written
atomically), PIL conversion. Images are [N, H, W, C] (NHWC) NumPy arrays."""

import io

import numpy as np
import PIL.Image

from progan_tf.utils.files import write_atomic

_PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def to_uint8(images):
    """[-1, 1] float images -> uint8 by x * 127.5 + 127.5, rounded and clipped (SPEC 2);
    NaN -> 128."""
    images = np.nan_to_num(np.asarray(images, dtype=np.float32))  # a diverged G shows gray
    return np.clip(np.rint(images * 127.5 + 127.5), 0, 255).astype(np.uint8)


def grid_shape(resolution):
    """(width, height) in images of the original's 1080p grid: clip(1920 // R, 3, 32) x
    clip(1080 // R, 2, 32)."""
    return (int(np.clip(1920 // resolution, 3, 32)), int(np.clip(1080 // resolution, 2, 32)))


def image_grid(images, grid_size):
    """Tiles [N, H, W, C] images row by row into a [gh * H, gw * W, C] array (zeros where
    N < gw * gh). grid_size: (gw, gh); ValueError when the images do not fit."""
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


def upscale_nearest(images, resolution):
    """[N, r, r, C] -> [N, R, R, C] by repeating pixels (R a multiple of r), as the original
    shows lower-resolution stages at full size."""
    factor = resolution // images.shape[1]
    if factor <= 1:
        return images
    return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)


def to_pil(image):
    """uint8 [H, W, C] -> PIL image (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA)."""
    image = np.asarray(image)
    channels = image.shape[-1]
    if image.ndim != 3 or channels not in _PIL_MODES:
        raise ValueError(f"cannot write {channels}-channel images as PNG/GIF (need [H, W, C] "
                         f"with 1, 2, 3 or 4 channels), received shape {list(image.shape)}")
    pixels = image[..., 0] if channels == 1 else image
    return PIL.Image.fromarray(np.ascontiguousarray(pixels), _PIL_MODES[channels])


def png_bytes(image):
    """PNG encoding of a uint8 [H, W, C] image."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(image, path):
    """uint8 [H, W, C] -> PNG file at `path`, written atomically."""
    write_atomic(path, png_bytes(image))


def write_gif(frames, path, fps):
    """uint8 [F, H, W, C] -> looping animated GIF at `path` (at most 50 frames/s), atomically."""
    pictures = [to_pil(frame) for frame in frames]
    if pictures[0].mode in ("LA", "RGBA"):
        pictures = [picture.convert("RGB") for picture in pictures]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:],
                     duration=max(int(round(1000.0 / fps)), 20), loop=0)
    write_atomic(path, buffer.getvalue())


def save_grid(images, path, grid_size, resolution=None):
    """[-1, 1] images [N, h, w, C] -> PNG grid at `path`, upscaled to `resolution`; returns the
    uint8 grid [H, W, C]."""
    images = np.asarray(images)
    if resolution is not None:
        images = upscale_nearest(images, resolution)
    grid = image_grid(to_uint8(images), grid_size)
    write_png(grid, path)
    return grid


def style_mixing_tiles(column_w, row_w, layers, synthesis, *, background):
    """StyleGAN's figure 3 as tiles for `image_grid` with grid_size (columns + 1, rows + 1).

    column_w: [columns, L, D] and row_w: [rows, L, D] dlatents; synthesis: dlatents [N, L, D]
    -> images [N, H, W, C] (a callable returning an array or tensor). The top row shows the
    column images, the left column the row images; tile (i, j) renders row i's w with the
    style layers in `layers` (e.g. the coarse ones, 0-3) taken from column j. The corner tile
    holds `background` (-1.0 for float images, 0 for uint8). Returns
    [(rows + 1) * (columns + 1), H, W, C] in the dtype synthesis returns.
    """
    column_w, row_w = np.asarray(column_w), np.asarray(row_w)
    columns, rows = len(column_w), len(row_w)
    layers = list(layers)
    mixed = np.repeat(row_w[:, None], columns, axis=1)  # [rows, columns, L, D]
    mixed[:, :, layers] = column_w[None, :, layers]
    images = np.asarray(synthesis(np.concatenate(
        [column_w, row_w, mixed.reshape((-1,) + row_w.shape[1:])])))
    tiles = np.full(((rows + 1) * (columns + 1),) + images.shape[1:], background, images.dtype)
    tiles[1:columns + 1] = images[:columns]
    for i in range(rows):
        start = (i + 1) * (columns + 1)
        tiles[start] = images[columns + i]
        offset = columns + rows + i * columns
        tiles[start + 1:start + 1 + columns] = images[offset:offset + columns]
    return tiles
