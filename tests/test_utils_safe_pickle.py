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


# --- NVIDIA's network pickles (SPEC 11): load_network_pickle and NETWORK_GLOBALS -------------


class _Network:
    """Pickles like an original network object: NEWOBJ of the class, BUILD with its state."""

    def __init__(self, state):
        self.state = state

    def __getstate__(self):
        return self.state


@pytest.fixture
def network_classes(monkeypatch):
    """Stand-ins importable as tfutil.Network and dnnlib.tflib.network.Network (what pickle
    writes as the class global), for writing files the way the originals do."""
    import sys
    import types

    classes = {}
    for package in ("dnnlib", "dnnlib.tflib"):  # imported on the way to dnnlib.tflib.network
        monkeypatch.setitem(sys.modules, package, types.ModuleType(package))
    for module_name in ("tfutil", "dnnlib.tflib.network"):
        cls = type("Network", (_Network,), {"__module__": module_name})
        module = types.ModuleType(module_name)
        module.Network = cls
        monkeypatch.setitem(sys.modules, module_name, module)
        classes[module_name] = cls
    return classes


def _network_state(build_module_src="", **extra):
    return {"version": 2, "name": "G", "static_kwargs": {"resolution": 8, "fused_scale": False},
            "build_module_src": build_module_src, "build_func_name": "G_paper",
            "variables": [("lod", np.float32(1.5)),
                          ("4x4/Dense/weight", np.arange(6, dtype=np.float32).reshape(2, 3)),
                          ("4x4/Dense/bias", np.zeros(0, np.float32))], **extra}


def _write(path, value, protocol):
    with open(path, "wb") as file:
        pickle.dump(value, file, protocol=protocol)
    return path


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_network_objects_load_as_inert_records_of_their_state(tmp_path, network_classes,
                                                              protocol):
    tf1 = network_classes["tfutil"]
    dnnlib = network_classes["dnnlib.tflib.network"]
    value = (tf1(_network_state()), dnnlib(dict(_network_state(), version=3)), tf1({}))
    loaded = safe_pickle.load_network_pickle(_write(tmp_path / "n.pkl", value, protocol))
    assert [(item.module, item.name) for item in loaded] == [
        ("tfutil", "Network"), ("dnnlib.tflib.network", "Network"), ("tfutil", "Network")]
    state = loaded[0].state
    assert state["static_kwargs"] == {"resolution": 8, "fused_scale": False}
    assert state["variables"][0] == ("lod", 1.5) and state["variables"][0][1].dtype == np.float32
    np.testing.assert_array_equal(state["variables"][1][1], [[0, 1, 2], [3, 4, 5]])
    assert state["variables"][2][1].shape == (0,)  # protocol 2 writes b"" as bytes()
    assert loaded[1].state["version"] == 3 and loaded[2].state == {}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_embedded_network_source_is_never_executed(tmp_path, network_classes, protocol):
    # The original __setstate__ exec()s build_module_src; here it is only a string.
    marker = tmp_path / "executed"
    source = f"open({str(marker)!r}, 'w').write('pwned')\ndef G_paper(*a, **k):\n    pass\n"
    path = _write(tmp_path / "n.pkl", (network_classes["tfutil"](_network_state(source)),),
                  protocol)
    loaded = safe_pickle.load_network_pickle(path)
    assert loaded[0].state["build_module_src"] == source
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_network_pickle_calling_os_system_is_refused_by_name(tmp_path, network_classes,
                                                               protocol):
    marker = tmp_path / "pwned"
    state = _network_state(static_kwargs={"resolution": _Calls(os.system, f"touch {marker}")})
    path = _write(tmp_path / "evil.pkl", (network_classes["tfutil"](state),), protocol)
    with pytest.raises(safe_pickle.UnpicklingError,
                       match=r"^evil\.pkl: refusing to load global posix\.system$"):
        safe_pickle.load_network_pickle(path)
    assert not marker.exists()


def test_other_classes_and_numpy_helpers_outside_spec_11_are_refused(tmp_path):
    assert ("codecs", "encode") not in safe_pickle.NETWORK_GLOBALS
    payload = pickle.dumps(collections.OrderedDict(a=1), protocol=4)
    path = tmp_path / "od.pkl"
    path.write_bytes(payload)
    with pytest.raises(safe_pickle.UnpicklingError, match="collections.OrderedDict"):
        safe_pickle.load_network_pickle(path)


