"""The TFRecord pyramid format: record bytes, framing, level arithmetic, order, and opening pyramids."""

import os
import struct

import numpy as np
import pytest
import tensorflow as tf

from data_tools import records
from data_tools.errors import DataError
from data_tools.pyramid import (PyramidWriter, build_levels, labels_file_name, level_file_name, one_hot,
                                open_pyramid, original_order)


def write_pyramid(directory, images, labels=None):
    """Writes uint8 [N, C, R, R] images as a pyramid in `directory`; returns the directory."""
    with PyramidWriter(directory) as writer:
        writer.add(images)
        if labels is not None:
            writer.set_labels(labels)
        writer.commit()
    return str(directory)


def random_images(count, channels=3, resolution=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, channels, resolution, resolution), dtype=np.uint8)


def encode_shape_first(image):
    """An Example with the `shape` entry before `data`, as the original tool's runtime may write it."""
    def single(key, feature):
        return tf.train.Features(feature={key: feature}).SerializeToString()

    features = (single("shape", tf.train.Feature(int64_list=tf.train.Int64List(value=list(image.shape))))
                + single("data", tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()]))))
    return b"\x0a" + _varint(len(features)) + features


def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def parse_frames(content):
    """[(payload bytes)] of a TFRecord file, checking each frame field by hand."""
    payloads, offset = [], 0
    while offset < len(content):
        (length,) = struct.unpack_from("<Q", content, offset)
        (length_crc,) = struct.unpack_from("<I", content, offset + 8)
        assert length_crc == records.masked_crc32c(content[offset:offset + 8])
        payload = content[offset + 12:offset + 12 + length]
        (payload_crc,) = struct.unpack_from("<I", content, offset + 12 + length)
        assert payload_crc == records.masked_crc32c(payload)
        payloads.append(payload)
        offset += 16 + length
    assert offset == len(content)
    return payloads


def original_levels(image_chw):
    """The original TFRecordExporter.add_image arithmetic, one image at a time (reference)."""
    img, levels = image_chw, []
    for lod in range(int(np.log2(image_chw.shape[1])) - 1):
        if lod:
            img = img.astype(np.float32)
            img = (img[:, 0::2, 0::2] + img[:, 0::2, 1::2] + img[:, 1::2, 0::2] + img[:, 1::2, 1::2]) * 0.25
        levels.append(np.rint(img).clip(0, 255).astype(np.uint8))
    return levels


def test_crc32c_matches_the_standard_check_value():
    assert records.crc32c(b"123456789") == 0xE3069283
    assert records.crc32c(b"") == 0


def test_cifar10_sized_records_have_the_sizes_spec_quotes(tmp_path):
    # SPEC 4: 3x32x32 records take 98, 247, 823, 3127 bytes at r02..r05, 16 of them framing.
    directory = write_pyramid(tmp_path / "cifar", random_images(5, 3, 32))
    for resolution, frame_bytes in ((4, 98), (8, 247), (16, 823), (32, 3127)):
        path = os.path.join(directory, level_file_name("cifar", resolution))
        content = open(path, "rb").read()
        assert len(content) == 5 * frame_bytes
        payloads = parse_frames(content)
        assert [len(p) for p in payloads] == [frame_bytes - 16] * 5
    assert sorted(os.listdir(directory)) == ["cifar-r02.tfrecords", "cifar-r03.tfrecords", "cifar-r04.tfrecords",
                                             "cifar-r05.tfrecords", "manifest.json"]


def test_labels_file_has_the_size_spec_quotes_for_cifar10(tmp_path):
    labels = one_hot(np.arange(50000) % 10)
    with PyramidWriter(tmp_path / "c") as writer:
        writer.add(np.zeros((50000, 3, 4, 4), np.uint8))
        writer.set_labels(labels)
        writer.commit()
    path = tmp_path / "c" / labels_file_name("c")
    assert path.name == "c-rxx.labels"
    # SPEC 4: 2,000,080 bytes with the original's numpy, an 80-byte .npy header; the header length
    # varies by numpy version (128 bytes with numpy 2), the 2,000,000 data bytes do not.
    content = path.read_bytes()
    assert content[:8] == b"\x93NUMPY\x01\x00"
    header_bytes = 10 + struct.unpack_from("<H", content, 8)[0]
    assert len(content) - header_bytes == 2000000
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), labels)


