"""`python -m data_tools`: help for every command, the inspection commands, exit codes, one-line errors."""

import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from data_tools import cli
from data_tools.pyramid import PyramidWriter, build_levels, level_file_name, one_hot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ["info", "display", "verify", "extract", "compare", "create_embedded", "create_mnist", "create_mnistrgb",
            "create_cifar10", "create_cifar100", "create_svhn", "create_lsun", "create_celeba",
            "create_from_images", "create_from_hdf5"]


def run(capsys, *argv):
    """(exit status, stdout, stderr) of the command line run in this process."""
    status = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def make_pyramid(directory, count=6, channels=3, resolution=16, seed=0, labels=True):
    images = np.random.default_rng(seed).integers(0, 256, (count, channels, resolution, resolution), dtype=np.uint8)
    with PyramidWriter(directory) as writer:
        writer.add(images)
        if labels:
            writer.set_labels(one_hot(np.arange(count) % 3))
        writer.commit()
    return images


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as caught:
        cli.main([command, "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m data_tools {command}") and "Example: python -m data_tools" in out


def test_top_level_help_lists_every_command_without_importing_tensorflow():
    result = subprocess.run([sys.executable, "-c", "import sys; from data_tools import cli\n"
                             "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
                             "print('tensorflow' in sys.modules)"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert result.stdout.strip().endswith("False")


def test_info_describes_levels_counts_and_labels(tmp_path, capsys):
    make_pyramid(tmp_path / "p")
    status, out, _ = run(capsys, "info", tmp_path / "p")
    assert status == 0
    assert "images:     6" in out and "resolution: 16x16, 3 channels" in out
    for resolution in (4, 8, 16):
        assert level_file_name("p", resolution) in out
    assert "labels:     float32 [6, 3], one-hot, 3 classes, 2..2 images per class" in out
    assert "entries:    data, shape" in out


def test_verify_passes_on_a_good_pyramid_and_fails_on_an_inconsistent_level(tmp_path, capsys):
    make_pyramid(tmp_path / "p")
    status, out, err = run(capsys, "verify", tmp_path / "p")
    assert status == 0 and out.strip().endswith("OK")
    assert "every lower level matches the top level exactly" in out and "img/s" in err
    # Replace the 8x8 level by one made from other images: counts and checksums still fine.
    other = make_pyramid(tmp_path / "q", seed=1)
    os.replace(tmp_path / "q" / "q-r03.tfrecords", tmp_path / "p" / "p-r03.tfrecords")
    status, out, _ = run(capsys, "verify", tmp_path / "p")
    assert status == 1 and out.strip().endswith("FAILED")
    assert "p-r03.tfrecords: 6 records differ from the level computed from the top" in out
    assert other.shape[0] == 6


def test_verify_names_a_corrupt_record(tmp_path, capsys):
    make_pyramid(tmp_path / "p")
    path = tmp_path / "p" / "p-r04.tfrecords"
    content = bytearray(path.read_bytes())
    stride = len(content) // 6
    content[4 * stride + 300] ^= 0x40
    path.write_bytes(bytes(content))
    status, out, err = run(capsys, "verify", tmp_path / "p")
    assert status == 1 and out == ""
    assert err.strip() == (f"error: {path}: record 4 at byte offset {4 * stride} is corrupt or truncated "
                           f"(TensorFlow: corrupted record at {4 * stride + 12})")


def test_extract_writes_the_top_level_in_record_order(tmp_path, capsys):
    images = make_pyramid(tmp_path / "p", count=3)
    status, out, _ = run(capsys, "extract", tmp_path / "p", tmp_path / "png")
    assert status == 0 and "Extracted 3 images of 16x16" in out
    assert sorted(os.listdir(tmp_path / "png")) == ["img00000000.png", "img00000001.png", "img00000002.png"]
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "png" / f"img{i:08d}.png")),
                                      images[i].transpose(1, 2, 0))
    status, _, _ = run(capsys, "extract", tmp_path / "p", tmp_path / "small", "--resolution", 4)
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "small" / "img00000000.png")),
                                  build_levels(images)[2][0].transpose(1, 2, 0))
    status, _, err = run(capsys, "extract", tmp_path / "p", tmp_path / "png")
    assert status == 1 and "png: already exists and is not empty; pass --overwrite" in err


