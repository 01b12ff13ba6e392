"""Loss scaling of --precision=float16 (alias --mixed_precision), as the original's
tfutil.Optimizer: the loss is multiplied by 2^s inside the tape so float16 gradients do not
underflow, the gradients are divided by it, and s (log2, kept in TrainingState) grows by 0.0005
per applied step and drops by 1 per overflow (SPEC 2). The decision is made on the all-reduced
count of non-finite gradient entries, so every replica and worker agrees (SPEC 10). float32 and
bfloat16 (float32's exponent range) run without it."""

import tensorflow as tf

INIT_LOG2 = 64.0
INCREMENT_LOG2 = 0.0005
DECREMENT_LOG2 = 1.0


class LossScale:
    """The loss scaling of one run; `enabled` False (float32) makes every method a no-op."""

    def __init__(self, enabled):
        self.enabled = bool(enabled)

    def scale(self, scale_log2):
        """2^scale_log2 as float32 when enabled, else None."""
        if not self.enabled:
            return None
        return tf.pow(2.0, tf.cast(scale_log2, tf.float32))

    @staticmethod
    def scaled(loss, scale):
        return loss if scale is None else loss * scale

    @staticmethod
    def unscaled_gradients(grads, variables, scale):
        """float32 gradients (zeros for unused variables) divided by the loss scale; an
        overflow shows up as non-finite entries, which the caller counts after the all-reduce."""
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        if scale is None:
            return grads
        return [tf.cast(g, tf.float32) / scale for g in grads]

    def update(self, scale_log2, applied):
        """+INCREMENT_LOG2 after an applied step, -DECREMENT_LOG2 after an overflow."""
        if self.enabled:
            scale_log2.assign_add(tf.where(applied, INCREMENT_LOG2, -DECREMENT_LOG2))

    def nonfinite_allowance(self):
        """Skipped steps in a row that only lower the scale: from 2^64 the first overflows are
        expected, so they do not count towards --max_nonfinite_steps."""
        return int(INIT_LOG2) if self.enabled else 0


def count_nonfinite(grads):
    """Number of non-finite entries in `grads` (int32 scalar)."""
    counts = [tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(g)), tf.int32))
              for g in grads if g is not None]
    return tf.add_n(counts) if counts else tf.constant(0, tf.int32)