def test_example_bytes_are_sorted_and_equal_to_tensorflow_serialization():
    image = random_images(1, 3, 4)[0]
    payload = records.encode_example(image)
    assert len(payload) == 82
    assert payload.index(b"data") < payload.index(b"shape")
    parsed = tf.train.Example.FromString(payload)
    assert list(parsed.features.feature["shape"].int64_list.value) == [3, 4, 4]
    assert parsed.features.feature["data"].bytes_list.value[0] == image.tobytes()
    # The hand-made shape-first variant holds the same content in the same number of bytes.
    other = encode_shape_first(image)
    assert len(other) == len(payload) and other != payload
    assert tf.train.Example.FromString(other) == parsed


@pytest.mark.parametrize("encode", [records.encode_example, encode_shape_first])
def test_parser_reads_either_entry_order(encode):
    image = random_images(1, 1, 8)[0]
    decoded = records.decode_image(encode(image), (1, 8, 8))
    np.testing.assert_array_equal(decoded, image)


def test_parser_rejects_malformed_examples():
    def example(**features):
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()

    shape = tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 4, 4]))
    with pytest.raises(ValueError, match="no bytes feature 'data'"):
        records.parse_example(example(shape=shape))
    short = tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(10)]))
    with pytest.raises(ValueError, match="data has 10 bytes, shape \\[1, 4, 4\\] needs 16"):
        records.decode_image(example(shape=shape, data=short))
    with pytest.raises(ValueError, match="truncated|past the end"):
        records.parse_example(records.encode_example(np.zeros((1, 4, 4), np.uint8))[:-3])


def test_our_framing_equals_tensorflow_writer_bytes(tmp_path):
    payloads = [records.encode_example(image) for image in random_images(3, 3, 4)]
    path = str(tmp_path / "x.tfrecords")
    with tf.io.TFRecordWriter(path) as writer:
        for payload in payloads:
            writer.write(payload)
    assert open(path, "rb").read() == b"".join(records.frame_record(p) for p in payloads)


def test_levels_follow_the_original_arithmetic():
    images = random_images(4, 3, 32, seed=1)
    ours = build_levels(images)
    assert [level.shape[-1] for level in ours] == [32, 16, 8, 4]
    for i, image in enumerate(images):
        for level, reference in zip(ours, original_levels(image)):
            np.testing.assert_array_equal(level[i], reference)


def test_levels_round_half_to_even_from_unrounded_values():
    # Columns 0, 1, 2, 3 repeated: the 2x2 means of the 8x8 level are 0.5 and 2.5, stored as 0 and
    # 2 (half to even; floor(x + 0.5) would give 1 and 3). The 4x4 level averages the unrounded
    # 0.5 and 2.5 to 1.5 -> 2; averaging the stored 0 and 2 would give 1.
    top = np.tile(np.array([0, 1, 2, 3], np.uint8), (16, 4))[None, None]  # [1, 1, 16, 16]
    levels = build_levels(top)
    assert np.all(levels[1][0, 0, :, 0::2] == 0) and np.all(levels[1][0, 0, :, 1::2] == 2)
    assert np.all(levels[2] == 2)


def test_original_order_is_randomstate_123_shuffle():
    expected = np.arange(10)
    np.random.RandomState(123).shuffle(expected)
    np.testing.assert_array_equal(original_order(10), expected)


