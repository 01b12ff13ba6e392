"""progan_tf.data: the order of reals, decoding, sharding under tf.distribute, errors, cross-fade."""

import os
import subprocess
import sys
import textwrap

import conftest
import numpy as np
import pytest
import tensorflow as tf

from data_tools import records
from data_tools.pyramid import PyramidWriter, build_levels, one_hot
from progan_tf import data

NUM_IMAGES = 20


@pytest.fixture(scope="module")
def pyramid_dir(tmp_path_factory):
    """20 random 3x8x8 images with one-hot labels of 4 classes."""
    directory = tmp_path_factory.mktemp("data") / "tiny"
    images = np.random.default_rng(0).integers(0, 256, (NUM_IMAGES, 3, 8, 8), dtype=np.uint8)
    with PyramidWriter(directory) as writer:
        writer.add(images)
        writer.set_labels(one_hot(np.arange(NUM_IMAGES) % 4))
        writer.commit()
    return str(directory)


@pytest.fixture(scope="module")
def stored(pyramid_dir):
    """uint8 [N, C, R, R] of each level, as written."""
    images = np.random.default_rng(0).integers(0, 256, (NUM_IMAGES, 3, 8, 8), dtype=np.uint8)
    return dict(zip((8, 4), build_levels(images)))


def take(dataset, count):
    images, labels = [], []
    for batch_images, batch_labels in dataset.take(count):
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels)


# --- order -------------------------------------------------------------------------------------

_M = (1 << 64) - 1


def reference_mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & _M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    return z ^ (z >> 31)


def reference_record(position, num_images, seed, level):
    """The module docstring's formula in plain Python ints."""
    epoch, index = divmod(position, num_images)
    key = 0
    for part in (seed, level):
        key = reference_mix64(key ^ (part & _M))
    epoch_key = reference_mix64(key ^ epoch)
    round_keys = [reference_mix64((epoch_key + r) & _M) for r in range(6)]
    half = (max(2, (num_images - 1).bit_length()) + 1) // 2
    mask = (1 << half) - 1
    value = index
    while True:
        left, right = value >> half, value & mask
        for round_key in round_keys:
            left, right = right, left ^ (reference_mix64(right ^ round_key) & mask)
        value = (left << half) | right
        if value < num_images:
            return value


def test_order_matches_the_documented_formula():
    order = data.StreamOrder(37, seed=-5, level=3)
    positions = np.arange(0, 120)
    expected = [reference_record(int(p), 37, -5, 3) for p in positions]
    np.testing.assert_array_equal(order.records(positions).numpy(), expected)


@pytest.mark.parametrize("num_images", [1, 2, 3, 20, 1000])
def test_each_epoch_is_a_fresh_permutation(num_images):
    order = data.StreamOrder(num_images, seed=1, level=5)
    epochs = order.records(np.arange(3 * num_images)).numpy().reshape(3, num_images)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(num_images))
    if num_images >= 20:
        assert not np.array_equal(epochs[0], epochs[1])
        assert not np.array_equal(epochs[0], np.arange(num_images))


def test_order_depends_on_seed_and_level():
    positions = np.arange(1000)
    base = data.StreamOrder(1000, seed=1, level=5).records(positions).numpy()
    assert not np.array_equal(base, data.StreamOrder(1000, seed=2, level=5).records(positions).numpy())
    assert not np.array_equal(base, data.StreamOrder(1000, seed=1, level=6).records(positions).numpy())


def test_flips_are_fair_and_positional():
    order = data.StreamOrder(10, seed=3, level=2)
    flips = order.flips(np.arange(4000)).numpy()
    assert 0.45 < flips.mean() < 0.55
    np.testing.assert_array_equal(order.flips(np.arange(1000, 1010)).numpy(), flips[1000:1010])


# --- values ------------------------------------------------------------------------------------

