"""The one restricted unpickler: `pickle.Unpickler` whose `find_class` resolves only the globals
of an allow-list, each to a harmless stand-in, so a hostile file cannot run code.

    value = safe_pickle.loads(data, safe_pickle.NUMPY_GLOBALS)

`NUMPY_GLOBALS` rebuilds NumPy arrays, dtypes and scalars of plain (non-object, non-structured)
dtypes, under both `numpy.core.*` and `numpy._core.*` names, plus protocol 0-2 bytes
(`_codecs.encode(text, "latin1")`, `bytes()`); callers extend it with their own entries.
Python 2 `str` values are decoded as Latin-1, as CIFAR's batches need. Every failure, a refused
global included, is a one-line `pickle.UnpicklingError`.

NVIDIA's network pickles (SPEC 11) load through `load_network_pickle(path)` with
`NETWORK_GLOBALS`: the two network classes (`tfutil.Network`, `dnnlib.tflib.network.Network`)
become inert `PickledObject`s holding their pickled state (the embedded `build_module_src` is
only a string: it is never executed or compiled), everything else is SPEC 11's NumPy list.
"""

import codecs
import dataclasses
import io
import os
import pickle
import pickletools
import struct
import types
import zipfile

import numpy as np

# The one error of this module (pickle's own class): callers catch it without importing pickle,
# so this stays the only module of the project that does (tests/test_faults.py checks).
UnpicklingError = pickle.UnpicklingError


class Placeholder:
    """Base of the stand-ins that allowed globals return when the real value can only be made
    once loading ends (e.g. an array whose state arrives later by BUILD). `finish` turns each
    into `value(finish)`, where `finish` resolves nested placeholders."""

    def value(self, finish):
        raise NotImplementedError


class _Dtype(Placeholder):
    """`numpy.dtype(spec, align, copy)`, then BUILD with (version, byteorder, subarray, names,
    fields, ...)."""

    def __init__(self, spec, *unused):
        self.spec = spec
        self.byteorder = "="

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2:
            raise UnpicklingError(f"unexpected dtype state {state!r}")
        if len(state) > 4 and any(part is not None for part in state[2:5]):
            raise UnpicklingError(f"dtype {self.spec!r}: structured and subarray dtypes "
                                         "are refused")
        self.byteorder = state[1]

    def dtype(self):
        dtype = np.dtype(self.spec if isinstance(self.spec, str) else _text(self.spec))
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise UnpicklingError(f"dtype {self.spec!r} is refused (object, structured "
                                         "or subarray)")
        if self.byteorder in ("<", ">"):
            dtype = dtype.newbyteorder(self.byteorder)
        return dtype

    def value(self, finish):
        return self.dtype()


class _Array(Placeholder):
    """`_reconstruct(ndarray, (0,), b"b")`, then BUILD with (version, shape, dtype, is_fortran,
    raw bytes)."""

    state = None
    _value = None

    def __setstate__(self, state):
        self.state = state

    def value(self, finish):
        if self._value is None:  # built once: a memoized array may be referenced twice
            if not isinstance(self.state, tuple) or len(self.state) not in (4, 5):
                raise UnpicklingError("array without a valid state")
            shape, dtype, is_fortran, raw = self.state[-4:]
            if isinstance(raw, list):
                raise UnpicklingError("object arrays are refused")
            self._value = _array(raw, dtype, shape, "F" if is_fortran else "C")
            self.state = None  # drops the raw bytes: a large file is not held twice
        return self._value


class _NdarrayClass:
    """What `numpy.ndarray` resolves to: only a marker passed to `_reconstruct`."""

    __slots__ = ()


_NDARRAY = _NdarrayClass()