def test_output_is_byte_for_byte_reproducible(tmp_path):
    images = random_images(6, 3, 16)
    first = write_pyramid(tmp_path / "a" / "p", images, one_hot(np.arange(6) % 3))
    second = write_pyramid(tmp_path / "b" / "p", images, one_hot(np.arange(6) % 3))
    for name in sorted(os.listdir(first)):
        assert open(os.path.join(first, name), "rb").read() == open(os.path.join(second, name), "rb").read()


def test_pyramid_reads_back_exactly(tmp_path):
    images = random_images(7, 1, 16)
    labels = one_hot(np.arange(7) % 4)
    pyramid = open_pyramid(write_pyramid(tmp_path / "p", images, labels))
    assert (pyramid.resolution, pyramid.num_channels, pyramid.num_images, pyramid.label_size) == (16, 1, 7, 4)
    assert pyramid.resolutions == (4, 8, 16)
    np.testing.assert_array_equal(pyramid.labels, labels)
    expected = build_levels(images)
    for resolution, level in zip((16, 8, 4), expected):
        with pyramid.open_level(resolution) as reader:
            for i in range(7):
                np.testing.assert_array_equal(reader.image(i, (1, resolution, resolution)), level[i])


def write_original_style(directory, images, labels=None):
    """A pyramid as the original tool may write it: shape-first entries, framed by hand."""
    os.makedirs(directory)
    name = os.path.basename(directory)
    for resolution_levels in zip(*[build_levels(images[i:i + 1]) for i in range(len(images))]):
        resolution = resolution_levels[0].shape[-1]
        with open(os.path.join(directory, level_file_name(name, resolution)), "wb") as file:
            for level in resolution_levels:
                file.write(records.frame_record(encode_shape_first(level[0])))
    if labels is not None:
        np.save(os.path.join(directory, labels_file_name(name)), labels.astype(np.float32))
    return directory


def test_files_with_the_other_entry_order_open_and_read_the_same(tmp_path):
    images = random_images(5, 3, 8)
    ours = open_pyramid(write_pyramid(tmp_path / "ours", images))
    theirs = open_pyramid(write_original_style(str(tmp_path / "theirs"), images))
    assert theirs.num_images == 5 and theirs.resolution == 8
    for resolution in (4, 8):
        with ours.open_level(resolution) as a, theirs.open_level(resolution) as b:
            for i in range(5):
                assert bytes(a.payload(i)) != bytes(b.payload(i))
                np.testing.assert_array_equal(a.image(i), b.image(i))


def test_missing_level_is_named(tmp_path):
    directory = write_pyramid(tmp_path / "p", random_images(3, 3, 16))
    os.remove(os.path.join(directory, "p-r03.tfrecords"))
    with pytest.raises(DataError, match=r"p-r03\.tfrecords: missing level file for 8x8"):
        open_pyramid(directory)


def test_levels_with_different_counts_are_named(tmp_path):
    directory = write_pyramid(tmp_path / "p", random_images(3, 3, 8))
    path = os.path.join(directory, "p-r02.tfrecords")
    content = open(path, "rb").read()
    open(path, "wb").write(content[:2 * 98])
    with pytest.raises(DataError, match=r"p-r02\.tfrecords: 2 records, but .*p-r03\.tfrecords has 3"):
        open_pyramid(directory)


def test_level_whose_name_disagrees_with_its_records_is_named(tmp_path):
    directory = write_pyramid(tmp_path / "p", random_images(2, 3, 8))
    os.rename(os.path.join(directory, "p-r02.tfrecords"), os.path.join(directory, "p-r04.tfrecords"))
    with pytest.raises(DataError, match=r"p-r04\.tfrecords: the name says 16x16 but the records are 4x4"):
        open_pyramid(directory)


def test_truncated_level_file_names_file_record_and_offset(tmp_path):
    directory = write_pyramid(tmp_path / "p", random_images(4, 3, 8))
    path = os.path.join(directory, "p-r03.tfrecords")
    content = open(path, "rb").read()
    open(path, "wb").write(content[:-10])
    with pytest.raises(DataError, match=r"p-r03\.tfrecords: record 3 at byte offset 741 is truncated"):
        open_pyramid(directory)