def test_batches_hold_the_records_in_stream_order_as_floats(pyramid_dir, stored):
    dataset = data.make_dataset(pyramid_dir, 8, global_batch_size=8, seed=7, repeat=False)
    images, labels = take(dataset, 10)
    assert images.shape == (NUM_IMAGES, 8, 8, 3) and images.dtype == np.float32
    ids = data.StreamOrder(NUM_IMAGES, 7, 3).records(np.arange(NUM_IMAGES)).numpy()
    expected = stored[8][ids].transpose(0, 2, 3, 1).astype(np.float32) * np.float32(2 / 255) - 1
    np.testing.assert_allclose(images, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(labels, one_hot(np.arange(NUM_IMAGES) % 4)[ids])
    assert images.min() >= -1.0 and images.max() <= 1.0
    pixel = stored[8][ids[0], 0, 0, 0]
    assert images[0, 0, 0, 0] == pytest.approx(pixel / 127.5 - 1, abs=1e-6)


def test_uint8_extremes_map_to_minus_one_and_one():
    images = data.to_float_images(tf.constant([[[[0, 255]]]], tf.uint8)).numpy()
    assert images.tolist() == [[[[-1.0], [1.0]]]]


def test_lower_level_is_read_from_its_own_file(pyramid_dir, stored):
    images, _ = take(data.make_dataset(pyramid_dir, 4, global_batch_size=5, seed=0, repeat=False), 4)
    ids = data.StreamOrder(NUM_IMAGES, 0, 2).records(np.arange(NUM_IMAGES)).numpy()
    np.testing.assert_allclose(images, stored[4][ids].transpose(0, 2, 3, 1) / 127.5 - 1, atol=1e-6)


def test_one_pass_ends_with_a_partial_batch(pyramid_dir):
    batches = list(data.make_dataset(pyramid_dir, 8, global_batch_size=8, seed=0, repeat=False))
    assert [int(images.shape[0]) for images, _ in batches] == [8, 8, 4]


def test_start_position_drops_exactly_that_many_images(pyramid_dir):
    # Positions 5 .. 52 cross two epoch boundaries (N = 20); mirror flips must line up too.
    full, full_labels = take(data.make_dataset(pyramid_dir, 8, global_batch_size=8, seed=3, mirror=True), 7)
    resumed, resumed_labels = take(
        data.make_dataset(pyramid_dir, 8, global_batch_size=8, seed=3, mirror=True, start_position=5), 6)
    np.testing.assert_array_equal(resumed, full[5:5 + 48])
    np.testing.assert_array_equal(resumed_labels, full_labels[5:5 + 48])


def test_mirror_flips_the_width_axis_of_the_chosen_images(pyramid_dir):
    plain, _ = take(data.make_dataset(pyramid_dir, 8, global_batch_size=10, seed=4), 4)
    mirrored, _ = take(data.make_dataset(pyramid_dir, 8, global_batch_size=10, seed=4, mirror=True), 4)
    flips = data.StreamOrder(NUM_IMAGES, 4, 3).flips(np.arange(40)).numpy()
    assert 0 < flips.sum() < 40
    np.testing.assert_array_equal(mirrored[flips], plain[flips][:, :, ::-1, :])
    np.testing.assert_array_equal(mirrored[~flips], plain[~flips])


def test_unlabeled_pyramid_gives_empty_label_rows(tmp_path):
    with PyramidWriter(tmp_path / "u") as writer:
        writer.add(np.zeros((3, 1, 4, 4), np.uint8))
        writer.commit()
    images, labels = next(iter(data.make_dataset(tmp_path / "u", 4, global_batch_size=2, seed=0)))
    assert images.shape == (2, 4, 4, 1) and labels.shape == (2, 0) and labels.dtype == tf.float32


def test_records_of_different_sizes_are_read_through_the_offset_table(tmp_path):
    # An unpacked `shape` encoding (legal protobuf) makes records 0 and 2 longer than record 1.
    directory = tmp_path / "mixed"
    directory.mkdir()
    images = np.random.default_rng(1).integers(0, 256, (3, 1, 4, 4), dtype=np.uint8)
    with open(directory / "mixed-r02.tfrecords", "wb") as file:
        for i, image in enumerate(images):
            payload = records.encode_example(image)
            if i != 1:
                data_entry = payload[2:2 + 2 + payload[3]]
                shape_entry_body = b"\x0a\x05shape\x12\x08\x1a\x06" + b"".join(b"\x08" + bytes([v]) for v in image.shape)
                features = data_entry + b"\x0a" + bytes([len(shape_entry_body)]) + shape_entry_body
                payload = b"\x0a" + bytes([len(features)]) + features
                np.testing.assert_array_equal(records.decode_image(payload), image)
            file.write(records.frame_record(payload))
    pyramid = data.open_pyramid(directory)
    assert pyramid.indexes[4].stride is None
    got, _ = take(data.make_dataset(pyramid, 4, global_batch_size=3, seed=0, repeat=False), 1)
    ids = data.StreamOrder(3, 0, 2).records(np.arange(3)).numpy()
    np.testing.assert_allclose(got, images[ids].transpose(0, 2, 3, 1) / 127.5 - 1, atol=1e-6)


# --- sharding ----------------------------------------------------------------------------------

def test_mirrored_strategy_replicas_concatenate_to_the_global_batch(pyramid_dir):
    strategy = conftest.two_replicas()
    assert strategy.num_replicas_in_sync == 2

    def dataset_fn(input_context):
        return data.make_dataset(pyramid_dir, 8, global_batch_size=8, seed=5, mirror=True, start_position=3,
                                 input_context=input_context)

    distributed = iter(strategy.distribute_datasets_from_function(dataset_fn))
    single = iter(data.make_dataset(pyramid_dir, 8, global_batch_size=8, seed=5, mirror=True, start_position=3))
    for _ in range(4):
        images, labels = next(distributed)
        local_images = strategy.experimental_local_results(images)
        assert [tuple(x.shape) for x in local_images] == [(4, 8, 8, 3)] * 2
        expected_images, expected_labels = next(single)
        np.testing.assert_array_equal(np.concatenate([x.numpy() for x in local_images]), expected_images)
        np.testing.assert_array_equal(
            np.concatenate([x.numpy() for x in strategy.experimental_local_results(labels)]), expected_labels)


def test_each_input_pipeline_reads_its_slice_of_every_global_batch(pyramid_dir):
    # 2 workers (pipelines) x 2 replicas each, global batch 8: per-replica batches of 2.
    single, _ = take(data.make_dataset(pyramid_dir, 8, global_batch_size=8, seed=9), 3)
    pipelines = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=4)
        batches = [x.numpy() for x, _ in data.make_dataset(pyramid_dir, 8, global_batch_size=8, seed=9,
                                                           input_context=context).take(6)]
        assert all(batch.shape[0] == 2 for batch in batches)
        pipelines.append(batches)
    for step in range(3):
        replicas = pipelines[0][2 * step:2 * step + 2] + pipelines[1][2 * step:2 * step + 2]
        np.testing.assert_array_equal(np.concatenate(replicas), single[8 * step:8 * step + 8])