def test_compare_reports_identical_and_different_pyramids(tmp_path, capsys):
    make_pyramid(tmp_path / "a")
    make_pyramid(tmp_path / "b")
    status, out, _ = run(capsys, "compare", tmp_path / "a", tmp_path / "b")
    assert status == 0 and out.strip().endswith("IDENTICAL")
    assert "16x16: identical images 6 / 6" in out and "labels: identical rows 6 / 6" in out
    make_pyramid(tmp_path / "c", seed=2)
    status, out, _ = run(capsys, "compare", tmp_path / "a", tmp_path / "c", "--ignore_labels", 1)
    assert status == 1 and "16x16: identical images 0 / 6 (first different: 0, 1, 2" in out
    assert "labels" not in out.split("\n", 1)[1]


def test_display_writes_a_grid(tmp_path, capsys):
    make_pyramid(tmp_path / "p", count=5, channels=1, resolution=8)
    status, out, _ = run(capsys, "display", tmp_path / "p", "--output", tmp_path / "grid.png", "--num_images", 4)
    assert status == 0 and "record 0: label class 0" in out
    grid = PIL.Image.open(tmp_path / "grid.png")
    assert grid.mode == "L" and grid.size == (256, 256)  # 2x2 images of 8 px, scaled up 16x


def test_create_from_images_summary_and_skip_list(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        PIL.Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "bad.jpg").write_bytes(b"not a jpeg")
    status, out, err = run(capsys, "create_from_images", tmp_path / "out", folder, "--skip_bad")
    assert status == 0
    assert out.startswith(f"Created {tmp_path / 'out'}: 3 images, 3x8x8, 2 levels (4x4 .. 8x8), no labels")
    assert "Skipped 1 unreadable image:\n  bad.jpg: " in out
    assert "img/s" in out and "Writing: 3 / 3 img" in err


def test_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-m", "data_tools", "create_from_images", str(tmp_path / "out"),
                             str(tmp_path / "empty")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'empty'}: no images found (looked for .png, .jpg, .jpeg, .webp files in the folder tree)"]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["empty"]


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["create_from_images", "out", "in", "--center-crop"])
    assert caught.value.code == 2
    assert "unrecognized arguments: --center-crop" in capsys.readouterr().err


def test_a_pyramid_from_a_folder_verifies_and_trains(tmp_path, capsys):
    from progan_tf import data

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(10):
        PIL.Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    assert run(capsys, "create_from_images", tmp_path / "d", folder)[0] == 0
    status, out, _ = run(capsys, "verify", tmp_path / "d")
    assert status == 0 and out.strip().endswith("OK")
    images, labels = next(iter(data.make_dataset(tmp_path / "d", 16, global_batch_size=4, seed=0, mirror=True)))
    assert images.shape == (4, 16, 16, 3) and labels.shape == (4, 0)
    assert -1.0 <= float(np.min(images)) and float(np.max(images)) <= 1.0


def test_interrupted_create_leaves_nothing(tmp_path, capsys, monkeypatch):
    from data_tools.sources import images as images_source

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(40):
        PIL.Image.fromarray(np.full((8, 8), i, np.uint8)).save(folder / f"{i:02d}.png")
    load = images_source.load_image
    calls = []

    def interrupted(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 30:
            raise KeyboardInterrupt
        return load(path, *args, **kwargs)

    monkeypatch.setattr(images_source, "load_image", interrupted)
    status, out, err = run(capsys, "create_from_images", tmp_path / "out", folder)
    assert status == 130 and err.strip().endswith("interrupted: nothing was written") and out == ""
    assert sorted(os.listdir(tmp_path)) == ["images"]


def test_help_and_every_data_tools_and_utils_module_import_without_tensorflow():
    # Reading commands and --help must start fast: only writing and verifying records load
    # TensorFlow, lazily; progan_tf.utils never does. Run in a fresh interpreter, since this
    # one has TensorFlow loaded.
    code = """
import importlib, pkgutil, sys
import data_tools
import progan_tf.utils
for module in pkgutil.iter_modules(progan_tf.utils.__path__, "progan_tf.utils."):
    importlib.import_module(module.name)
from data_tools.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
for module in pkgutil.walk_packages(data_tools.__path__, "data_tools."):
    if module.name != "data_tools.__main__":
        importlib.import_module(module.name)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras"))
print("LOADED", loaded)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout[-500:]
    assert "create_from_images" in result.stdout  # the help was printed