def _text(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin1")
    if isinstance(value, str):
        return value
    raise UnpicklingError(f"expected text, found {type(value).__name__}")


def _as_bytes(value):
    if isinstance(value, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        return bytes(value)
    if isinstance(value, str):  # Python 2 str decoded as Latin-1
        return value.encode("latin1")
    raise UnpicklingError(f"expected raw data, found {type(value).__name__}")


def _plain_dtype(value):
    if isinstance(value, _Dtype):
        return value.dtype()
    if isinstance(value, (str, bytes)):
        return _Dtype(value).dtype()
    raise UnpicklingError(f"expected a dtype, found {type(value).__name__}")


def _array(raw, dtype, shape, order):
    """A native-byte-order copy of `raw` viewed as `dtype` [shape]."""
    dtype = _plain_dtype(dtype)
    shape = tuple(int(size) for size in shape)
    array = np.frombuffer(_as_bytes(raw), dtype).reshape(shape, order=order)
    return np.array(array, dtype=dtype.newbyteorder("="), order="K")


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY:
        raise UnpicklingError("_reconstruct of something other than numpy.ndarray")
    return _Array()


def _scalar(dtype, raw=None):
    dtype = _plain_dtype(dtype)
    return np.frombuffer(_as_bytes(raw), dtype)[0].astype(dtype.newbyteorder("="))


def _frombuffer(buffer, dtype, shape, order):
    return _array(buffer, dtype, shape, order)


def _encode(text, encoding="utf-8"):
    """`_codecs.encode` as protocols 0-2 pickle bytes: Latin-1 only."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnpicklingError(f"_codecs.encode with encoding {encoding!r} is refused")
    return codecs.encode(text, "latin1")


def _empty_bytes(*args):
    """`bytes()` as protocols 0-2 pickle b"" (with arguments it could allocate any size)."""
    if args:
        raise UnpicklingError("bytes() with arguments is refused")
    return b""


def _dtype(spec, *unused):
    return _Dtype(spec)


def _numpy_globals():
    table = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _dtype,
             ("_codecs", "encode"): _encode, ("codecs", "encode"): _encode,
             ("__builtin__", "bytes"): _empty_bytes, ("builtins", "bytes"): _empty_bytes}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{core}.multiarray", "scalar")] = _scalar
        table[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    return table


NUMPY_GLOBALS = _numpy_globals()


class _Guarded:
    """A function as handed to the pickle: callable, but BUILD cannot set its attributes
    (`__defaults__`, ...), so one file cannot change how the next one loads."""

    __slots__ = ("_function",)

    def __init__(self, function):
        object.__setattr__(self, "_function", function)

    def __call__(self, *args, **kwargs):
        return self._function(*args, **kwargs)

    def __setattr__(self, name, value):
        raise UnpicklingError(f"refusing to set {name!r} on an allowed global")


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves a global only through `allowed`.

    Args:
        file: binary file to read.
        allowed: mapping {(module, name): object}; the object stands in for the global (usually
            a function building a plain value or a Placeholder). Lookups go through
            `allowed[(module, name)]`, so a dict subclass with `__missing__` can allow families
            of names. Any other global raises UnpicklingError naming it.
        persistent_load: optional function(pid) -> object for persistent ids (torch storages);
            without it a persistent id is refused.
    """

    def __init__(self, file, allowed, persistent_load=None):
        super().__init__(file, encoding="latin1")  # Python 2 str, e.g. CIFAR's batches
        self._allowed = allowed
        self._persistent_load = persistent_load

    def find_class(self, module, name):
        try:
            resolved = self._allowed[(module, name)]
        except KeyError:
            raise UnpicklingError(f"refusing to load global {module}.{name}") from None
        return _Guarded(resolved) if isinstance(resolved, types.FunctionType) else resolved

    def persistent_load(self, pid):
        if self._persistent_load is None:
            raise UnpicklingError(f"unsupported persistent id {pid!r}")
        return self._persistent_load(pid)


def finish(value):
    """Replaces placeholders by their values in nested lists, tuples, sets and dicts."""
    if isinstance(value, Placeholder):
        return value.value(finish)
    if isinstance(value, dict):
        return {finish(key): finish(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(finish(item) for item in value)
    return value


_MALFORMED = (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
              struct.error, RecursionError, MemoryError)


def load(file, allowed, persistent_load=None):
    """The value pickled in binary `file`, built only from `allowed` globals (see
    RestrictedUnpickler), placeholders finished. Raises UnpicklingError with a one-line
    message for refused globals and for truncated or malformed data."""
    try:
        return finish(RestrictedUnpickler(file, allowed, persistent_load).load())
    except UnpicklingError as error:
        raise UnpicklingError(_one_line(error)) from None
    except _MALFORMED as error:
        raise UnpicklingError(f"malformed pickle: {_one_line(error)}") from None


def loads(data, allowed, persistent_load=None):
    """`load` from bytes."""
    return load(io.BytesIO(data), allowed, persistent_load)


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ------------------------------------------------------------------------------------------------
# NVIDIA's network pickles (SPEC 11): (G, D, Gs) of tfutil.Network / dnnlib.tflib.network.Network.


@dataclasses.dataclass(frozen=True)
class PickledObject:
    """An instance of an allowed class, as plain data: the global its pickle named
    (`module`.`name`) and the state its BUILD opcode carried (for the network classes, the
    `__getstate__` dict). Nothing of the original class ran to make it."""

    module: str
    name: str
    state: object


class _InertInstance(Placeholder):
    """Base of the classes that stand in for an allowed class global (`inert_class`): NEWOBJ
    makes an empty instance, BUILD stores the state, `finish` turns it into a PickledObject."""

    __slots__ = ("_state",)
    MODULE = NAME = None

    def __init__(self, *args, **kwargs):
        if args or kwargs:  # a REDUCE call with arguments; NEWOBJ never calls __init__
            raise UnpicklingError(f"refusing to call {self.MODULE}.{self.NAME} with arguments")
        self._state = None

    def __setstate__(self, state):
        self._state = state

    def value(self, finish):
        return PickledObject(self.MODULE, self.NAME, finish(getattr(self, "_state", None)))


def inert_class(module, name):
    """A class to allow the global `module.name` as: instances unpickle into `PickledObject`s
    holding their state; none of the real class's code (e.g. a `__setstate__` that executes
    source code stored in the file) exists or runs."""
    return type(name, (_InertInstance,), {"__slots__": (), "MODULE": module, "NAME": name})


NETWORK_CLASSES = (("tfutil", "Network"), ("dnnlib.tflib.network", "Network"))


def _network_globals():
    """SPEC 11's allow-list: the two network classes (inert) and the NumPy globals of arrays,
    dtypes and scalars (`numpy.core.*` and `numpy._core.*`), `_codecs.encode(str, "latin1")`
    for protocol-2 bytes, `bytes()` without arguments (protocol 2 writes b"" that way, e.g.
    for an empty array) and `numeric._frombuffer` (protocol 5 arrays, in-band)."""
    table = {key: inert_class(*key) for key in NETWORK_CLASSES}
    table.update({key: value for key, value in NUMPY_GLOBALS.items()
                  if key != ("codecs", "encode")})
    return table


NETWORK_GLOBALS = _network_globals()

_OPCODES = {opcode.code.encode("latin1") for opcode in pickletools.opcodes}

# torch.save's legacy (non-zip) format starts with the pickled int 0x1950a86a20f9469cfc6c.
_TORCH_LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def sniff_format(head, path=None):
    """What a file that is not a plain pickle is, from its first bytes `head` (and, for a zip
    archive, its member names when `path` is given): a short description, or None when it may
    be a pickle (protocol 2 or above, or protocol 0/1 text)."""
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        names = []
        if path is not None:
            try:
                with zipfile.ZipFile(path) as archive:
                    names = archive.namelist()
            except (OSError, zipfile.BadZipFile):
                pass
        if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            return "a PyTorch file (torch.save zip archive holding data.pkl)"
        return "a zip archive, not a pickle"
    if _TORCH_LEGACY_MAGIC in head[:32]:
        return "a PyTorch file (legacy torch.save format)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip file, not a pickle (decompress it first)"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file, not a pickle"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy file, not a pickle"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] > pickle.HIGHEST_PROTOCOL:
        return f"a pickle of protocol {head[1]}, newer than this Python reads"
    if head[:1] not in _OPCODES:
        return "not a pickle (unknown file format)"
    return None


class _CountingReader:
    """Read-only file wrapper that reports the bytes read to `on_read(count)`."""

    def __init__(self, file, on_read):
        self._file = file
        self._on_read = on_read

    def read(self, size=-1):
        data = self._file.read(size)
        self._on_read(len(data))
        return data

    def readinto(self, buffer):
        count = self._file.readinto(buffer)
        self._on_read(count or 0)
        return count

    def readline(self, size=-1):
        line = self._file.readline(size)
        self._on_read(len(line))
        return line

    def peek(self, size=0):  # lets the C unpickler read ahead; counted when read
        return self._file.peek(size)


def load_network_pickle(path, on_read=None):
    """The value in NVIDIA's network pickle `path` (ProGAN/StyleGAN v1, SPEC 11), built from
    NETWORK_GLOBALS only: networks come back as PickledObjects, arrays as ndarrays.

    on_read: optional function(count), called with the size of each read (progress lines).
    Raises UnpicklingError with one line that names the file: for files that are no pickle
    (what they are, when known: a PyTorch file, a zip archive, ...), truncated or malformed
    data, and every refused global (named; torch globals are called a PyTorch pickle).
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        with open(path, "rb") as file:
            head = file.read(64)
            described = sniff_format(head, path)
            protocol = head[1] if len(head) > 1 and head[0] == 0x80 else None
            if described is None and protocol not in (2, 3, 4, 5):
                described = "not a pickle of protocol 2 to 5 (unknown file format)"
            if described is not None:
                raise UnpicklingError(f"{name}: {described}")
            file.seek(0)
            reader = file if on_read is None else _CountingReader(file, on_read)
            value = load(reader, NETWORK_GLOBALS)
    except UnpicklingError as error:
        message = str(error)
        if message.startswith(f"{name}: "):
            raise
        torch = message.startswith("refusing to load global torch")  # torch. or torch_utils.
        hint = " (a PyTorch pickle, e.g. StyleGAN2-ADA or StyleGAN3)" if torch else ""
        raise UnpicklingError(f"{name}: {message}{hint}") from None
    except OSError as error:
        raise UnpicklingError(f"{name}: cannot be read ({error.strerror or error})") from None
    if isinstance(value, int) and value == int.from_bytes(_TORCH_LEGACY_MAGIC[2:], "little"):
        raise UnpicklingError(f"{name}: a PyTorch file (legacy torch.save format)")
    return value
