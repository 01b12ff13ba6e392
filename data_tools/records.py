"""TFRecord files of ProGAN images: framing, `tf.train.Example` encoding, and reading.

A TFRecord file is a sequence of records, each framed as

    u64 length (little endian) | u32 masked CRC-32C of those 8 bytes | payload | u32 masked CRC-32C of payload

and each payload here is a `tf.train.Example` with two features: `shape` = int64 [C, H, W] and
`data` = one bytes value holding the uint8 pixels in CHW order. Writing goes through TensorFlow's
`TFRecordWriter` (CRC in C++) with `SerializeToString(deterministic=True)`, so map entries are
sorted (`data` before `shape`) and our output is byte-for-byte reproducible. Reading accepts any
valid encoding, in particular either order of the two entries: the original tool's protobuf
runtime picks the order per process.

Random access (for the training pipeline) uses an index of record offsets computed once per file
(`scan_record_index`) and `os.pread`; the framing of every record read is checked, and a bad
record raises `DataError` naming the file, the record index and its byte offset. Payload CRCs are
checked by the sequential reader `iter_payloads` (TensorFlow's reader, used by `verify`).
"""

import os
import re
import struct

import numpy as np

from data_tools.errors import DataError

HEADER_BYTES = 12  # u64 length + u32 masked CRC of the length
FOOTER_BYTES = 4  # u32 masked CRC of the payload
FRAMING_BYTES = HEADER_BYTES + FOOTER_BYTES


def _make_crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # Castagnoli polynomial, reflected
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli) of `data` (bytes-like); pure Python, meant for headers and tests."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    """TFRecord's masked CRC: rotate the CRC-32C right by 15 bits and add 0xA282EAD8."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(payload):
    """The bytes TFRecordWriter writes for one record (used by tests and the index checks)."""
    length = struct.pack("<Q", len(payload))
    return (length + struct.pack("<I", masked_crc32c(length)) + bytes(payload)
            + struct.pack("<I", masked_crc32c(payload)))


def encode_example(image_chw):
    """Serialized `tf.train.Example` of one uint8 image [C, H, W], map entries sorted by key."""
    import tensorflow as tf  # noqa: PLC0415 (heavy import, only for writing)

    image_chw = np.ascontiguousarray(image_chw, dtype=np.uint8)
    example = tf.train.Example(features=tf.train.Features(feature={
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(image_chw.shape))),
        "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_chw.tobytes()])),
    }))
    return example.SerializeToString(deterministic=True)


# --- a small, strict protobuf reader for exactly the messages above ----------------------------

