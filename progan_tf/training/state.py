"""`TrainingState`: the counters saved with every checkpoint (images shown, data position, step
counters that key the random streams, tick, skipped steps, loss scales), their one home."""

import tensorflow as tf

from progan_tf.training import loss_scale


class TrainingState(tf.Module):
    """Schedule position, data position and RNG counters, saved with every checkpoint as
    `state/<name>`; the loop reads and advances them here.

    nimg: real images shown. data_position: stream position of the next real image.
    d_steps, g_steps: steps taken (they key the random streams, so they are the RNG state).
    prev_lod: lod of the last applied schedule phase (-1 before the first).
    tick, tick_start_nimg: ticks completed and nimg when the current tick began.
    skipped_steps, d_nonfinite_in_a_row, g_nonfinite_in_a_row: steps skipped for non-finite
    gradients, in total and in a row. train_seconds: training time of all sessions.
    d_loss_scale_log2, g_loss_scale_log2: --precision=float16 loss scales (loss_scale.py).
    """

    def __init__(self):
        super().__init__(name="training_state")
        self.nimg = _counter("nimg")
        self.data_position = _counter("data_position")
        self.d_steps = _counter("d_steps")
        self.g_steps = _counter("g_steps")
        self.prev_lod = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="prev_lod")
        self.tick = _counter("tick")
        self.tick_start_nimg = _counter("tick_start_nimg")
        self.skipped_steps = _counter("skipped_steps")
        self.d_nonfinite_in_a_row = _counter("d_nonfinite_in_a_row")
        self.g_nonfinite_in_a_row = _counter("g_nonfinite_in_a_row")
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                         name="train_seconds")
        self.d_loss_scale_log2 = _loss_scale("d_loss_scale_log2")
        self.g_loss_scale_log2 = _loss_scale("g_loss_scale_log2")

    @staticmethod
    def names():
        return ("nimg", "data_position", "d_steps", "g_steps", "prev_lod", "tick",
                "tick_start_nimg", "skipped_steps", "d_nonfinite_in_a_row", "g_nonfinite_in_a_row",
                "train_seconds", "d_loss_scale_log2", "g_loss_scale_log2")

    def variables_in_order(self):
        return [getattr(self, name) for name in self.names()]

    def values(self):
        """{name: Python number} of every counter."""
        return {name: getattr(self, name).numpy().item() for name in self.names()}

    def assign(self, **values):
        for name, value in values.items():
            getattr(self, name).assign(value)

    def advance(self, images):
        """After a discriminator step on `images` reals: more images shown, the data read on."""
        self.nimg.assign_add(images)
        self.data_position.assign_add(images)

    def start_tick(self):
        """Counts the tick that just ended; the next one starts at the current nimg."""
        self.tick.assign_add(1)
        self.tick_start_nimg.assign(self.nimg)

    def record_step(self, network, applied):
        """After a step of `network` ("d" or "g"): its step counter advances, and a skipped
        step (`applied` false) adds to the total and to that network's run of consecutive
        skipped steps, which an applied step ends. Eager or inside a tf.function (the training
        steps call it in their graph)."""
        getattr(self, f"{network}_steps").assign_add(1)
        applied = tf.convert_to_tensor(applied, tf.bool)
        counter = getattr(self, f"{network}_nonfinite_in_a_row")
        counter.assign(tf.where(applied, tf.constant(0, tf.int64), counter + 1))
        self.skipped_steps.assign_add(tf.where(applied, tf.constant(0, tf.int64),
                                               tf.constant(1, tf.int64)))

    def nonfinite_in_a_row(self):
        """The longer run of consecutive skipped steps of the two networks."""
        return max(self.d_nonfinite_in_a_row.numpy().item(),
                   self.g_nonfinite_in_a_row.numpy().item())

    def nonfinite_in_a_row_tensor(self):
        """`nonfinite_in_a_row` as an int64 tensor (inside a tf.function)."""
        return tf.maximum(self.d_nonfinite_in_a_row, self.g_nonfinite_in_a_row)


def read_state(checkpoint_path):
    """TrainingState values stored in a checkpoint (a prefix such as `.../ckpt-3`, or a
    checkpoints directory for its newest one): {name: Python number}."""
    if tf.io.gfile.isdir(checkpoint_path):
        checkpoint_path = tf.train.latest_checkpoint(checkpoint_path)
    state = TrainingState()
    tf.train.Checkpoint(state=state).read(checkpoint_path).expect_partial()
    return state.values()


def _counter(name):
    return tf.Variable(0, dtype=tf.int64, trainable=False, name=name)


def _loss_scale(name):
    return tf.Variable(loss_scale.INIT_LOG2, dtype=tf.float32, trainable=False, name=name)
