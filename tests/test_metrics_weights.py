"""Offline weights (progan_tf/metrics/weights.py): restricted unpickling, reproducible .npz,
cache location and the errors a user sees."""

import os
import pickle

import numpy as np
import pytest

from progan_tf.metrics import weights


class _WritesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_restricted_unpickler_refuses_arbitrary_callables(tmp_path):
    target = tmp_path / "should_not_exist"
    payload = pickle.dumps({"x": _WritesAFile(str(target))}, protocol=4)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global .*open"):
        weights.restricted_load(payload)
    assert not target.exists()


@pytest.mark.parametrize("protocol", [3, 4])
def test_restricted_unpickler_rebuilds_numpy_arrays(protocol):
    arrays = {
        "kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        "big_endian": np.arange(5, dtype=">f4"),
        "ints": np.array([[1, -2], [3, 4]], np.int64),
        "nested": [{"bias": np.ones(3, np.float32)}],
    }
    loaded = weights.restricted_load(pickle.dumps(arrays, protocol=protocol))
    for key in ("kernel", "fortran", "big_endian", "ints"):
        np.testing.assert_array_equal(loaded[key], arrays[key])
        assert loaded[key].dtype == arrays[key].dtype.newbyteorder("=")
    np.testing.assert_array_equal(loaded["nested"][0]["bias"], np.ones(3))


def test_restricted_unpickler_refuses_object_arrays():
    payload = pickle.dumps(np.array([1, "a"], dtype=object), protocol=4)
    with pytest.raises(pickle.UnpicklingError):
        weights.restricted_load(payload)


def _torchscript_pickle(size, stride):
    """Opcodes as torch.save writes them: a `__torch__.Net` object whose `weight` is
    `_rebuild_tensor_v2(<persistent FloatStorage "0" of 6 floats>, 0, size, stride, False,
    OrderedDict())`."""
    def pair(values):
        return b"K" + bytes([values[0]]) + b"K" + bytes([values[1]]) + b"\x86"

    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n("
              b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
              b"X\x03\x00\x00\x00cpuK\x06tQ"
              b"K\x00" + pair(size) + pair(stride) + b"\x89ccollections\nOrderedDict\n)RtR")
    return b"\x80\x02c__torch__\nNet\n)\x81}X\x06\x00\x00\x00weight" + tensor + b"sb."


def test_torchscript_records_and_tensors_over_persistent_storages():
    storage = np.arange(6, dtype="<f4").tobytes()
    loaded = weights.restricted_load(_torchscript_pickle((2, 3), (3, 1)),
                                     storage_reader={"0": storage}.__getitem__)
    assert loaded["__type__"] == "__torch__.Net"
    np.testing.assert_array_equal(loaded["weight"], [[0, 1, 2], [3, 4, 5]])
    transposed = weights.restricted_load(_torchscript_pickle((3, 2), (1, 3)),
                                         storage_reader={"0": storage}.__getitem__)
    np.testing.assert_array_equal(transposed["weight"], [[0, 3], [1, 4], [2, 5]])
    with pytest.raises(pickle.UnpicklingError, match="persistent id"):
        weights.restricted_load(_torchscript_pickle((2, 3), (3, 1)))  # no storage reader
    with pytest.raises(pickle.UnpicklingError, match="4 elements, expected 6"):
        weights.restricted_load(_torchscript_pickle((2, 3), (3, 1)),
                                storage_reader=lambda key: storage[:16])


def test_npz_is_byte_reproducible_and_keeps_scalars_scalar(tmp_path):
    arrays = {"b": np.arange(4, dtype=np.float32), "a": np.array(2, np.int32),
              "c": np.array([3, 1], np.int32)}
    first, second = str(tmp_path / "1.npz"), str(tmp_path / "2.npz")
    weights.write_npz_reproducibly(first, arrays)
    weights.write_npz_reproducibly(second, dict(reversed(list(arrays.items()))))
    assert weights.sha256_of(first) == weights.sha256_of(second)
    with np.load(first, allow_pickle=False) as npz:
        assert npz["a"].shape == () and int(npz["a"]) == 2
        np.testing.assert_array_equal(npz["b"], arrays["b"])


def test_cache_dir_prefers_the_argument_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PROGAN_TF_CACHE", str(tmp_path / "env"))
    assert weights.cache_dir() == str(tmp_path / "env")
    assert weights.cache_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")
    monkeypatch.delenv("PROGAN_TF_CACHE")
    assert weights.cache_dir().endswith(os.path.join(".cache", "progan_tf"))


def test_missing_or_corrupt_weights_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(weights.WeightsError, match="metrics.weights fetch"):
        weights.load_weights(weights.INCEPTION, str(tmp_path))
    path = weights.weights_path(weights.LPIPS_VGG16, str(tmp_path))
    weights.write_npz_reproducibly(path, {"x": np.zeros(2)})
    with pytest.raises(weights.WeightsError, match="wrong sha256"):
        weights.load_weights(weights.LPIPS_VGG16, str(tmp_path))


def test_path_command_prints_the_cache_dir(tmp_path, capsys):
    assert weights.main(["path", "--cache_dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)


@pytest.mark.skipif(not (weights.available(weights.INCEPTION)
                         and weights.available(weights.LPIPS_VGG16)),
                    reason="weights not fetched: run `python -m progan_tf.metrics.weights fetch`")
def test_converted_weights_hold_the_published_parameter_counts():
    inception = weights.load_weights(weights.INCEPTION)
    kernels = [k for k in inception if k.endswith(".weight")]
    assert len(kernels) == 94  # 376 tensors = 94 convs x (weight, beta, mean, var)
    params = sum(inception[k].size for k in inception if k.endswith((".weight", ".beta",
                                                                     ".mean", ".var")))
    assert params == 21_802_784
    assert inception["layers.conv.weight"].shape == (3, 3, 3, 32)  # HWIO
    vgg = weights.load_weights(weights.LPIPS_VGG16)
    assert sum(v.size for k, v in vgg.items() if k.startswith("vgg.")) == 14_714_688
    assert sum(v.size for k, v in vgg.items() if k.startswith("lin")) == 1_472