def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf):
    """Yields (field number, wire type, value) of a protobuf message; value is an int or a memoryview."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError("length-delimited field runs past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise ValueError("field runs past the end of its message")
        yield number, wire, value


def _int64_list(buf):
    values = []
    for number, wire, value in _fields(buf):
        if number != 1:
            continue
        if wire == 0:
            values.append(value)
        elif wire == 2:  # packed
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                values.append(item)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in values]


def _bytes_list(buf):
    return [value for number, wire, value in _fields(buf) if number == 1 and wire == 2]


def parse_example(payload):
    """(shape, data) of a serialized Example with `shape` int64 and `data` bytes features.

    payload: bytes-like. Returns shape as a tuple of ints and data as a memoryview into payload.
    Raises ValueError describing what is missing or malformed. Entry order does not matter.
    """
    buf = memoryview(payload)
    shape = data = None
    for number, wire, features in _fields(buf):
        if number != 1 or wire != 2:
            continue
        for entry_number, entry_wire, entry in _fields(features):
            if entry_number != 1 or entry_wire != 2:
                continue
            key, feature = None, memoryview(b"")
            for field_number, field_wire, value in _fields(entry):
                if field_number == 1 and field_wire == 2:
                    key = bytes(value)
                elif field_number == 2 and field_wire == 2:
                    feature = value
            for kind, _, content in _fields(feature):
                if key == b"shape" and kind == 3:
                    shape = tuple(_int64_list(content))
                elif key == b"data" and kind == 1:
                    values = _bytes_list(content)
                    if len(values) != 1:
                        raise ValueError(f"feature 'data' holds {len(values)} values, expected 1")
                    data = values[0]
    if shape is None:
        raise ValueError("no int64 feature 'shape'")
    if data is None:
        raise ValueError("no bytes feature 'data'")
    return shape, data


def decode_image(payload, expected_shape=None):
    """uint8 [C, H, W] array (read-only view) of one serialized Example; ValueError if malformed."""
    shape, data = parse_example(payload)
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(f"shape {list(shape)} is not [C, H, W]")
    if expected_shape is not None and tuple(shape) != tuple(expected_shape):
        raise ValueError(f"shape {list(shape)} differs from {list(expected_shape)} of the file's first record")
    if len(data) != shape[0] * shape[1] * shape[2]:
        raise ValueError(f"data has {len(data)} bytes, shape {list(shape)} needs {np.prod(shape)}")
    return np.frombuffer(data, np.uint8).reshape(shape)


# --- record index and random access ------------------------------------------------------------

class RecordIndex:
    """Offsets (of each record's header) and payload lengths of one TFRecord file.

    path: the file; offsets, lengths: int64 [N]. `len(index)` is N.
    """

    def __init__(self, path, offsets, lengths):
        self.path = str(path)
        self.offsets = np.asarray(offsets, np.int64)
        self.lengths = np.asarray(lengths, np.int64)

    def __len__(self):
        return len(self.offsets)

    @property
    def stride(self):
        """Frame size when every record has the same size (offsets = i * stride), else None."""
        if len(self) == 0:
            return None
        stride = int(self.lengths[0]) + FRAMING_BYTES
        if np.all(self.lengths == self.lengths[0]) and np.array_equal(
                self.offsets, np.arange(len(self), dtype=np.int64) * stride):
            return stride
        return None

    def record_at_offset(self, offset):
        """Index of the record whose frame contains byte `offset` (for error messages)."""
        return max(int(np.searchsorted(self.offsets, offset, side="right")) - 1, 0)


def _read_header(fd, path, record, offset, file_size):
    header = os.pread(fd, HEADER_BYTES, offset)
    if len(header) < HEADER_BYTES:
        raise DataError(f"{path}: record {record} at byte offset {offset} is truncated "
                        f"(the file ends after {file_size} bytes)")
    (length,) = struct.unpack_from("<Q", header)
    (length_crc,) = struct.unpack_from("<I", header, 8)
    if length_crc != masked_crc32c(header[:8]):
        raise DataError(f"{path}: record {record} at byte offset {offset} is corrupt "
                        "(length checksum mismatch)")
    if offset + FRAMING_BYTES + length > file_size:
        raise DataError(f"{path}: record {record} at byte offset {offset} is truncated "
                        f"(needs {FRAMING_BYTES + length} bytes, the file ends after {file_size})")
    return length


def scan_record_index(path):
    """RecordIndex of a TFRecord file; DataError naming the file, record and offset if the framing is bad.

    Every record of a pyramid level has the same size, so when the file size is a multiple of the
    first record's frame size the index is computed without reading each header (a few sampled
    headers are checked; every record read later is checked in full). Otherwise each header is read.
    """
    path = str(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise DataError(f"{path}: cannot open ({error.strerror})") from None
    try:
        file_size = os.fstat(fd).st_size
        if file_size == 0:
            return RecordIndex(path, [], [])
        first_length = _read_header(fd, path, 0, 0, file_size)
        stride = first_length + FRAMING_BYTES
        if file_size % stride == 0:
            count = file_size // stride
            samples = sorted({0, count // 3, count // 2, count - 1})
            if all(_read_header(fd, path, i, i * stride, file_size) == first_length for i in samples):
                return RecordIndex(path, np.arange(count, dtype=np.int64) * stride,
                                   np.full(count, first_length, np.int64))
        offsets, lengths = [], []
        offset = 0
        while offset < file_size:
            length = _read_header(fd, path, len(offsets), offset, file_size)
            offsets.append(offset)
            lengths.append(length)
            offset += length + FRAMING_BYTES
        return RecordIndex(path, offsets, lengths)
    finally:
        os.close(fd)


class RecordFile:
    """Random access to the payloads of one TFRecord file through its RecordIndex (os.pread).

    Safe to use from several threads (pread has no shared file position). Close it, or use `with`.
    """

    def __init__(self, index):
        self.index = index
        self.path = index.path
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as error:
            raise DataError(f"{self.path}: cannot open ({error.strerror})") from None

    def payload(self, record):
        """Payload bytes of record number `record`; DataError if its frame does not match the index."""
        offset = int(self.index.offsets[record])
        length = int(self.index.lengths[record])
        frame = os.pread(self._fd, length + FRAMING_BYTES, offset)
        if len(frame) != length + FRAMING_BYTES:
            raise DataError(f"{self.path}: record {record} at byte offset {offset} is truncated "
                            "(the file is shorter than when it was opened)")
        (stored_length,) = struct.unpack_from("<Q", frame)
        (length_crc,) = struct.unpack_from("<I", frame, 8)
        if stored_length != length or length_crc != masked_crc32c(frame[:8]):
            raise DataError(f"{self.path}: record {record} at byte offset {offset} is corrupt "
                            "(bad record header)")
        return memoryview(frame)[HEADER_BYTES:HEADER_BYTES + length]

    def image(self, record, expected_shape=None):
        """uint8 [C, H, W] of record `record`; DataError naming file, record and offset if malformed."""
        try:
            return decode_image(self.payload(record), expected_shape)
        except ValueError as error:
            if isinstance(error, DataError):
                raise
            offset = int(self.index.offsets[record])
            raise DataError(f"{self.path}: record {record} at byte offset {offset} is not a valid "
                            f"image Example ({error})") from None

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# --- sequential reading with payload checksums (TensorFlow's reader) ---------------------------

_OFFSET_IN_TF_MESSAGE = re.compile(r"(\w+ record) at (\d+)")


def iter_payloads(path, index=None, batch_size=64):
    """Yields (record number, payload bytes) of a TFRecord file in order, checking every CRC.

    A corrupt or truncated record raises DataError naming the file, the record index and the byte
    offset (TensorFlow's own message gives only the offset).
    """
    import tensorflow as tf  # noqa: PLC0415

    path = str(path)
    if index is None:
        index = scan_record_index(path)
    record = 0
    dataset = tf.data.TFRecordDataset(path, buffer_size=8 << 20).batch(batch_size)
    try:
        for batch in dataset.as_numpy_iterator():
            for payload in batch:
                yield record, payload
                record += 1
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as error:
        message = error.message or ""
        match = _OFFSET_IN_TF_MESSAGE.search(message)
        if match and len(index):
            bad = index.record_at_offset(int(match.group(2)))
            where = f"record {bad} at byte offset {index.offsets[bad]}"
            detail = f"{match.group(1)} at {match.group(2)}"
        else:
            where = f"record {record} or shortly after"
            detail = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        raise DataError(f"{path}: {where} is corrupt or truncated (TensorFlow: {detail})") from None
