"""Real images for training: one level of a TFRecord pyramid as a `tf.data` stream of batches
[b, R, R, C] in [-1, 1], plus the fade-in cross-fade of reals.

Order of the stream (why it is not a shuffle buffer). The image at stream position p (0, 1, 2, ...)
of level R is record `perm_e(p mod N)` with epoch e = p div N, where perm_e is a pseudo-random
permutation of [0, N) keyed by (seed, log2 R, e): a 6-round Feistel network on ceil(log2 N) bits
(round function SplitMix64) with cycle walking, written out below with TF integer ops. Its mirror
flip is the top bit of SplitMix64(key(seed, log2 R) xor p). So the stream is a pure function of
(seed, level, position): every epoch is a full, fresh shuffle of the whole set (the original's
4096 MB shuffle window covers only 1,366 images at 1024^2), and resuming at position k needs only
k, not GBs of shuffle-buffer state (SPEC 10: the iterator of `distribute_datasets_from_function`
cannot be checkpointed anyway). The functions are ours, so the order does not change with the TF
version.

Reading. Records are fetched by random access and entirely by TF ops (no Python runs inside the
pipeline, so nothing contends for the GIL with training and the process exits cleanly with live
iterators): `open_pyramid` indexes each level file once (record offsets; O(1) for level files
whose records all have one size, as every pyramid level has), and each record is read by a
one-record `TFRecordDatasetV2` that starts at its byte offset; TF's reader checks both CRCs.
Up to `cycle_length` records are read in parallel, in order. A record that cannot be read or
parsed stops the stream with an `InvalidArgumentError` whose message names the file, the record
index and its byte offset (TF's own reader message has no file name; SPEC 10).

Sharding. With a `tf.distribute.InputContext` (from `strategy.distribute_datasets_from_function`)
input pipeline p reads only its contiguous slice of each global batch and yields it as
consecutive per-replica batches, one per local replica, the order in which the strategy hands
them out; so the replica batches of one step concatenate to the single-device global batch
(`progan_tf.training.distribute.split_batches`, which the in-memory source uses too).
"""

import tensorflow as tf

from data_tools.errors import DataError
from data_tools.pyramid import Pyramid, open_pyramid
from progan_tf.training.distribute import split_batches

__all__ = ["DataError", "Pyramid", "StreamOrder", "box_downsample2", "crossfade_reals", "make_dataset",
           "open_pyramid", "to_float_images", "upsample_nearest2"]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MIRROR_DOMAIN = 0x6D6972726F72  # "mirror"
FEISTEL_ROUNDS = 6


