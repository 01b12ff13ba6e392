"""progan_tf/utils/images.py: uint8 conversion, grids, upscaling, PNG/GIF files, style-mixing
tiles."""

import os

import numpy as np
import PIL.Image
import pytest

from progan_tf.utils import images


@pytest.mark.parametrize("resolution, shape", [(4, (32, 32)), (32, (32, 32)), (64, (30, 16)),
                                               (256, (7, 4)), (1024, (3, 2))])
def test_grid_shape_fills_a_1080p_screen(resolution, shape):
    assert images.grid_shape(resolution) == shape


def test_to_uint8_maps_minus_one_to_zero_and_one_to_255():
    values = images.to_uint8(np.array([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0, np.nan]))
    np.testing.assert_array_equal(values, [0, 0, 128, 191, 255, 255, 128])  # 127.5 rounds to even


def test_image_grid_places_images_row_by_row():
    tiles = np.stack([np.full((2, 3, 1), i, np.uint8) for i in range(5)])
    grid = images.image_grid(tiles, (3, 2))
    assert grid.shape == (4, 9, 1)
    np.testing.assert_array_equal(grid[::2, ::3, 0], [[0, 1, 2], [3, 4, 0]])  # empty cell: 0
    with pytest.raises(ValueError, match="do not fit"):
        images.image_grid(tiles, (2, 2))


def test_upscale_nearest_repeats_pixels():
    image = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
    up = images.upscale_nearest(image, 4)
    np.testing.assert_array_equal(up[0, :, :, 0], [[0, 0, 1, 1], [0, 0, 1, 1],
                                                   [2, 2, 3, 3], [2, 2, 3, 3]])


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_save_grid_writes_the_png_atomically(tmp_path, channels, mode):
    floats = np.random.default_rng(0).uniform(-1, 1, (6, 4, 4, channels)).astype(np.float32)
    path = str(tmp_path / "fakes000012.png")
    grid = images.save_grid(floats, path, (3, 2), resolution=8)
    assert grid.shape == (16, 24, channels)
    with PIL.Image.open(path) as png:
        assert png.mode == mode and png.size == (24, 16)
        np.testing.assert_array_equal(np.asarray(png).reshape(grid.shape), grid)
    assert os.listdir(tmp_path) == ["fakes000012.png"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("channels, mode", [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_to_pil_and_png_bytes_keep_the_channels(channels, mode):
    image = np.random.default_rng(channels).integers(0, 256, (3, 5, channels), dtype=np.uint8)
    picture = images.to_pil(image)
    assert picture.mode == mode and picture.size == (5, 3)
    np.testing.assert_array_equal(np.asarray(picture).reshape(image.shape), image)
    with pytest.raises(ValueError, match="5-channel images"):
        images.to_pil(np.zeros((3, 5, 5), np.uint8))


def test_write_gif_loops_over_the_frames(tmp_path):
    frames = np.zeros((3, 4, 4, 3), np.uint8)
    for index in range(3):
        frames[index, ..., index] = 255  # red, green, blue
    path = str(tmp_path / "walk.gif")
    images.write_gif(frames, path, fps=25)
    with PIL.Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.info["loop"] == 0 and gif.info["duration"] == 40
        gif.seek(2)
        assert gif.convert("RGB").getpixel((0, 0)) == (0, 0, 255)
    assert os.listdir(tmp_path) == ["walk.gif"]


def test_style_mixing_tiles_swap_the_chosen_layers():
    # Two style layers; "synthesis" paints layer 0 into channel 0 and layer 1 into channel 1.
    column_w = np.array([[[10.0], [11.0]], [[20.0], [21.0]]])  # [2 columns, L=2, D=1]
    row_w = np.array([[[1.0], [2.0]]])  # [1 row, L=2, D=1]

    def synthesis(w):
        return np.broadcast_to(w[:, None, None, :, 0], (len(w), 1, 1, 2)).astype(np.float32)

    tiles = images.style_mixing_tiles(column_w, row_w, [0], synthesis, background=-1.0)
    assert tiles.shape == (6, 1, 1, 2) and tiles.dtype == np.float32
    pixels = tiles[:, 0, 0].tolist()
    assert pixels == [[-1, -1], [10, 11], [20, 21],  # corner, then the columns
                      [1, 2], [10, 2], [20, 2]]  # the row, then its layer 0 from each column
