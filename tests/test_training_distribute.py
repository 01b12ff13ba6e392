"""Strategies by name, the chief, and how input pipelines split the global batch."""

import os

import pytest
import tensorflow as tf

import conftest
from progan_tf.training import distribute


def context(pipelines, pipeline_id, replicas):
    return tf.distribute.InputContext(num_input_pipelines=pipelines,
                                      input_pipeline_id=pipeline_id,
                                      num_replicas_in_sync=replicas)


def test_one_pipeline_without_a_context_reads_whole_global_batches():
    split = distribute.split_batches(8)
    assert (split.per_replica, split.local_replicas, split.offset) == (8, 1, 0)
    assert [split.first_position(chunk, 3) for chunk in range(3)] == [3, 11, 19]


def test_pipelines_read_consecutive_replica_slices_of_each_global_batch():
    # 2 pipelines x 2 replicas each, global batch 8: per-replica batches of 2.
    positions = {}
    for pipeline in range(2):
        split = distribute.split_batches(8, context(2, pipeline, 4))
        assert (split.per_replica, split.local_replicas) == (2, 2)
        positions[pipeline] = [split.first_position(chunk) for chunk in range(4)]
    # Step 0: replicas 0, 1 (pipeline 0) then 2, 3 (pipeline 1); step 1 starts at 8.
    assert positions == {0: [0, 2, 8, 10], 1: [4, 6, 12, 14]}


def test_global_batches_that_do_not_split_are_refused():
    with pytest.raises(ValueError, match="global_batch_size 8 is not divisible by the 3 replicas"):
        distribute.split_batches(8, context(1, 0, 3))
    with pytest.raises(ValueError, match="4 replicas cannot be split evenly over 3 input"):
        distribute.split_batches(8, context(3, 0, 4))
    with pytest.raises(ValueError, match="global_batch_size must be >= 1"):
        distribute.split_batches(0)


def test_strategies_by_name_and_the_chief(monkeypatch):
    assert isinstance(distribute.make_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    assert distribute.make_strategy("auto").num_replicas_in_sync == 2  # conftest's two CPUs
    assert distribute.is_chief(conftest.two_replicas())
    assert not distribute.is_multi_worker(conftest.two_replicas())
    with pytest.raises(ValueError, match="unknown strategy 'tpu'"):
        distribute.make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG is not set"):
        distribute.make_strategy("multi_worker")
    assert "TF_CONFIG" not in os.environ


def test_broadcast_from_the_chief_in_one_process_keeps_its_values():
    strategy = conftest.two_replicas()
    with strategy.scope():
        variables = [tf.Variable([1.0, 2.0]), tf.Variable(3, dtype=tf.int64)]
    distribute.broadcast_from_chief(strategy, variables, chief=True)
    assert variables[0].numpy().tolist() == [1.0, 2.0] and variables[1].numpy() == 3