def test_batch_sizes_that_do_not_split_are_refused(pyramid_dir):
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=3)
    with pytest.raises(ValueError, match="global_batch_size 8 is not divisible by the 3 replicas"):
        data.make_dataset(pyramid_dir, 8, global_batch_size=8, seed=0, input_context=context)
    with pytest.raises(data.DataError, match="no level for resolution 16"):
        data.make_dataset(pyramid_dir, 16, global_batch_size=8, seed=0)


# --- errors ------------------------------------------------------------------------------------

def test_corrupt_record_while_reading_names_file_record_and_offset(tmp_path, pyramid_dir):
    directory = tmp_path / "tiny"
    directory.mkdir()
    for name in os.listdir(pyramid_dir):
        (directory / name).write_bytes(open(os.path.join(pyramid_dir, name), "rb").read())
    path = directory / "tiny-r03.tfrecords"
    content = bytearray(path.read_bytes())
    stride = len(content) // NUM_IMAGES
    content[stride * 6 + 50] ^= 0x10  # one pixel of record 6: its payload CRC no longer matches
    path.write_bytes(bytes(content))
    dataset = data.make_dataset(directory, 8, global_batch_size=NUM_IMAGES, seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        next(iter(dataset))
    assert f"{path}: record 6 at byte offset {6 * stride} cannot be read" in caught.value.message


def test_record_with_the_wrong_shape_is_named(tmp_path):
    directory = tmp_path / "bad"
    directory.mkdir()
    good = records.encode_example(np.zeros((1, 4, 4), np.uint8))
    odd = tf.train.Example(features=tf.train.Features(feature={
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2, 8])),
        "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(16)]))})).SerializeToString(
            deterministic=True)
    assert len(odd) == len(good)
    (directory / "bad-r02.tfrecords").write_bytes(records.frame_record(good) + records.frame_record(odd))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bad-r02\.tfrecords: record 1 at byte offset "
                       + str(16 + len(good)) + r" does not hold a \[1, 4, 4\] uint8 image"):
        list(data.make_dataset(directory, 4, global_batch_size=2, seed=0, repeat=False))


def test_process_exits_while_an_iterator_is_alive(pyramid_dir):
    # A live iterator at interpreter exit must not hang the process (no Python inside the pipeline).
    script = textwrap.dedent(f"""
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        from progan_tf import data
        iterator = iter(data.make_dataset({pyramid_dir!r}, 8, global_batch_size=4, seed=0, mirror=True))
        next(iterator)
        print("ok")
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


# --- cross-fade --------------------------------------------------------------------------------

def test_crossfade_at_alpha_one_returns_the_images():
    images = tf.random.stateless_uniform([2, 4, 4, 3], seed=[1, 2])
    np.testing.assert_array_equal(data.crossfade_reals(images, tf.constant(1.0)), images)


def test_crossfade_at_alpha_zero_is_the_upsampled_block_mean():
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    # Block means of [[0, 1], [4, 5]] = 2.5, [[2, 3], [6, 7]] = 4.5, then 10.5 and 12.5.
    expected = np.array([[2.5, 2.5, 4.5, 4.5], [2.5, 2.5, 4.5, 4.5],
                         [10.5, 10.5, 12.5, 12.5], [10.5, 10.5, 12.5, 12.5]], np.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(data.crossfade_reals(image, tf.constant(0.0)), expected)
    quarter = data.crossfade_reals(image, tf.constant(0.25))
    np.testing.assert_allclose(quarter, expected + 0.25 * (image - expected), rtol=1e-6)


def test_crossfade_alpha_changes_do_not_retrace():
    crossfade = tf.function(data.crossfade_reals)
    images = tf.zeros([2, 8, 8, 3])
    alpha = tf.Variable(0.0)
    for value in (0.0, 0.3, 1.0):
        alpha.assign(value)
        crossfade(images, alpha)
        crossfade(images, tf.constant(value))
    assert crossfade.experimental_get_tracing_count() == 2  # one for the variable, one for tensors