def test_corrupt_length_header_is_named(tmp_path):
    directory = write_pyramid(tmp_path / "p", random_images(4, 3, 8))
    path = os.path.join(directory, "p-r03.tfrecords")
    content = bytearray(open(path, "rb").read())
    content[247 * 2] ^= 0xFF  # record 2's length field
    open(path, "wb").write(bytes(content))
    with pytest.raises(DataError, match=r"p-r03\.tfrecords: record 2 at byte offset 494 is corrupt"):
        open_pyramid(directory)


def test_corrupt_payload_is_named_by_the_checked_reader(tmp_path):
    directory = write_pyramid(tmp_path / "p", random_images(4, 3, 8))
    path = os.path.join(directory, "p-r03.tfrecords")
    content = bytearray(open(path, "rb").read())
    content[247 * 3 + 100] ^= 0x01  # a pixel of record 3
    open(path, "wb").write(bytes(content))
    with pytest.raises(DataError, match=r"p-r03\.tfrecords: record 3 at byte offset 741 is corrupt or truncated"):
        list(records.iter_payloads(path))


def test_labels_with_the_wrong_row_count_are_named(tmp_path):
    directory = write_pyramid(tmp_path / "p", random_images(3, 3, 4))
    np.save(os.path.join(directory, "p-rxx.labels"), np.zeros((4, 2), np.float32))
    os.rename(os.path.join(directory, "p-rxx.labels.npy"), os.path.join(directory, "p-rxx.labels"))
    with pytest.raises(DataError, match=r"p-rxx\.labels: 4 label rows for 3 images"):
        open_pyramid(directory)


def test_pickled_labels_are_refused(tmp_path):
    directory = write_pyramid(tmp_path / "p", random_images(2, 3, 4))
    np.save(os.path.join(directory, "p-rxx.labels.npy"), np.array([{"a": 1}, {"b": 2}], dtype=object),
            allow_pickle=True)
    os.rename(os.path.join(directory, "p-rxx.labels.npy"), os.path.join(directory, "p-rxx.labels"))
    with pytest.raises(DataError, match=r"p-rxx\.labels: not a readable \.npy labels file"):
        open_pyramid(directory)


def test_not_a_pyramid_directory(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        open_pyramid(tmp_path / "absent")
    with pytest.raises(DataError, match=r"no \.tfrecords files"):
        open_pyramid(tmp_path)


def test_files_with_records_of_different_sizes_are_indexed_one_by_one(tmp_path):
    payloads = [b"a" * 10, b"b" * 300, b"c"]
    path = tmp_path / "x.tfrecords"
    path.write_bytes(b"".join(records.frame_record(p) for p in payloads))
    index = records.scan_record_index(path)
    np.testing.assert_array_equal(index.offsets, [0, 26, 342])
    np.testing.assert_array_equal(index.lengths, [10, 300, 1])
    assert index.stride is None
    with records.RecordFile(index) as file:
        assert [bytes(file.payload(i)) for i in range(3)] == payloads


def test_existing_output_is_refused_and_failed_writes_leave_nothing(tmp_path):
    directory = write_pyramid(tmp_path / "p", random_images(2, 3, 4))
    with pytest.raises(DataError, match="already exists and is not empty; pass --overwrite"):
        PyramidWriter(directory)
    with pytest.raises(RuntimeError):
        with PyramidWriter(tmp_path / "q") as writer:
            writer.add(random_images(2, 3, 4))
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["p"]
    # --overwrite replaces a pyramid, but never a directory holding other files.
    write_pyramid_over = PyramidWriter(directory, overwrite=True)
    write_pyramid_over.add(random_images(3, 3, 4))
    write_pyramid_over.commit()
    assert open_pyramid(directory).num_images == 3
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="holds files that are not part of a pyramid"):
        PyramidWriter(tmp_path / "other", overwrite=True)
