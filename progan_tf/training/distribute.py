"""tf.distribute for training: the strategy by name, the chief worker, broadcasting the chief's
variables and status text, and how each input pipeline splits the global batches
(`split_batches`)."""

import dataclasses
import os

import numpy as np
import tensorflow as tf


def make_strategy(name, worker_timeout_sec=None):
    """tf.distribute strategy by name: "auto" = one_device for one device, else mirrored over
    all GPUs (or all logical CPUs when there is no GPU); "multi_worker" reads the cluster from
    TF_CONFIG, and a collective that waits longer than `worker_timeout_sec` for a peer fails
    (a dead worker then stops the others instead of hanging them)."""
    if name == "multi_worker":  # first: collectives must be configured before any op runs
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy=multi_worker: TF_CONFIG is not set (it lists the "
                             "workers and this worker's index; see README, Multi-worker)")
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=worker_timeout_sec)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    if name == "auto":
        name = "mirrored" if len(devices) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0])
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"--strategy: unknown strategy {name!r}")


def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy):
    """True on the worker that writes logs, grids, checkpoints and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def broadcast_from_chief(strategy, variables, chief):
    """Gives every worker the chief's values of `variables` (string variables are skipped): one
    all-reduce in which the other workers contribute zeros. Every worker must call it with the
    same variables in the same order; `chief` says whether this process is the chief."""
    variables = [v for v in variables if v.dtype != tf.string]

    def contribute():
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0) if chief else tf.constant(False)
        values = [tf.where(first, tf.convert_to_tensor(v), tf.zeros(v.shape, v.dtype))
                  for v in variables]
        return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

    reduced = strategy.experimental_local_results(strategy.run(contribute))[0]
    for variable, value in zip(variables, reduced):
        variable.assign(value)


def broadcast_text_from_chief(strategy, text, chief, max_bytes=2048):
    """The chief's `text` (UTF-8, cut to `max_bytes`) on every worker; the others pass anything
    (it is ignored). One all-reduce of the byte values in which the other workers contribute
    zeros; every worker must call it at the same point. Used for the chief's status before any
    other collective, e.g. why it cannot start, so the others stop instead of waiting for it."""
    data = text.encode("utf-8")[:max_bytes] if chief else b""
    codes = np.zeros(max_bytes, np.int32)
    codes[:len(data)] = np.frombuffer(data, np.uint8)

    def contribute():
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0) if chief else tf.constant(False)
        return context.all_reduce(tf.distribute.ReduceOp.SUM,
                                  tf.where(first, tf.constant(codes), tf.zeros_like(codes)))

    reduced = strategy.experimental_local_results(strategy.run(contribute))[0].numpy()
    return bytes(reduced[reduced > 0].astype(np.uint8)).decode("utf-8", errors="ignore")


@dataclasses.dataclass(frozen=True)
class BatchSplit:
    """One input pipeline's share of every global batch.

    The pipeline yields `local_replicas` consecutive batches of `per_replica` images per
    training step, one per local replica in replica order (the order in which the strategy
    hands them out), so the replica batches of a step concatenate to the global batch.
    Its slice of each global batch starts `offset` images in.
    """

    global_batch_size: int
    per_replica: int
    local_replicas: int
    offset: int

    def first_position(self, chunk, start_position=0):
        """Stream position of the first image of the pipeline's `chunk`-th batch (int64 tensor
        or int), for a stream that starts at `start_position`."""
        step, replica = chunk // self.local_replicas, chunk % self.local_replicas
        return (start_position + step * self.global_batch_size + self.offset
                + replica * self.per_replica)


def split_batches(global_batch_size, input_context=None):
    """The BatchSplit of the pipeline of `input_context` (a tf.distribute.InputContext; None =
    one pipeline feeding one replica). ValueError when the global batch does not split evenly."""
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}")
    if input_context is None:
        return BatchSplit(global_batch_size, global_batch_size, 1, 0)
    replicas = input_context.num_replicas_in_sync
    pipelines = input_context.num_input_pipelines
    if global_batch_size % replicas:
        raise ValueError(f"global_batch_size {global_batch_size} is not divisible by the "
                         f"{replicas} replicas in sync")
    if replicas % pipelines:
        raise ValueError(f"{replicas} replicas cannot be split evenly over {pipelines} input "
                         f"pipelines")
    per_replica = global_batch_size // replicas
    local_replicas = replicas // pipelines
    return BatchSplit(global_batch_size, per_replica, local_replicas,
                      input_context.input_pipeline_id * local_replicas * per_replica)
