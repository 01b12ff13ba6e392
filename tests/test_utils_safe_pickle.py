"""progan_tf/utils/safe_pickle.py: plain data and NumPy arrays load as with pickle, every other
global is refused without being run, and bad data is a one-line UnpicklingError."""

import builtins
import collections
import io
import os
import pickle

import numpy as np
import pytest

from progan_tf.utils import safe_pickle


def _loads(data, allowed=safe_pickle.NUMPY_GLOBALS, **kwargs):
    return safe_pickle.loads(data, allowed, **kwargs)


class _Calls:
    """Pickles as a call of `function(*args)`."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_plain_data_and_arrays_load_as_with_pickle(protocol):
    value = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "labels": [1, 2, 3], "name": "x",
             b"raw": b"\x00\xff", "nested": ({"f": 1.5, "n": None, "t": True}, [np.float32(2.5)]),
             "wide": np.arange(6, dtype=">i4").reshape(2, 3).T, "empty": np.zeros((0, 3), "f8"),
             "scalar": np.array(7, np.int16), "big": 2**70, "shared": [[1]] * 2}
    loaded = _loads(pickle.dumps(value, protocol=protocol))
    reference = pickle.loads(pickle.dumps(value, protocol=protocol))
    assert loaded.keys() == reference.keys()
    for key in ("data", "wide", "empty", "scalar"):
        np.testing.assert_array_equal(loaded[key], reference[key])
        assert loaded[key].shape == reference[key].shape
        assert loaded[key].dtype == reference[key].dtype.newbyteorder("=")  # native byte order
    assert loaded["labels"] == [1, 2, 3] and loaded["name"] == "x" and loaded[b"raw"] == b"\x00\xff"
    assert loaded["nested"][0] == {"f": 1.5, "n": None, "t": True}
    assert loaded["nested"][1][0] == 2.5 and loaded["nested"][1][0].dtype == np.float32
    assert loaded["big"] == 2**70 and loaded["shared"] == [[1], [1]]


def test_python2_strings_are_read_as_latin1():
    # What Python 2's cPickle.dump(protocol=2) writes for {'data': uint8 array, 'labels': [1, 2]}:
    # keys and the array's bytes are Python 2 str.
    py2 = (b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03"
           b"cnumpy\nndarray\nq\x04K\x00\x85U\x01b\x87Rq\x05(K\x01K\x02K\x03\x86cnumpy\ndtype\n"
           b"q\x06U\x02u1K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff"
           b"K\x00tb\x89U\x06\x00\x01\x02\xfd\xfe\xfftbU\x06labelsq\x08]q\t(K\x01K\x02eu.")
    loaded = _loads(py2)
    np.testing.assert_array_equal(loaded["data"], [[0, 1, 2], [253, 254, 255]])
    assert loaded["labels"] == [1, 2]
    np.testing.assert_array_equal(pickle.loads(py2, encoding="latin1")["data"], loaded["data"])


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("make_call", [
    lambda marker: _Calls(os.system, f"touch {marker}"),
    lambda marker: _Calls(builtins.eval, f"open({str(marker)!r}, 'w')"),
    lambda marker: _Calls(open, str(marker), "w"),
], ids=["os.system", "builtins.eval", "open"])
def test_other_globals_are_refused_by_name_and_never_run(tmp_path, protocol, make_call):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": [make_call(marker)]}, protocol=protocol)
    refused = r"^refusing to load global (posix\.system|(__builtin__|builtins)\.eval|io\.open)$"
    with pytest.raises(pickle.UnpicklingError, match=refused):
        _loads(payload)
    assert not marker.exists()


@pytest.mark.parametrize("value", [np.array([1, "a"], dtype=object),
                                   np.zeros(2, dtype=[("x", "f4"), ("y", "i4")])],
                         ids=["object", "structured"])
@pytest.mark.parametrize("protocol", [2, 5])
def test_object_and_structured_arrays_are_refused(value, protocol):
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        _loads(pickle.dumps(value, protocol=protocol))


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_every_truncation_is_a_one_line_unpickling_error(protocol):
    data = pickle.dumps({"data": np.arange(6, dtype=np.float32), "labels": ["a", "b"]},
                        protocol=protocol)
    for length in range(len(data)):
        with pytest.raises(pickle.UnpicklingError) as caught:
            _loads(data[:length])
        assert "\n" not in str(caught.value) and str(caught.value), length


def test_the_caller_extends_the_allow_list():
    payload = pickle.dumps(collections.OrderedDict(a=np.ones(2, np.float32)), protocol=4)
    with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict"):
        _loads(payload)
    allowed = {**safe_pickle.NUMPY_GLOBALS, ("collections", "OrderedDict"): dict}
    loaded = _loads(payload, allowed)
    assert type(loaded) is dict and loaded["a"].tolist() == [1.0, 1.0]
    assert _loads(pickle.dumps([1, "x"]), {}) == [1, "x"]  # no globals needed, none allowed


def test_persistent_ids_are_refused_unless_the_caller_resolves_them():
    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", "key0") if obj == "external" else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(["external", 1])
    with pytest.raises(pickle.UnpicklingError, match="persistent id"):
        _loads(buffer.getvalue())
    assert _loads(buffer.getvalue(), persistent_load=lambda pid: pid[1]) == ["key0", 1]


def test_a_pickle_cannot_change_an_allowed_function_for_later_loads():
    # GLOBAL numpy._core.multiarray.scalar; BUILD (None, {"__defaults__": (1,)}) on it.
    payload = (b"\x80\x02cnumpy._core.multiarray\nscalar\nN}U\x0c__defaults__K\x01\x85s\x86b.")
    with pytest.raises(pickle.UnpicklingError):
        _loads(payload)
    assert _loads(pickle.dumps(np.float32(1.5), protocol=2)) == 1.5
