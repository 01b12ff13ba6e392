"""Commands over existing pyramids: `info`, `display`, `verify`, `extract`, `compare`.

Each returns its report as a list of lines (and a success flag where it checks something); the
command line prints them. Reading goes through TensorFlow's reader, so every CRC is checked.
"""

import itertools
import os
import shutil
import tempfile

import numpy as np

from data_tools import records
from data_tools.errors import DataError
from data_tools.pyramid import build_levels, check_output_dir, open_pyramid, replace_dir
from progan_tf.utils.images import image_grid, to_pil, write_png
from progan_tf.utils.progress import Progress, format_count

_BATCH = 256


def _size(num_bytes):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num_bytes < 1000 or unit == "TB":
            return f"{num_bytes:,.0f} {unit}" if unit == "B" else f"{num_bytes:,.1f} {unit}"
        num_bytes /= 1000.0
    return ""


def _entry_order(pyramid):
    """Order of the feature entries in the first top-level record, e.g. 'data, shape'."""
    with pyramid.open_level(pyramid.resolution) as level:
        payload = bytes(level.payload(0))
    keys = []
    for number, wire, features in records._fields(memoryview(payload)):  # noqa: SLF001
        if number == 1 and wire == 2:
            for entry_number, _, entry in records._fields(features):  # noqa: SLF001
                if entry_number == 1:
                    keys += [bytes(value).decode("latin1") for n, w, value in records._fields(entry)  # noqa: SLF001
                             if n == 1 and w == 2]
    return ", ".join(keys)


def describe_labels(labels):
    if labels is None:
        return "none"
    text = f"float32 [{labels.shape[0]:,}, {labels.shape[1]}]"
    is_one_hot = labels.size and np.all((labels == 0) | (labels == 1)) and np.all(labels.sum(axis=1) == 1)
    if is_one_hot:
        counts = labels.sum(axis=0).astype(np.int64)
        text += f", one-hot, {labels.shape[1]} classes, {counts.min():,}..{counts.max():,} images per class"
    return text


def info(tfrecord_dir):
    """Lines describing a pyramid: images, resolution, channels, each level file, labels, origin."""
    pyramid = open_pyramid(tfrecord_dir)
    lines = [f"Pyramid {pyramid.data_dir}",
             f"  images:     {format_count(pyramid.num_images)}",
             f"  resolution: {pyramid.resolution}x{pyramid.resolution}, "
             f"{pyramid.num_channels} channel{'s' if pyramid.num_channels > 1 else ''}",
             "  levels:"]
    for resolution in reversed(pyramid.resolutions):
        path = pyramid.levels[resolution]
        size = os.path.getsize(path)
        lines.append(f"    {os.path.basename(path):<32} {resolution:>5}x{resolution:<5} "
                     f"{format_count(len(pyramid.indexes[resolution]))} records, {_size(size)} "
                     f"({size // max(1, pyramid.num_images):,} B/record)")
    lines.append(f"  labels:     {describe_labels(pyramid.labels)}"
                 + (f" ({os.path.basename(pyramid.labels_path)})" if pyramid.labels_path else ""))
    lines.append(f"  entries:    {_entry_order(pyramid)} (first record)")
    manifest = pyramid.manifest()
    if manifest and manifest.get("command"):
        lines.append(f"  made by:    data_tools {manifest['command']} from {manifest.get('source', '?')}")
    return lines


def _level_images(pyramid, resolution, limit=None):
    """Yields uint8 [C, R, R] of a level in record order, every CRC checked."""
    shape = pyramid.shape(resolution)
    index = pyramid.indexes[resolution]
    payloads = records.iter_payloads(index.path, index)
    for record, payload in itertools.islice(payloads, limit):
        try:
            yield records.decode_image(payload, shape)
        except ValueError as error:
            raise DataError(f"{index.path}: record {record} at byte offset {index.offsets[record]} is not a "
                            f"valid image Example ({error})") from None


