"""Progress line, time format, image grids, PNG files and TensorBoard events."""

import io
import os
import re

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from progan_tf import summaries


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (45.4, "45s"), (59.6, "1m 00s"), (187, "3m 07s"), (3600, "1h 00m 00s"),
    (7509, "2h 05m 09s"), (86399, "23h 59m 59s"), (98400, "1d 03h 20m")])
def test_format_time_matches_the_original(seconds, text):
    assert summaries.format_time(seconds) == text


def test_progress_line_has_the_fields_in_the_originals_layout():
    line = summaries.progress_line(tick=3, kimg=480.04, lod=7.5, resolution=8, minibatch=128,
                                   total_sec=4000, sec_per_tick=100.25, sec_per_kimg=0.625,
                                   img_per_sec=1600.0, maintenance_sec=2.25)
    assert re.fullmatch(
        r"tick 3 +kimg 480\.0 +lod 7\.50 +resolution 8 +minibatch 128 +time 1h 06m 40s +"
        r"sec/tick 100\.2 +sec/kimg 0\.62 +img/s 1600\.0 +maintenance 2\.2", line), line
    # Fixed-width columns: a longer tick number does not shift the kimg column.
    other = summaries.progress_line(12345, 1.0, 0.0, 1024, 4, 1, 1, 1, 1, 0)
    assert line.index("kimg") == other.index("kimg")


@pytest.mark.parametrize("resolution, shape", [(4, (32, 32)), (32, (32, 32)), (64, (30, 16)),
                                               (256, (7, 4)), (1024, (3, 2))])
def test_grid_shape_fills_a_1080p_screen(resolution, shape):
    assert summaries.grid_shape(resolution) == shape


def test_to_uint8_maps_minus_one_to_zero_and_one_to_255():
    values = summaries.to_uint8(np.array([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0]))
    np.testing.assert_array_equal(values, [0, 0, 128, 191, 255, 255])  # 127.5 rounds to even


def test_image_grid_places_images_row_by_row():
    images = np.stack([np.full((2, 3, 1), i, np.uint8) for i in range(5)])
    grid = summaries.image_grid(images, (3, 2))
    assert grid.shape == (4, 9, 1)
    np.testing.assert_array_equal(grid[::2, ::3, 0], [[0, 1, 2], [3, 4, 0]])  # empty cell: 0
    with pytest.raises(ValueError, match="do not fit"):
        summaries.image_grid(images, (2, 2))


def test_upscale_nearest_repeats_pixels():
    image = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
    up = summaries.upscale_nearest(image, 4)
    np.testing.assert_array_equal(up[0, :, :, 0], [[0, 0, 1, 1], [0, 0, 1, 1],
                                                   [2, 2, 3, 3], [2, 2, 3, 3]])


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_save_grid_writes_the_png_atomically(tmp_path, channels, mode):
    images = np.random.default_rng(0).uniform(-1, 1, (6, 4, 4, channels)).astype(np.float32)
    path = str(tmp_path / "fakes000012.png")
    grid = summaries.save_grid(images, path, (3, 2), resolution=8)
    assert grid.shape == (16, 24, channels)
    with PIL.Image.open(path) as png:
        assert png.mode == mode and png.size == (24, 16)
        np.testing.assert_array_equal(np.asarray(png).reshape(grid.shape), grid)
    assert os.listdir(tmp_path) == ["fakes000012.png"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    assert summaries.fakes_filename(12.7) == "fakes000012.png"


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "reals.png"
    path.write_bytes(b"old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        summaries.write_atomic(str(path), b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["reals.png"]


def test_run_log_prints_and_appends_to_the_file(tmp_path):
    stream = io.StringIO()
    log = summaries.RunLog(str(tmp_path / "log.txt"), stream=stream)
    log("first")
    log("second")
    log.close()
    assert stream.getvalue() == "first\nsecond\n"
    assert (tmp_path / "log.txt").read_text() == "first\nsecond\n"


def test_progress_bar_draws_only_on_a_terminal():
    plain = io.StringIO()
    bar = summaries.ProgressBar(stream=plain, interval=0)
    bar.update(0.5, "tick 1")
    bar.clear()
    assert plain.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    bar = summaries.ProgressBar(stream=terminal, interval=0, width=10)
    bar.update(0.5, "tick 1")
    assert "[#####.....]  50.0% tick 1" in terminal.getvalue()
    bar.clear()
    assert terminal.getvalue().endswith("\r\x1b[K")


def test_tensorboard_scalars_and_images_read_back(tmp_path):
    board = summaries.TensorBoard(str(tmp_path))
    board.scalars({"Loss/G": 1.5, "Progress/lod": 2.0}, step=640)
    board.scalars({"Loss/G": 0.5}, step=1280)
    grid = np.zeros((8, 12, 3), np.uint8)
    grid[:, :6] = 255
    board.image("Samples/fakes", grid, step=1280)
    board.close()
    events = event_accumulator.EventAccumulator(
        str(tmp_path), size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    tags = events.Tags()["tensors"]
    assert {"Loss/G", "Progress/lod", "Samples/fakes"} <= set(tags)
    loss = [(e.step, float(np.asarray(tf.make_ndarray(e.tensor_proto))))
            for e in events.Tensors("Loss/G")]
    assert loss == [(640, 1.5), (1280, 0.5)]
    image = events.Tensors("Samples/fakes")[0]
    width, height, png = tf.make_ndarray(image.tensor_proto)
    assert (int(width), int(height)) == (12, 8)
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(io.BytesIO(png))), grid)


def test_tensorboard_without_a_directory_writes_nothing(tmp_path):
    board = summaries.TensorBoard(None)
    board.scalars({"Loss/G": 1.0}, step=1)
    board.image("Samples/fakes", np.zeros((4, 4, 1), np.uint8), step=1)
    board.close()
    assert os.listdir(tmp_path) == []
