"""progan_tf/utils/files.py: atomic writes and SavedModel version directories."""

import json
import os

import pytest

from progan_tf.utils import files


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_write_atomic_replaces_the_file_with_umask_permissions_and_fsyncs(tmp_path, monkeypatch):
    path = tmp_path / "done"
    path.write_bytes(b"old")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    files.write_atomic(str(path), b"new")
    assert path.read_bytes() == b"new" and len(synced) == 1
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()
    assert os.listdir(tmp_path) == ["done"]


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "reals.png"
    path.write_bytes(b"old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        files.write_atomic(str(path), b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["reals.png"]


def test_write_json_atomic_is_indented_sorted_and_ends_with_a_newline(tmp_path):
    path = tmp_path / "flags.json"
    files.write_json_atomic(str(path), {"b": 1, "a": [1, 2]})
    text = path.read_text()
    assert text == json.dumps({"a": [1, 2], "b": 1}, indent=2) + "\n"


def _model_dir(tmp_path):
    model_dir = tmp_path / "generator"
    for name, complete in (("1", True), ("2", True), ("10", False), ("latest", True)):
        (model_dir / name).mkdir(parents=True)
        if complete:
            (model_dir / name / files.SAVED_MODEL_FILE).write_bytes(b"")
    (model_dir / "7").write_bytes(b"")  # a file, not a version
    return model_dir


def test_versions_are_integer_directories_in_numeric_order(tmp_path):
    model_dir = _model_dir(tmp_path)
    assert files.existing_versions(str(model_dir)) == [1, 2, 10]
    assert files.existing_versions(str(model_dir), files.SAVED_MODEL_FILE) == [1, 2]
    assert files.latest_version_dir(str(model_dir)) == os.path.join(str(model_dir), "10")
    assert files.latest_version_dir(str(model_dir), files.SAVED_MODEL_FILE) == os.path.join(
        str(model_dir), "2")
    assert files.existing_versions(str(tmp_path / "missing")) == []
    assert files.latest_version_dir(str(tmp_path / "missing")) is None


def test_find_saved_model_takes_a_version_or_the_latest_complete_one(tmp_path):
    model_dir = _model_dir(tmp_path)
    assert files.find_saved_model(model_dir / "1") == str(model_dir / "1")
    assert files.find_saved_model(model_dir) == os.path.join(str(model_dir), "2")
    assert files.find_saved_model(tmp_path) is None