def _batches(iterable, size):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield np.stack(batch)


def verify(tfrecord_dir, tolerance=0):
    """Checks every record of every level (CRC, Example, shape), the counts, labels, and that each
    lower level equals the one computed from the top level (within `tolerance` grey levels).

    Returns (ok, lines).
    """
    pyramid = open_pyramid(tfrecord_dir)
    resolutions = list(reversed(pyramid.resolutions))
    streams = [_batches(_level_images(pyramid, resolution), _BATCH) for resolution in resolutions]
    mismatched = {resolution: 0 for resolution in resolutions[1:]}
    worst = {resolution: 0 for resolution in resolutions[1:]}
    first_bad = {}
    checked = 0
    with Progress("Verifying", total=pyramid.num_images) as progress:
        for batches in itertools.zip_longest(*streams):
            if any(batch is None for batch in batches) or len({len(b) for b in batches}) != 1:
                raise DataError(f"{tfrecord_dir}: level files end at different records (near record {checked})")
            expected = build_levels(batches[0])
            for resolution, stored, computed in zip(resolutions[1:], batches[1:], expected[1:]):
                diff = np.abs(stored.astype(np.int16) - computed.astype(np.int16)).reshape(len(stored), -1).max(1)
                bad = np.flatnonzero(diff > tolerance)
                mismatched[resolution] += bad.size
                worst[resolution] = max(worst[resolution], int(diff.max()))
                if bad.size and resolution not in first_bad:
                    first_bad[resolution] = checked + int(bad[0])
            checked += len(batches[0])
            progress.update(len(batches[0]))
    lines = [f"Verified {pyramid.data_dir}: {format_count(checked)} records in each of "
             f"{len(resolutions)} levels ({resolutions[-1]}x{resolutions[-1]} .. "
             f"{resolutions[0]}x{resolutions[0]}), all checksums and Examples valid"]
    ok = checked == pyramid.num_images
    for resolution in resolutions[1:]:
        if mismatched[resolution]:
            ok = False
            lines.append(f"  {os.path.basename(pyramid.levels[resolution])}: {format_count(mismatched[resolution])} "
                         f"records differ from the level computed from the top (max difference "
                         f"{worst[resolution]}, first at record {first_bad[resolution]})")
    if ok:
        lines.append("  every lower level matches the top level"
                     + (f" within {tolerance}" if tolerance else " exactly"))
    if pyramid.labels is not None:
        if not np.all(np.isfinite(pyramid.labels)):
            ok = False
            lines.append(f"  {pyramid.labels_path}: labels hold non-finite values")
        else:
            lines.append(f"  labels: {describe_labels(pyramid.labels)}")
    lines.append("OK" if ok else "FAILED")
    return ok, lines


