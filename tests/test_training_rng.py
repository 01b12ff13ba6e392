"""The random streams: keys, and replicas drawing their rows of the global batch's values."""

import numpy as np
import tensorflow as tf

import conftest
from progan_tf.training import rng


def test_keys_are_the_seed_and_the_counter_times_the_streams_plus_the_stream():
    streams = rng.RandomStreams(seed=1000, num_replicas=1)
    key = streams.key(tf.constant(3, tf.int64), rng.G_LATENTS)
    assert rng.NUM_STREAMS == 4 and key.numpy().tolist() == [1000, 3 * 4 + rng.G_LATENTS]
    latents = streams.latents(3, rng.G_LATENTS, 4, 2)
    expected = tf.random.stateless_normal([4, 2], tf.constant([1000, 14], tf.int64), alg="philox")
    np.testing.assert_array_equal(latents, expected)  # the stream of every earlier run


def test_each_replica_draws_its_rows_of_the_one_device_values():
    strategy = conftest.two_replicas()
    single = rng.RandomStreams(seed=7, num_replicas=1)
    mirrored = rng.RandomStreams(seed=7, num_replicas=2)
    table = tf.constant(np.arange(20, dtype=np.float32).reshape(10, 2))

    def draws(streams):
        return (streams.latents(5, rng.D_LATENTS, 8, 3), streams.interpolation(5, 8),
                streams.labels(5, table, 8), streams.mixing_latents(5, rng.D_LATENTS, 8, 3))

    expected = draws(single)
    per_replica = strategy.run(lambda: draws(mirrored))
    for index, values in enumerate(expected):
        parts = strategy.experimental_local_results(per_replica[index])
        assert [p.shape[0] for p in parts] == [4, 4]
        np.testing.assert_array_equal(np.concatenate(parts), values)
    # Distinct purposes give distinct draws.
    assert not np.array_equal(expected[0], expected[3])
    assert not np.array_equal(single.mixing_key(5, rng.D_LATENTS), single.key(5, rng.D_LATENTS))
