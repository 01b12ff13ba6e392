"""The training's random streams: stateless philox draws keyed by (seed, step counter, purpose).

Every replica draws the global batch's values and keeps its own rows, so the result does not
depend on the number of replicas, and the step counters in the checkpoint are the whole RNG
state (exact resume).
"""

import tensorflow as tf

# Purposes of the streams; each step counter is multiplied by their number.
D_LATENTS, D_MIX, G_LATENTS, G_LABELS, NUM_STREAMS = range(5)


class RandomStreams:
    """Draws of one run. seed: the run's --seed; num_replicas: replicas in sync.

    Call the drawing methods inside a replica context (strategy.run) or outside any strategy
    (one replica); `counter` is a step counter (int64 scalar), `minibatch` the global batch.
    """

    def __init__(self, seed, num_replicas):
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)

    def key(self, counter, stream):
        """Stateless seed [2] of `stream` at step `counter`."""
        counter = tf.cast(counter, tf.int64) * NUM_STREAMS + stream
        return tf.stack([tf.constant(self.seed, tf.int64), counter])

    def replica_rows(self, values, minibatch):
        """Rows of the global-batch `values` that belong to the current replica."""
        per_replica = minibatch // self.num_replicas
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        start = tf.cast(replica, tf.int32) * per_replica
        return values[start:start + per_replica]

    def latents(self, counter, stream, minibatch, latent_size):
        """This replica's rows of N(0, 1) latents [minibatch, latent_size]."""
        latents = tf.random.stateless_normal([minibatch, latent_size], self.key(counter, stream),
                                             alg="philox")
        return self.replica_rows(latents, minibatch)

    def mixing_latents(self, counter, stream, minibatch, latent_size):
        """The second latents of style mixing in the step of `stream` at `counter`."""
        key = tf.random.experimental.stateless_fold_in(self.key(counter, stream), 1)
        latents = tf.random.stateless_normal([minibatch, latent_size], key, alg="philox")
        return self.replica_rows(latents, minibatch)

    def mixing_key(self, counter, stream):
        """Seed [2] of the style-mixing crossover draw (one per global batch)."""
        return tf.random.experimental.stateless_fold_in(self.key(counter, stream), 2)

    def labels(self, counter, table, minibatch):
        """This replica's rows of labels drawn uniformly from the rows of `table` [N, L]."""
        index = tf.random.stateless_uniform([minibatch], self.key(counter, G_LABELS), 0,
                                            tf.shape(table, out_type=tf.int64)[0],
                                            dtype=tf.int64, alg="philox")
        return self.replica_rows(tf.gather(table, index), minibatch)

    def interpolation(self, counter, minibatch):
        """This replica's rows of the gradient penalty's factors u ~ U(0, 1), [n, 1, 1, 1]."""
        mix = tf.random.stateless_uniform([minibatch, 1, 1, 1], self.key(counter, D_MIX),
                                          alg="philox")
        return self.replica_rows(mix, minibatch)