def extract(tfrecord_dir, output_dir, *, resolution=None, overwrite=False):
    """Writes each record of one level (default: the top) as `img%08d.png`, in record order."""
    pyramid = open_pyramid(tfrecord_dir)
    resolution = resolution or pyramid.resolution
    pyramid.check_resolution(resolution)
    output_dir = os.path.normpath(os.fspath(output_dir))
    check_output_dir(output_dir, overwrite, owned=_is_extracted_image, what="extracted images")
    parent = os.path.dirname(output_dir) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.partial-", dir=parent)
    try:
        with Progress("Extracting", total=pyramid.num_images) as progress:
            for record, image in enumerate(_level_images(pyramid, resolution)):
                to_pil(image.transpose(1, 2, 0)).save(os.path.join(staging, f"img{record:08d}.png"))
                progress.update()
        replace_dir(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [f"Extracted {format_count(pyramid.num_images)} images of {resolution}x{resolution} "
            f"to {output_dir}"]


def _is_extracted_image(name):
    return name.startswith("img") and name.endswith(".png")


def compare(dir_a, dir_b, *, ignore_labels=False):
    """Compares two pyramids record by record at every level (pixels, not bytes, so either entry
    order matches), and their labels. Returns (identical, lines)."""
    a, b = open_pyramid(dir_a), open_pyramid(dir_b)
    lines = [f"Comparing {a.data_dir} ({format_count(a.num_images)} x {a.num_channels}x{a.resolution}x"
             f"{a.resolution}) with {b.data_dir} ({format_count(b.num_images)} x {b.num_channels}x"
             f"{b.resolution}x{b.resolution})"]
    identical = a.num_images == b.num_images and a.resolution == b.resolution and a.num_channels == b.num_channels
    if not identical:
        lines.append("  the pyramids differ in count, resolution or channels")
    common = sorted(set(a.resolutions) & set(b.resolutions), reverse=True)
    if a.num_channels == b.num_channels:
        total = min(a.num_images, b.num_images) * len(common)
        with Progress("Comparing", total=total) as progress:
            for resolution in common:
                same, different = 0, []
                for record, (image_a, image_b) in enumerate(zip(_level_images(a, resolution),
                                                                _level_images(b, resolution))):
                    if np.array_equal(image_a, image_b):
                        same += 1
                    else:
                        different.append(record)
                    progress.update()
                count = min(a.num_images, b.num_images)
                line = f"  {resolution}x{resolution}: identical images {format_count(same)} / {format_count(count)}"
                if different:
                    identical = False
                    line += f" (first different: {', '.join(map(str, different[:10]))})"
                lines.append(line)
    if not ignore_labels:
        labels_a, labels_b = a.labels, b.labels
        if labels_a is None and labels_b is None:
            lines.append("  labels: neither has labels")
        elif labels_a is None or labels_b is None or labels_a.shape != labels_b.shape:
            identical = False
            lines.append(f"  labels differ: {describe_labels(labels_a)} vs {describe_labels(labels_b)}")
        else:
            same_rows = int(np.sum(np.all(labels_a == labels_b, axis=1)))
            identical &= same_rows == labels_a.shape[0]
            lines.append(f"  labels: identical rows {format_count(same_rows)} / {format_count(labels_a.shape[0])}")
    lines.append("IDENTICAL" if identical else "DIFFERENT")
    return identical, lines


def first_images_grid(tfrecord_dir, *, resolution=None, num_images=16, columns=None):
    """(pyramid, uint8 [H, W, C] grid of the first `num_images` records of one level, count)."""
    pyramid = open_pyramid(tfrecord_dir)
    resolution = resolution or pyramid.resolution
    pyramid.check_resolution(resolution)
    count = min(num_images, pyramid.num_images)
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    images = np.stack(list(_level_images(pyramid, resolution, limit=count))).transpose(0, 2, 3, 1)
    return pyramid, image_grid(images, (columns, rows)), count


def display(tfrecord_dir, *, output=None, resolution=None, num_images=16):
    """Info lines plus a grid of the first images: written to `output` (PNG), or shown on screen."""
    lines = info(tfrecord_dir)
    pyramid, grid, count = first_images_grid(tfrecord_dir, resolution=resolution, num_images=num_images)
    if pyramid.labels is not None:
        for record in range(min(count, 8)):
            row = pyramid.labels[record]
            shown = f"class {int(np.argmax(row))}" if row.sum() == 1 and np.all((row == 0) | (row == 1)) \
                else np.array2string(row, precision=3)
            lines.append(f"  record {record}: label {shown}")
    if output:
        scale = max(1, 256 // grid.shape[1])  # small grids are enlarged to at least 256 wide
        write_png(np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1), output)
        lines.append(f"Wrote a grid of the first {count} images to {output}")
    elif os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        to_pil(grid).show()
        lines.append(f"Showing the first {count} images")
    else:
        raise DataError("display: no screen available; pass --output grid.png to write the images to a file")
    return lines
