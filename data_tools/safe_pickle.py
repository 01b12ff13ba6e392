"""Reads pickled data (the CIFAR and SVHN python releases) without executing pickled code.

The pickle opcodes are interpreted here, not by `pickle`: only plain values are built (None, bool,
int, float, str, bytes, list, tuple, dict) plus NumPy arrays of plain dtypes, recognised by the
few NumPy reconstruction globals that `ndarray.__reduce__` emits. Any other global (for example
`os.system`) or opcode is refused with DataError, so a hostile file cannot run code.
Python 2 `str` values are decoded as Latin-1, as `pickle.load(..., encoding="latin1")` does.
"""

import ast
import codecs
import struct

import numpy as np

from data_tools.errors import DataError

_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric", "numpy")
_ALLOWED_GLOBALS = {
    "_reconstruct": "reconstruct", "ndarray": "ndarray", "dtype": "dtype", "scalar": "scalar",
    "_frombuffer": "frombuffer",
}


class _Global:
    def __init__(self, role):
        self.role = role


class _ArrayStub:
    """An ndarray under construction (`_reconstruct` result waiting for BUILD)."""

    array = None


class _DtypeStub:
    def __init__(self, typestr):
        self.typestr = typestr
        self.byteorder = "="

    def dtype(self):
        dtype = np.dtype(self.typestr)
        if dtype.hasobject or dtype.fields is not None:
            raise ValueError(f"dtype {self.typestr!r} is not a plain numeric dtype")
        if self.byteorder in "<>":
            dtype = dtype.newbyteorder(self.byteorder)
        return dtype


class _Mark:
    pass


_MARK = _Mark()


def _plain_dtype(value):
    if isinstance(value, _DtypeStub):
        return value.dtype()
    if isinstance(value, str):
        return _DtypeStub(value).dtype()
    raise ValueError(f"expected a dtype, found {type(value).__name__}")