def _mix64_int(value):
    """SplitMix64 output function on a Python int (mod 2^64)."""
    z = (value + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _key_int(*parts):
    key = 0
    for part in parts:
        key = _mix64_int(key ^ (int(part) & _MASK64))
    return key


def _u64(value):
    return tf.constant(int(value) & _MASK64, tf.uint64)


def _mix64(z):
    """SplitMix64 output function on a uint64 tensor (arithmetic wraps mod 2^64)."""
    shift = tf.bitwise.right_shift
    z = z + _u64(_GOLDEN)
    z = tf.bitwise.bitwise_xor(z, shift(z, _u64(30))) * _u64(_MIX1)
    z = tf.bitwise.bitwise_xor(z, shift(z, _u64(27))) * _u64(_MIX2)
    return tf.bitwise.bitwise_xor(z, shift(z, _u64(31)))


class StreamOrder:
    """Record index and mirror flag at each stream position of one pyramid level.

    num_images: N records in the level; seed: any integer; level: log2 of the resolution.
    `records(positions)`: int64 [n] positions >= 0 -> int64 [n] record indices; positions
    e*N .. e*N + N - 1 visit every record once (epoch e). `flips(positions)` -> bool [n].
    Both are TF ops (eager or inside tf.data / tf.function).
    """

    def __init__(self, num_images, seed, level):
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        self.num_images = int(num_images)
        self.seed = int(seed)
        self.level = int(level)
        bits = max(2, (self.num_images - 1).bit_length())
        self.half_bits = (bits + 1) // 2
        self._level_key = _key_int(self.seed, self.level)
        self._mirror_key = _key_int(self.seed, self.level, _MIRROR_DOMAIN)

    def _round_keys(self, epochs):
        """uint64 [n, rounds] Feistel keys of each element's epoch (int64 [n])."""
        epoch_keys = _mix64(tf.bitwise.bitwise_xor(_u64(self._level_key), tf.cast(epochs, tf.uint64)))
        rounds = tf.range(FEISTEL_ROUNDS, dtype=tf.int64)
        return _mix64(epoch_keys[:, tf.newaxis] + tf.cast(rounds, tf.uint64)[tf.newaxis, :])

    def _feistel(self, values, round_keys):
        half, mask = _u64(self.half_bits), _u64((1 << self.half_bits) - 1)
        left = tf.bitwise.right_shift(values, half)
        right = tf.bitwise.bitwise_and(values, mask)
        for r in range(FEISTEL_ROUNDS):
            mixed = tf.bitwise.bitwise_and(_mix64(tf.bitwise.bitwise_xor(right, round_keys[:, r])), mask)
            left, right = right, tf.bitwise.bitwise_xor(left, mixed)
        return tf.bitwise.bitwise_or(tf.bitwise.left_shift(left, half), right)

    def permute(self, indices, epochs):
        """perm_epoch(index) for int64 [n] indices in [0, N) and int64 [n] epochs -> int64 [n]."""
        indices = tf.convert_to_tensor(indices, tf.int64)
        epochs = tf.broadcast_to(tf.convert_to_tensor(epochs, tf.int64), tf.shape(indices))
        round_keys = self._round_keys(epochs)
        limit = _u64(self.num_images)
        values = self._feistel(tf.cast(indices, tf.uint64), round_keys)

        def outside(values):
            return tf.reduce_any(values >= limit)

        def walk(values):  # cycle walking: re-encrypt values outside [0, N) until they land inside
            return (tf.where(values >= limit, self._feistel(values, round_keys), values),)

        (values,) = tf.while_loop(outside, walk, (values,))
        return tf.cast(values, tf.int64)

    def records(self, positions):
        positions = tf.convert_to_tensor(positions, tf.int64)
        return self.permute(positions % self.num_images, positions // self.num_images)

    def flips(self, positions):
        positions = tf.cast(tf.convert_to_tensor(positions, tf.int64), tf.uint64)
        bits = tf.bitwise.right_shift(_mix64(tf.bitwise.bitwise_xor(positions, _u64(self._mirror_key))), _u64(63))
        return tf.equal(bits, _u64(1))


def to_float_images(images_nchw):
    """uint8 [b, C, H, W] -> float32 [b, H, W, C] in [-1, 1]: x * 2/255 - 1 (SPEC 1.5)."""
    images = tf.transpose(images_nchw, [0, 2, 3, 1])
    return tf.cast(images, tf.float32) * (2.0 / 255.0) - 1.0


def box_downsample2(images):
    """2x2 mean: [N, H, W, C] -> [N, H/2, W/2, C]."""
    shape = tf.shape(images)
    blocks = tf.reshape(images, [shape[0], shape[1] // 2, 2, shape[2] // 2, 2, shape[3]])
    return tf.reduce_mean(blocks, axis=[2, 4])


def upsample_nearest2(images):
    """Nearest-neighbour 2x: [N, H, W, C] -> [N, 2H, 2W, C]."""
    shape = tf.shape(images)
    expanded = tf.broadcast_to(images[:, :, tf.newaxis, :, tf.newaxis, :],
                               [shape[0], shape[1], 2, shape[2], 2, shape[3]])
    return tf.reshape(expanded, [shape[0], 2 * shape[1], 2 * shape[2], shape[3]])


def crossfade_reals(images, alpha):
    """The original's cross-fade of reals during fade-in: lerp(up(down(images)), images, alpha).

    images: float [N, H, W, C] (H, W even); alpha: scalar (a tensor or variable, so changing it
    does not retrace a tf.function), 1 = images unchanged, 0 = the 2x2-mean, nearest-upsampled
    copy, i.e. what the previous resolution's data looks like. Returns [N, H, W, C].
    """
    images = tf.convert_to_tensor(images)
    coarse = upsample_nearest2(box_downsample2(images))
    return coarse + (images - coarse) * tf.cast(alpha, images.dtype)


class _LevelReader:
    """TF ops reading records of one level file by index; see the module docstring."""

    _FEATURES = {"shape": tf.io.FixedLenFeature([3], tf.int64), "data": tf.io.FixedLenFeature([], tf.string)}

    def __init__(self, pyramid, resolution):
        index = pyramid.indexes[resolution]
        self.path = index.path
        self.shape = pyramid.shape(resolution)
        self.stride = index.stride
        self.max_length = int(index.lengths.max())
        self.offsets = None if self.stride is not None else tf.constant(index.offsets)

    def offset(self, record):
        if self.stride is not None:
            return record * self.stride
        return tf.gather(self.offsets, record)

    def read(self, record, flip):
        """One-element dataset of (payload or b"" if unreadable, record, flip)."""
        variant = tf.raw_ops.TFRecordDatasetV2(
            filenames=tf.constant([self.path]), compression_type="",
            buffer_size=tf.constant(self.max_length + 16, tf.int64),
            byte_offsets=tf.reshape(self.offset(record), [1]))
        payloads = tf.data.experimental.from_variant(variant, tf.TensorSpec([], tf.string)).take(1)
        # A read error (bad CRC, truncated record, missing file) becomes an empty payload here and a
        # clear error in decode(), which knows the file, the record and the offset.
        payloads = payloads.ignore_errors().concatenate(tf.data.Dataset.from_tensors(tf.constant(b""))).take(1)
        return payloads.map(lambda payload: (payload, record, flip))

    def where(self, records):
        """string [b]: "<file>: record <i> at byte offset <o>" for int64 records [b]."""
        return tf.strings.join([self.path + ": record ", tf.strings.as_string(records),
                                " at byte offset ", tf.strings.as_string(self.offset(records))])

    def decode(self, payloads, records):
        """uint8 [b, C, H, W] from payloads [b] of records [b]; InvalidArgumentError naming the file,
        record and offset of the first bad one."""
        channels, height, width = self.shape
        names = self.where(records)
        readable = tf.strings.length(payloads) > 0
        first = tf.argmin(tf.cast(readable, tf.int32))
        check_read = tf.debugging.Assert(tf.reduce_all(readable), [
            tf.strings.join([names[first], " cannot be read (corrupt or truncated record, or the file "
                             "changed since it was opened); `python -m data_tools verify` checks every record"])])
        with tf.control_dependencies([check_read]):
            features = tf.io.parse_example(payloads, self._FEATURES, example_names=names)
        expected = tf.constant([channels, height, width], tf.int64)
        right = tf.logical_and(tf.reduce_all(tf.equal(features["shape"], expected), axis=1),
                               tf.equal(tf.strings.length(features["data"]), channels * height * width))
        bad = tf.argmin(tf.cast(right, tf.int32))
        check_shape = tf.debugging.Assert(tf.reduce_all(right), [
            tf.strings.join([names[bad], f" does not hold a [{channels}, {height}, {width}] uint8 image"])])
        with tf.control_dependencies([check_shape]):
            pixels = tf.io.decode_raw(features["data"], tf.uint8)
        return tf.reshape(pixels, [-1, channels, height, width])


def make_dataset(pyramid_or_dir, resolution, *, global_batch_size, seed, start_position=0,
                 mirror=False, input_context=None, repeat=True, cycle_length=16):
    """Batches of one pyramid level: (images float32 [b, R, R, C] in [-1, 1], labels float32 [b, L]).

    pyramid_or_dir: a Pyramid (from `open_pyramid`) or a pyramid directory.
    resolution: R, the level to read (4, 8, ..., the pyramid's resolution).
    global_batch_size: images per training step over all replicas.
    seed: integer; with the level and the stream position it fixes each image and its flip.
    start_position: first stream position; the stream equals the one from 0 with the first
        `start_position` images dropped (store the position in a checkpoint to resume exactly).
    mirror: flip each image left-right with probability 1/2 (a function of its position).
    input_context: tf.distribute.InputContext; then b = per-replica batch and this pipeline yields
        its local replicas' batches of each step in replica order (see the module docstring).
        None: b = global_batch_size.
    repeat: True for an endless stream; False for one pass over positions [start_position, N)
        (the last batch is partial without input_context, dropped with one).
    cycle_length: records read in parallel.
    labels are [b, 0] when the pyramid has no labels.
    """
    pyramid = pyramid_or_dir if isinstance(pyramid_or_dir, Pyramid) else open_pyramid(pyramid_or_dir)
    resolution, global_batch_size, start_position = int(resolution), int(global_batch_size), int(start_position)
    pyramid.check_resolution(resolution)
    if start_position < 0:
        raise ValueError(f"start_position must be >= 0, got {start_position}")
    split = split_batches(global_batch_size, input_context)
    num_images = pyramid.num_images
    label_size = pyramid.label_size
    labels = tf.constant(pyramid.labels if label_size else tf.zeros([num_images, 0], tf.float32))
    order = StreamOrder(num_images, seed, resolution.bit_length() - 1)
    reader = _LevelReader(pyramid, resolution)

    if repeat:
        chunks = tf.data.Dataset.counter()
        drop_remainder = True
    else:
        remaining = max(0, num_images - start_position)
        if input_context is None:
            num_chunks = -(-remaining // global_batch_size)
        else:
            num_chunks = (remaining // global_batch_size) * split.local_replicas
        chunks = tf.data.Dataset.range(num_chunks)
        drop_remainder = input_context is not None or remaining % global_batch_size == 0

    def positions_of(chunk):
        first = split.first_position(chunk, start_position)
        stop = first + split.per_replica
        stop = stop if repeat else tf.minimum(stop, num_images)
        positions = tf.range(first, stop, dtype=tf.int64)
        flips = order.flips(positions) if mirror else tf.zeros(tf.shape(positions), tf.bool)
        return tf.data.Dataset.from_tensor_slices((order.records(positions), flips))

    def decode(payloads, records, flips):
        images = to_float_images(reader.decode(payloads, records))
        if mirror:
            images = tf.where(flips[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(images, axis=[2]), images)
        return images, tf.gather(labels, records)

    dataset = chunks.flat_map(positions_of)
    # Each inner dataset holds exactly one record, so the deterministic interleave keeps the order.
    dataset = dataset.interleave(reader.read, cycle_length=cycle_length, block_length=1,
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(split.per_replica, drop_remainder=drop_remainder)
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
