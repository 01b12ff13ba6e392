"""Monitoring of a training run: log.txt (`RunLog`) and TensorBoard scalars and images (step =
images shown). Images, files and progress lines live in progan_tf.utils; file names in
progan_tf.training.run_dir."""

import sys

import numpy as np


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