def test_object_arrays_in_a_network_state_are_refused(tmp_path, network_classes):
    state = _network_state(variables=[("w", np.array([1, "a"], dtype=object))])
    path = _write(tmp_path / "n.pkl", (network_classes["tfutil"](state),), 4)
    with pytest.raises(safe_pickle.UnpicklingError, match="^n.pkl: .*refused"):
        safe_pickle.load_network_pickle(path)


def test_the_inert_class_runs_nothing_of_the_original(tmp_path):
    cls = safe_pickle.NETWORK_GLOBALS[("tfutil", "Network")]
    # REDUCE calling the class with arguments, and BUILD on the class object itself.
    called = b"\x80\x02ctfutil\nNetwork\nK\x01\x85R."
    on_class = b"\x80\x02ctfutil\nNetwork\n}U\x01xK\x01sb."
    for data in (called, on_class):
        with pytest.raises(pickle.UnpicklingError):
            _loads(data, safe_pickle.NETWORK_GLOBALS)
    assert not hasattr(cls, "x")


def test_protocol_5_out_of_band_buffers_are_refused(tmp_path):
    buffers = []
    data = pickle.dumps(np.arange(4.0), protocol=5, buffer_callback=buffers.append)
    assert buffers  # the array went out of band
    path = tmp_path / "oob.pkl"
    path.write_bytes(data)
    with pytest.raises(safe_pickle.UnpicklingError, match="^oob.pkl: "):
        safe_pickle.load_network_pickle(path)


def test_truncated_network_pickles_fail_in_one_line_naming_the_file(tmp_path, network_classes):
    data = pickle.dumps((network_classes["tfutil"](_network_state()),), protocol=4)
    path = tmp_path / "cut.pkl"
    for length in range(0, len(data), 7):
        path.write_bytes(data[:length])
        with pytest.raises(safe_pickle.UnpicklingError) as caught:
            safe_pickle.load_network_pickle(path)
        message = str(caught.value)
        assert message.startswith("cut.pkl: ") and "\n" not in message, length


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_fail_in_one_line_naming_the_file(tmp_path, seed):
    data = np.random.default_rng(seed).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    if seed % 2:
        data = b"\x80\x04" + data  # past the protocol check, into the opcodes
    path = tmp_path / "random.bin"
    path.write_bytes(data)
    with pytest.raises(safe_pickle.UnpicklingError) as caught:
        safe_pickle.load_network_pickle(path)
    assert str(caught.value).startswith("random.bin: ") and "\n" not in str(caught.value)


def _torch_zip(path):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({"w": 1}, protocol=2))
        archive.writestr("model/version", "3\n")
    return path


@pytest.mark.parametrize("make, expected", [
    (_torch_zip, r"a PyTorch file \(torch.save zip archive holding data.pkl\)"),
    (lambda path: path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
                                   + pickle.dumps(1001, protocol=2)),
     r"a PyTorch file \(legacy torch.save format\)"),
    (lambda path: path.write_bytes(b""), "an empty file"),
    (lambda path: path.write_bytes(b"\x1f\x8b\x08\x00rest"), "a gzip file"),
    (lambda path: path.write_bytes(b"import os\nos.system('x')\n"), "not a pickle of protocol"),
    (lambda path: path.write_bytes(pickle.dumps({"a": 1}, protocol=0)),
     "not a pickle of protocol"),
], ids=["torch_zip", "torch_legacy", "empty", "gzip", "text", "protocol0"])
def test_other_formats_are_named_in_the_error(tmp_path, make, expected):
    path = tmp_path / "model.pt"
    make(path)
    with pytest.raises(safe_pickle.UnpicklingError, match=f"^model.pt: {expected}"):
        safe_pickle.load_network_pickle(path)


def test_a_pytorch_pickle_global_is_called_a_pytorch_pickle(tmp_path):
    # What a StyleGAN2-ADA-PyTorch network pickle starts with.
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(b"\x80\x03ctorch_utils.persistence\n_reconstruct_persistent_obj\nq\x00.")
    with pytest.raises(safe_pickle.UnpicklingError,
                       match=r"refusing to load global torch_utils\.persistence\."
                             r"_reconstruct_persistent_obj \(a PyTorch pickle"):
        safe_pickle.load_network_pickle(path)


def test_progress_sees_every_byte(tmp_path, network_classes):
    path = _write(tmp_path / "n.pkl", (network_classes["tfutil"](_network_state()),), 2)
    counts = []
    safe_pickle.load_network_pickle(path, on_read=counts.append)
    assert sum(counts) == path.stat().st_size
