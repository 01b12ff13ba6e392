"""Run log and TensorBoard events (images, files and progress lines are
tested in test_utils_*.py)."""

import io
import os

import numpy as np
import PIL.Image
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from progan_tf import summaries


def test_run_log_prints_and_appends_to_the_file(tmp_path):
    stream = io.StringIO()
    log = summaries.RunLog(str(tmp_path / "log.txt"), stream=stream)
    log("first")
    log("second")
    log.close()
    assert stream.getvalue() == "first\nsecond\n"
    assert (tmp_path / "log.txt").read_text() == "first\nsecond\n"


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
