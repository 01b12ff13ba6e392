"""Sources of data_tools: each create_* command reads its format in the original's order, and bad
input gets a clear error with nothing half-written."""

import gzip
import hashlib
import io
import os
import pickle
import struct

import numpy as np
import PIL.Image
import pytest

from data_tools.errors import DataError
from data_tools.pyramid import build_levels, open_pyramid, original_order
from data_tools.sources import cifar, load_pickle, mnist
from data_tools.sources.celeba import create_celeba
from data_tools.sources.embedded import EMBEDDED_DIR, create_embedded
from data_tools.sources.hdf5 import create_from_hdf5
from data_tools.sources.images import create_from_images


def read_level(pyramid, resolution):
    """uint8 [N, C, R, R] of one level."""
    with pyramid.open_level(resolution) as level:
        return np.stack([level.image(i) for i in range(pyramid.num_images)])


def assert_pyramid_holds(directory, images_in_order, labels=None):
    """The pyramid at `directory` stores exactly build_levels(images) (and labels), in that order."""
    pyramid = open_pyramid(directory)
    assert pyramid.num_images == len(images_in_order)
    for level in build_levels(np.stack(images_in_order)):
        np.testing.assert_array_equal(read_level(pyramid, level.shape[-1]), level)
    if labels is not None:
        np.testing.assert_array_equal(pyramid.labels, labels)
    return pyramid


def assert_nothing_written(parent, name):
    assert not os.path.exists(os.path.join(parent, name))
    assert not [entry for entry in os.listdir(parent) if ".partial-" in entry]