def _as_bytes(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("latin1")
    raise ValueError(f"expected array data, found {type(value).__name__}")


def _reduce(func, args):
    if not isinstance(func, _Global):
        raise ValueError("REDUCE on something other than an allowed NumPy global")
    role = func.role
    if role == "reconstruct":
        return _ArrayStub()
    if role == "dtype":
        return _DtypeStub(args[0])
    if role == "scalar":
        dtype = _plain_dtype(args[0])
        return np.frombuffer(_as_bytes(args[1]), dtype)[0]
    if role == "frombuffer":
        buffer, dtype, shape, order = args
        return np.frombuffer(_as_bytes(buffer), _plain_dtype(dtype)).reshape(shape, order=order).copy()
    if role == "encode":
        text, encoding = args
        if encoding.replace("-", "") != "latin1":
            raise ValueError(f"_codecs.encode with encoding {encoding!r}")
        return codecs.encode(text, "latin1")
    raise ValueError(f"global {role} cannot be called")


def _build(target, state):
    if isinstance(target, _ArrayStub):
        if len(state) == 5:
            state = state[1:]
        shape, dtype, is_fortran, raw = state
        dtype = _plain_dtype(dtype)
        if isinstance(raw, list):
            raise ValueError("object arrays are refused")
        array = np.frombuffer(_as_bytes(raw), dtype)
        target.array = array.reshape(shape, order="F" if is_fortran else "C").copy()
        return
    if isinstance(target, _DtypeStub):
        target.byteorder = state[1]
        if len(state) > 3 and (state[2] is not None or state[3] is not None):
            raise ValueError("structured dtypes are refused")
        return
    raise ValueError(f"BUILD on {type(target).__name__} is refused")


def _finish(value):
    """Replaces array stubs by arrays, recursively."""
    if isinstance(value, _ArrayStub):
        if value.array is None:
            raise ValueError("array without data")
        return value.array
    if isinstance(value, _DtypeStub):
        return value.dtype()
    if isinstance(value, list):
        return [_finish(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_finish(item) for item in value)
    if isinstance(value, dict):
        return {_finish(key): _finish(item) for key, item in value.items()}
    return value


def _resolve_global(module, name):
    if module in _NUMPY_MODULES and name in _ALLOWED_GLOBALS:
        return _Global(_ALLOWED_GLOBALS[name])
    if module in ("_codecs", "codecs") and name == "encode":
        return _Global("encode")
    raise ValueError(f"refuses to load global {module}.{name} (only plain data and NumPy arrays)")


def loads(data):
    """The plain value in pickle bytes; ValueError describing the first refused or malformed item."""
    data = memoryview(data)
    pos = 0
    stack, metastack, memo = [], [], {}

    def take(count):
        nonlocal pos
        if pos + count > len(data):
            raise ValueError("truncated pickle")
        chunk = data[pos:pos + count]
        pos += count
        return chunk

    def line():
        nonlocal pos
        end = bytes(data[pos:]).find(b"\n")
        if end < 0:
            raise ValueError("truncated pickle")
        text = bytes(data[pos:pos + end])
        pos += end + 1
        return text

    def pop_mark():
        nonlocal stack
        items = stack
        stack = metastack.pop()
        return items

    def unpack(fmt):
        return struct.unpack(fmt, take(struct.calcsize(fmt)))[0]

    while True:
        opcode = bytes(take(1))
        if opcode == b"\x80":  # PROTO
            take(1)
        elif opcode == b"\x95":  # FRAME
            take(8)
        elif opcode == b".":  # STOP
            return _finish(stack.pop())
        elif opcode == b"(":  # MARK
            metastack.append(stack)
            stack = []
        elif opcode == b"0":
            stack.pop()
        elif opcode == b"1":
            pop_mark()
        elif opcode == b"2":
            stack.append(stack[-1])
        elif opcode == b"N":
            stack.append(None)
        elif opcode == b"\x88":
            stack.append(True)
        elif opcode == b"\x89":
            stack.append(False)
        elif opcode == b"I":
            text = line()
            stack.append({b"00": False, b"01": True}.get(text) if text in (b"00", b"01") else int(text))
        elif opcode == b"J":
            stack.append(unpack("<i"))
        elif opcode == b"K":
            stack.append(unpack("<B"))
        elif opcode == b"M":
            stack.append(unpack("<H"))
        elif opcode == b"L":
            stack.append(int(line().rstrip(b"L")))
        elif opcode == b"\x8a":
            stack.append(int.from_bytes(take(unpack("<B")), "little", signed=True))
        elif opcode == b"\x8b":
            stack.append(int.from_bytes(take(unpack("<i")), "little", signed=True))
        elif opcode == b"F":
            stack.append(float(line()))
        elif opcode == b"G":
            stack.append(unpack(">d"))
        elif opcode == b"S":
            stack.append(ast.literal_eval(line().decode("latin1")))
        elif opcode == b"T":
            stack.append(bytes(take(unpack("<i"))).decode("latin1"))
        elif opcode == b"U":
            stack.append(bytes(take(unpack("<B"))).decode("latin1"))
        elif opcode == b"B":
            stack.append(bytes(take(unpack("<I"))))
        elif opcode == b"C":
            stack.append(bytes(take(unpack("<B"))))
        elif opcode == b"\x8e":
            stack.append(bytes(take(unpack("<Q"))))
        elif opcode == b"\x96":
            stack.append(bytearray(take(unpack("<Q"))))
        elif opcode == b"V":
            stack.append(line().decode("raw-unicode-escape"))
        elif opcode == b"X":
            stack.append(bytes(take(unpack("<I"))).decode("utf-8", "surrogatepass"))
        elif opcode == b"\x8c":
            stack.append(bytes(take(unpack("<B"))).decode("utf-8", "surrogatepass"))
        elif opcode == b"\x8d":
            stack.append(bytes(take(unpack("<Q"))).decode("utf-8", "surrogatepass"))
        elif opcode == b"]":
            stack.append([])
        elif opcode == b"l":
            items = pop_mark()  # rebinds `stack`: evaluate before appending
            stack.append(list(items))
        elif opcode == b"a":
            value = stack.pop()
            stack[-1].append(value)
        elif opcode == b"e":
            items = pop_mark()
            stack[-1].extend(items)
        elif opcode == b")":
            stack.append(())
        elif opcode == b"t":
            items = pop_mark()
            stack.append(tuple(items))
        elif opcode in (b"\x85", b"\x86", b"\x87"):
            count = opcode[0] - 0x84
            items = tuple(stack[-count:])
            del stack[-count:]
            stack.append(items)
        elif opcode == b"}":
            stack.append({})
        elif opcode == b"d":
            items = pop_mark()
            stack.append(dict(zip(items[0::2], items[1::2])))
        elif opcode == b"s":
            value, key = stack.pop(), stack.pop()
            stack[-1][key] = value
        elif opcode == b"u":
            items = pop_mark()
            stack[-1].update(zip(items[0::2], items[1::2]))
        elif opcode == b"p":
            memo[int(line())] = stack[-1]
        elif opcode == b"q":
            memo[unpack("<B")] = stack[-1]
        elif opcode == b"r":
            memo[unpack("<I")] = stack[-1]
        elif opcode == b"\x94":
            memo[len(memo)] = stack[-1]
        elif opcode == b"g":
            stack.append(memo[int(line())])
        elif opcode == b"h":
            stack.append(memo[unpack("<B")])
        elif opcode == b"j":
            stack.append(memo[unpack("<I")])
        elif opcode == b"c":
            module = line().decode("latin1")
            name = line().decode("latin1")
            stack.append(_resolve_global(module, name))
        elif opcode == b"\x93":
            name = stack.pop()
            module = stack.pop()
            stack.append(_resolve_global(module, name))
        elif opcode == b"R":
            args = stack.pop()
            func = stack.pop()
            stack.append(_reduce(func, args))
        elif opcode == b"b":
            state = stack.pop()
            _build(stack[-1], state)
        else:
            raise ValueError(f"pickle opcode {opcode!r} at byte {pos - 1} is not supported "
                             "(only plain data and NumPy arrays are read)")


def load_file(path):
    """The plain value in a pickle file; DataError naming the file if it is refused or malformed."""
    try:
        with open(path, "rb") as file:
            content = file.read()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    try:
        return loads(content)
    except DataError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, struct.error, UnicodeDecodeError,
            SyntaxError) as error:
        raise DataError(f"{path}: not loaded ({error})") from None