def save(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.fromarray(array, mode).save(path)


# --- create_from_images --------------------------------------------------------------------------

@pytest.fixture
def rgb_tree(tmp_path):
    """Five 8x8 RGB PNG/JPEG/WebP files in a folder tree; returns (folder, arrays by sorted relative path)."""
    rng = np.random.default_rng(0)
    names = ["b/img1.png", "a/z.png", "a-c.png", "a/y/x.png", "c.png"]
    arrays = {}
    for name in names:
        array = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        save(str(tmp_path / "images" / name), array)
        arrays[name] = array.transpose(2, 0, 1)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    return tmp_path / "images", [arrays[name] for name in sorted(names)]


def test_images_are_taken_in_sorted_relative_path_order(tmp_path, rgb_tree):
    folder, arrays = rgb_tree
    manifest = create_from_images(tmp_path / "out", folder, shuffle=False)
    assert_pyramid_holds(tmp_path / "out", arrays)
    assert manifest["ignored_files"] == 1 and manifest["num_channels"] == 3


def test_shuffle_uses_the_original_order_and_levels(tmp_path, rgb_tree):
    folder, arrays = rgb_tree
    create_from_images(tmp_path / "out", folder)  # --shuffle 1 is the default
    order = original_order(len(arrays))
    assert_pyramid_holds(tmp_path / "out", [arrays[i] for i in order])


def test_grayscale_folder_gives_one_channel_and_mixed_gives_three(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    save(str(tmp_path / "gray" / "a.png"), gray, "L")
    save(str(tmp_path / "gray" / "b.png"), 255 - gray, "L")
    create_from_images(tmp_path / "g", tmp_path / "gray", shuffle=False)
    assert_pyramid_holds(tmp_path / "g", [gray[None], (255 - gray)[None]])
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    save(str(tmp_path / "gray" / "c.png"), colour)
    create_from_images(tmp_path / "m", tmp_path / "gray", shuffle=False)
    assert_pyramid_holds(tmp_path / "m", [np.stack([gray] * 3), np.stack([255 - gray] * 3),
                                          colour.transpose(2, 0, 1)])


def test_alpha_is_composited_over_the_background(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[0, :, 3] = 255  # opaque row
    rgba[1, :, 3] = 0  # transparent row
    rgba[2:, :, 3] = 128
    save(str(tmp_path / "rgba" / "a.png"), rgba, "RGBA")
    create_from_images(tmp_path / "out", tmp_path / "rgba", background=(200, 100, 0))
    top = read_level(open_pyramid(tmp_path / "out"), 4)[0]
    assert top.shape == (3, 4, 4)
    np.testing.assert_array_equal(top[:, 0, 0], [10, 20, 30])
    np.testing.assert_array_equal(top[:, 1, 0], [200, 100, 0])
    blended = np.array([10, 20, 30]) * 128 / 255 + np.array([200, 100, 0]) * 127 / 255
    np.testing.assert_allclose(top[:, 2, 0], blended, atol=1)


def test_resize_and_center_crop(tmp_path):
    wide = np.random.default_rng(1).integers(0, 256, (8, 12, 3), dtype=np.uint8)  # H 8, W 12
    big = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    save(str(tmp_path / "mixed" / "a.png"), wide)
    save(str(tmp_path / "mixed" / "b.jpg"), big)
    save(str(tmp_path / "mixed" / "c.webp"), big)
    create_from_images(tmp_path / "out", tmp_path / "mixed", shuffle=False, center_crop=True, resize=8)
    decoded_jpeg = np.asarray(PIL.Image.open(tmp_path / "mixed" / "b.jpg").resize((8, 8), PIL.Image.LANCZOS))
    decoded_webp = np.asarray(PIL.Image.open(tmp_path / "mixed" / "c.webp").convert("RGB")
                              .resize((8, 8), PIL.Image.LANCZOS))
    assert_pyramid_holds(tmp_path / "out", [wide[:, 2:10].transpose(2, 0, 1), decoded_jpeg.transpose(2, 0, 1),
                                            decoded_webp.transpose(2, 0, 1)])


@pytest.mark.parametrize("case, message", [
    ("empty", r"images: no images found"),
    ("mixed_sizes", r"b\.png: image is 16x16 but .*a\.png is 8x8; pass --resize R"),
    ("not_square", r"a\.png: image is 12x8, not square; pass --center_crop"),
    ("not_power_of_two", r"a\.png: images are 12x12, not a power of two >= 4; pass --resize 16"),
    ("unreadable", r"b\.png: unreadable image \(.*\); pass --skip_bad"),
    ("truncated", r"b\.png: unreadable or truncated image"),
])
def test_bad_image_folders_are_refused_and_leave_nothing(tmp_path, case, message):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    if case == "mixed_sizes":
        save(str(folder / "a.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        save(str(folder / "b.png"), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    elif case == "not_square":
        save(str(folder / "a.png"), rng.integers(0, 256, (8, 12, 3), dtype=np.uint8))
    elif case == "not_power_of_two":
        save(str(folder / "a.png"), rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    elif case in ("unreadable", "truncated"):
        save(str(folder / "a.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        save(str(folder / "b.png"), rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        content = (folder / "b.png").read_bytes()
        (folder / "b.png").write_bytes(b"garbage" * 10 if case == "unreadable" else content[:len(content) // 2])
    with pytest.raises(DataError, match=message):
        create_from_images(tmp_path / "out", folder)
    assert_nothing_written(tmp_path, "out")


def test_skip_bad_counts_and_lists_bad_images(tmp_path, rgb_tree):
    folder, arrays = rgb_tree
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    content = (folder / "c.png").read_bytes()
    (folder / "c.png").write_bytes(content[:len(content) // 2])  # truncated: only a full decode finds it
    manifest = create_from_images(tmp_path / "out", folder, shuffle=False, skip_bad=True)
    assert [item.split(":")[0] for item in manifest["skipped"]] == ["broken.png", "c.png"]
    assert manifest["skipped_count"] == 2
    assert_pyramid_holds(tmp_path / "out", arrays[:4])  # c.png sorts last


def test_existing_output_needs_overwrite(tmp_path, rgb_tree):
    folder, arrays = rgb_tree
    create_from_images(tmp_path / "out", folder, shuffle=False)
    before = {name: (tmp_path / "out" / name).read_bytes() for name in os.listdir(tmp_path / "out")}
    with pytest.raises(DataError, match=r"out: already exists and is not empty; pass --overwrite"):
        create_from_images(tmp_path / "out", folder)
    assert {name: (tmp_path / "out" / name).read_bytes() for name in os.listdir(tmp_path / "out")} == before
    create_from_images(tmp_path / "out", folder, shuffle=True, overwrite=True)
    assert_pyramid_holds(tmp_path / "out", [arrays[i] for i in original_order(len(arrays))])
    assert not [entry for entry in os.listdir(tmp_path) if entry.startswith(".")]


# --- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------------

def write_idx(path, array, compress=True):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_create_mnist_pads_to_32_with_one_hot_labels_in_original_order(tmp_path, compress):
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    classes = np.arange(12) % 10
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", digits, compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", classes, compress)
    mnist.create_mnist(tmp_path / "mnist", tmp_path)
    order = original_order(12)
    padded = np.zeros((12, 1, 32, 32), np.uint8)
    padded[:, 0, 2:30, 2:30] = digits
    pyramid = assert_pyramid_holds(tmp_path / "mnist", list(padded[order]), np.eye(10, dtype=np.float32)[classes[order]])
    assert pyramid.resolution == 32 and pyramid.num_channels == 1 and pyramid.label_size == 10


def test_bad_idx_files_are_named(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 5, 28, 28) + bytes(100))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: IDX data holds 100 bytes"):
        mnist.create_mnist(tmp_path / "out", tmp_path)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\(\.gz\): not found"):
        mnist.create_mnist(tmp_path / "out", tmp_path, split="t10k")
    assert_nothing_written(tmp_path, "out")


def test_create_mnistrgb_stacks_three_random_digits(tmp_path):
    digits = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", digits)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(6, np.uint8))
    mnist.create_mnistrgb(tmp_path / "rgb", tmp_path, num_images=4, random_seed=123)
    padded = np.pad(digits, [(0, 0), (2, 2), (2, 2)])
    rng = np.random.RandomState(123)
    assert_pyramid_holds(tmp_path / "rgb", [padded[rng.randint(6, size=3)] for _ in range(4)])


# --- CIFAR ---------------------------------------------------------------------------------------

def cifar_batches(count_per_batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (count_per_batch, 3072), dtype=np.uint8),
             [int(v) for v in rng.integers(0, 10, count_per_batch)]) for _ in range(5)]


def test_cifar10_binary_and_python_releases_give_the_same_pyramid(tmp_path):
    batches = cifar_batches()
    py_dir, bin_dir = tmp_path / "cifar-10-batches-py", tmp_path / "bin" / "cifar-10-batches-bin"
    py_dir.mkdir()
    bin_dir.mkdir(parents=True)
    for number, (pixels, labels) in enumerate(batches, start=1):
        content = {b"batch_label": b"training batch", b"labels": labels, b"data": pixels,
                   b"filenames": [b"x.png"] * len(labels)}
        (py_dir / f"data_batch_{number}").write_bytes(pickle.dumps(content, protocol=2))
        rows = np.concatenate([np.array(labels, np.uint8)[:, None], pixels], axis=1)
        (bin_dir / f"data_batch_{number}.bin").write_bytes(rows.tobytes())
    cifar.create_cifar10(tmp_path / "from-py", tmp_path)  # finds cifar-10-batches-py inside
    cifar.create_cifar10(tmp_path / "from-bin", tmp_path / "bin")
    images = np.concatenate([pixels for pixels, _ in batches]).reshape(-1, 3, 32, 32)
    classes = np.concatenate([labels for _, labels in batches])
    order = original_order(15)
    one_hot = np.eye(classes.max() + 1, dtype=np.float32)[classes]
    assert_pyramid_holds(tmp_path / "from-py", list(images[order]), one_hot[order])
    assert_pyramid_holds(tmp_path / "from-bin", list(images[order]), one_hot[order])


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    fine, coarse = [99, 3, 50, 7], [19, 0, 10, 1]
    (tmp_path / "train").write_bytes(pickle.dumps({"data": pixels, "fine_labels": fine, "coarse_labels": coarse},
                                                  protocol=4))
    (tmp_path / "b").mkdir()
    rows = np.concatenate([np.array(coarse, np.uint8)[:, None], np.array(fine, np.uint8)[:, None], pixels], axis=1)
    (tmp_path / "b" / "train.bin").write_bytes(rows.tobytes())
    for name, folder in (("py", tmp_path), ("bin", tmp_path / "b")):
        cifar.create_cifar100(tmp_path / name, folder)
        labels = open_pyramid(tmp_path / name).labels
        assert labels.shape == (4, 100)
        np.testing.assert_array_equal(labels.argmax(1), np.array(fine)[original_order(4)])


def test_truncated_cifar_binary_is_named(tmp_path):
    (tmp_path / "data_batch_1.bin").write_bytes(bytes(3073 * 2 + 5))
    with pytest.raises(DataError, match=r"data_batch_1\.bin: 6151 bytes is not a whole number of 3073-byte records"):
        cifar.create_cifar10(tmp_path / "out", tmp_path)
    assert_nothing_written(tmp_path, "out")


# --- pickles read without running code (progan_tf.utils.safe_pickle; see test_utils_safe_pickle) --

class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_pickled_batch_with_code_is_refused_naming_the_file_and_global(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": _Exploit(marker)}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_1: not loaded \(refusing to load global posix\.system\)$"):
        cifar.create_cifar10(tmp_path / "out", tmp_path)
    assert not marker.exists()
    assert_nothing_written(tmp_path, "out")


def test_pickled_object_array_and_truncated_batch_are_one_line_errors(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": np.array([1, "a"], dtype=object)}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_1: not loaded \(.*object.*refused"):
        load_pickle(str(path))
    content = pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}, protocol=2)
    path.write_bytes(content[:len(content) // 2])
    with pytest.raises(DataError) as caught:
        load_pickle(str(path))
    assert str(caught.value).startswith(f"{path}: not loaded (") and "\n" not in str(caught.value)


def test_python2_cifar_batch_reads_as_with_latin1(tmp_path):
    # What Python 2's cPickle.dump(protocol=2) writes for {'data': uint8 array, 'labels': [1, 2]}.
    py2 = (b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04"
           b"K\x00\x85U\x01b\x87Rq\x05(K\x01K\x02K\x03\x86cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07"
           b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x06\x00\x01\x02\xfd\xfe\xfftb"
           b"U\x06labelsq\x08]q\t(K\x01K\x02eu.")
    (tmp_path / "batch").write_bytes(py2)
    loaded = load_pickle(str(tmp_path / "batch"))
    np.testing.assert_array_equal(loaded["data"], [[0, 1, 2], [253, 254, 255]])
    assert loaded["labels"] == [1, 2]


# --- HDF5, CelebA, LSUN -------------------------------------------------------------------------

def test_create_from_hdf5_picks_the_largest_data_set_and_its_labels(tmp_path):
    import h5py  # noqa: PLC0415 (a dependency of tensorflow and keras, so always installed)
    rng = np.random.default_rng(4)
    large = rng.integers(0, 256, (5, 3, 8, 8), dtype=np.uint8)
    with h5py.File(tmp_path / "legacy.h5", "w") as archive:
        archive["data4x4"] = rng.integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
        archive["data8x8"] = large
    labels = rng.random((5, 2)).astype(np.float32)
    np.save(tmp_path / "legacy-labels.npy", labels)
    create_from_hdf5(tmp_path / "out", str(tmp_path / "legacy.h5"))
    order = original_order(5)
    assert_pyramid_holds(tmp_path / "out", list(large[order]), labels[order])
    create_from_hdf5(tmp_path / "plain", str(tmp_path / "legacy.h5"), shuffle=False)
    assert_pyramid_holds(tmp_path / "plain", list(large), labels)


def test_create_celeba_crops_128_at_the_original_centre(tmp_path):
    rng = np.random.default_rng(5)
    faces = [rng.integers(0, 256, (218, 178, 3), dtype=np.uint8) for _ in range(3)]
    for i, face in enumerate(faces):
        save(str(tmp_path / "celeba" / "img_align_celeba_png" / f"{i + 1:06d}.png"), face)
    manifest = create_celeba(tmp_path / "out", tmp_path / "celeba")
    order = original_order(3)
    assert_pyramid_holds(tmp_path / "out", [faces[i][121 - 64:121 + 64, 89 - 64:89 + 64].transpose(2, 0, 1)
                                            for i in order])
    assert "202,599" in manifest["note"]
    save(str(tmp_path / "bad" / "img_align_celeba_png" / "000001.png"), faces[0][:200])
    with pytest.raises(DataError, match=r"000001\.png: shape \[200, 178, 3\], aligned CelebA images are"):
        create_celeba(tmp_path / "out2", tmp_path / "bad")
    assert_nothing_written(tmp_path, "out2")


def lsun_key(name):
    """A key as in LSUN's LMDBs: the image's 40-hex-digit SHA-1 name, as bytes."""
    return hashlib.sha1(name.encode()).hexdigest().encode()


def write_lmdb(path, entries):
    """An LMDB folder like LSUN's `<category>_lmdb`, holding {key: encoded image bytes}."""
    import lmdb  # noqa: PLC0415 (the optional [lsun] extra; .ci/run installs it)

    with lmdb.open(str(path), map_size=1 << 24) as environment, environment.begin(write=True) as txn:
        for key, value in entries.items():
            txn.put(key, value)
    return path


def encode(array, fmt, **options):
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def lanczos_chw(array, resolution):
    return np.asarray(PIL.Image.fromarray(array).resize((resolution, resolution), PIL.Image.LANCZOS)
                      ).transpose(2, 0, 1)


@pytest.fixture
def lsun_images():
    """{key: (HWC source pixels, its central square crop)} of four LSUN-like entries."""
    rng = np.random.default_rng(6)
    shapes = {"wide": (20, 30, 3), "tall": (24, 16, 3), "square": (16, 16, 3), "photo": (18, 26, 3)}
    pixels = {name: rng.integers(0, 256, shape, dtype=np.uint8) for name, shape in shapes.items()}
    crops = {"wide": pixels["wide"][:, 5:25], "tall": pixels["tall"][4:20], "square": pixels["square"],
             "photo": pixels["photo"][:, 4:22]}
    return {lsun_key(name): (pixels[name], crops[name]) for name in shapes}


def test_create_lsun_crops_the_centre_and_resizes_in_cursor_order(tmp_path, lsun_images):
    from data_tools.sources.lsun import create_lsun

    keys = sorted(lsun_images)  # LMDB's cursor order: the keys' byte order, not insertion order
    assert list(lsun_images) != keys
    jpeg_key = lsun_key("photo")
    # Lossless WebP keeps the pixels exactly; the JPEG entry is compared with its decoded pixels.
    entries = {key: encode(pixels, "WEBP", lossless=True) for key, (pixels, _) in lsun_images.items()}
    entries[jpeg_key] = encode(lsun_images[jpeg_key][0], "JPEG", quality=95)
    decoded_jpeg = np.asarray(PIL.Image.open(io.BytesIO(entries[jpeg_key])))
    assert decoded_jpeg.shape == (18, 26, 3)
    crops = {key: crop for key, (_, crop) in lsun_images.items()}
    crops[jpeg_key] = decoded_jpeg[:, 4:22]
    write_lmdb(tmp_path / "bedroom_lmdb", entries)

    manifest = create_lsun(tmp_path / "out", tmp_path / "bedroom_lmdb", resolution=8)
    pyramid = assert_pyramid_holds(tmp_path / "out", [lanczos_chw(crops[key], 8) for key in keys])
    assert pyramid.resolution == 8 and read_level(pyramid, 8).shape == (4, 3, 8, 8)
    assert manifest["command"] == "create_lsun" and manifest["skipped"] == [] and "note" not in manifest

    create_lsun(tmp_path / "first2", tmp_path / "bedroom_lmdb", resolution=16, max_images=2)
    assert_pyramid_holds(tmp_path / "first2", [lanczos_chw(crops[key], 16) for key in keys[:2]])


def test_create_lsun_names_the_bad_entry_or_skips_it_with_skip_bad(tmp_path, lsun_images):
    from data_tools.sources.lsun import create_lsun

    keys = sorted(lsun_images)
    entries = {key: encode(pixels, "WEBP", lossless=True) for key, (pixels, _) in lsun_images.items()}
    entries[keys[1]] = b"not an image"
    entries[keys[3]] = encode(lsun_images[keys[3]][0], "WEBP", lossless=True)[:40]  # truncated
    write_lmdb(tmp_path / "db", entries)

    message = rf"db: unreadable image in entry '{keys[1].decode()}': not an image .*; pass --skip_bad"
    with pytest.raises(DataError, match=message):
        create_lsun(tmp_path / "out", tmp_path / "db", resolution=8)
    assert_nothing_written(tmp_path, "out")

    manifest = create_lsun(tmp_path / "out", tmp_path / "db", resolution=8, skip_bad=True)
    assert [item.split(":")[0] for item in manifest["skipped"]] == [f"entry '{keys[i].decode()}'" for i in (1, 3)]
    assert manifest["note"] == "2 of 4 entries written"
    assert_pyramid_holds(tmp_path / "out", [lanczos_chw(lsun_images[keys[i]][1], 8) for i in (0, 2)])


def test_create_lsun_rejects_what_is_not_an_lsun_lmdb(tmp_path, lsun_images):
    from data_tools.sources.lsun import create_lsun

    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "data.mdb").write_bytes(b"\x00" * 4096)
    write_lmdb(tmp_path / "no_entries", {})
    write_lmdb(tmp_path / "db", {key: encode(pixels, "PNG") for key, (pixels, _) in lsun_images.items()})
    cases = [
        ((tmp_path / "missing",), {}, r"missing: LMDB folder not found"),
        ((tmp_path / "empty",), {}, r"empty: not a readable LMDB database"),
        ((tmp_path / "junk",), {}, r"junk: not a readable LMDB database \(.*MDB_INVALID"),
        ((tmp_path / "no_entries",), {}, r"no images were added"),
        ((tmp_path / "db",), {"resolution": 12}, r"--resolution 12: must be a power of two"),
        ((tmp_path / "db",), {"max_images": 0}, r"--max_images 0: must be >= 1"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(DataError, match=message):
            create_lsun(tmp_path / "out", *args, **kwargs)
        assert_nothing_written(tmp_path, "out")


def test_create_lsun_without_lmdb_says_which_extra_to_install(tmp_path, monkeypatch):
    import sys

    from data_tools.sources.lsun import create_lsun

    monkeypatch.setitem(sys.modules, "lmdb", None)
    (tmp_path / "db").mkdir()
    with pytest.raises(DataError, match=r'optional "lmdb" package: pip install "progan-tf\[lsun\]"'):
        create_lsun(tmp_path / "out", tmp_path / "db")


# --- the embedded quickstart dataset -------------------------------------------------------------

def test_embedded_subset_is_small_balanced_and_licensed():
    sizes = sum(os.path.getsize(os.path.join(EMBEDDED_DIR, name)) for name in os.listdir(EMBEDDED_DIR))
    assert sizes < 8e6
    assert "MIT" in open(os.path.join(EMBEDDED_DIR, "LICENSE")).read()
    images, labels = mnist.load_mnist(EMBEDDED_DIR)
    assert images.shape == (12000, 28, 28)
    np.testing.assert_array_equal(np.bincount(labels), [1200] * 10)


def test_create_embedded_builds_once_then_confirms_at_once(tmp_path):
    target = tmp_path / "datasets" / "fashion-mnist-32"
    manifest = create_embedded(target)
    assert not manifest["up_to_date"]
    pyramid = open_pyramid(target)
    assert (pyramid.num_images, pyramid.resolution, pyramid.num_channels, pyramid.label_size) == (12000, 32, 1, 10)
    top = read_level(pyramid, 32)
    assert np.all(top[:, :, :2, :] == 0) and np.all(top[:, :, :, 30:] == 0)  # the 2-px padding
    images, classes = mnist.load_mnist(EMBEDDED_DIR)
    order = original_order(12000)
    np.testing.assert_array_equal(top[:5, 0, 2:30, 2:30], images[order[:5]])
    np.testing.assert_array_equal(pyramid.labels.argmax(1), classes[order])
    stamps = {name: os.stat(target / name).st_mtime_ns for name in os.listdir(target)}
    again = create_embedded(target)
    assert again["up_to_date"]
    assert {name: os.stat(target / name).st_mtime_ns for name in os.listdir(target)} == stamps
    # A changed pyramid is not silently accepted.
    with open(target / "fashion-mnist-32-r02.tfrecords", "r+b") as file:
        file.seek(40)
        file.write(b"\x01")
    with pytest.raises(DataError, match=r"fashion-mnist-32: already exists and is not the embedded pyramid "
                                        r"\(fashion-mnist-32-r02\.tfrecords was changed\); pass --overwrite"):
        create_embedded(target)
    assert not create_embedded(target, overwrite=True)["up_to_date"]
