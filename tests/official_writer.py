"""Test-only writer of NVIDIA's pickle layout (SPEC 11): random states with the originals'
variable names, shapes and order for ProGAN (`tfutil.Network`, version 2) and StyleGAN
(`dnnlib.tflib.network.Network`, version 3), pickled as the `(G, D, Gs)` tuple the originals
save. Nothing here runs or needs the original code; tests and bench/import_official.py share it.

    states = progan_states(dict(PROGAN_CELEBAHQ, resolution=16), seed=1)
    write_pickle(path, states)                  # protocol 4, numpy 1.x global names
    total_bytes = weights_bytes(states)

A state is the dict the original `__getstate__` returns; each network is written as an object
whose class pickles as `tfutil.Network` (ProGAN) or `dnnlib.tflib.network.Network` (StyleGAN)
with that dict as its state, exactly as NVIDIA's files hold them.
"""

import io
import pickle  # tests/ only: the project itself never imports pickle (tests/test_faults.py)
import types

import numpy as np

# The official CelebA-HQ ProGAN file's kwargs (SPEC 11: converted from Theano, unfused, groups
# of 16); D reads `mbstd_group_size`, G ignores it.
PROGAN_CELEBAHQ = dict(num_channels=3, resolution=1024, label_size=0, fmap_base=8192,
                       fmap_max=512, latent_size=512, fused_scale=False, mbstd_group_size=16)
# What NVIDIA's StyleGAN training loop stores for FFHQ: the dataset's shape only; every other
# value is the build function's default.
STYLEGAN_FFHQ = dict(num_channels=3, resolution=1024, label_size=0)

# Stand-in source of `build_module_src`: a loader must never execute it (if one did, the
# assertion would name the culprit).
MODULE_SOURCE = ("raise AssertionError('build_module_src of a synthetic official pickle was "
                 "executed')\n")

_GLOBAL_NAMES = {}  # class -> (module, name) it is pickled as


class ProGANNetwork:
    """Pickled as `tfutil.Network` with its state dict."""

    def __init__(self, state):
        self.state = state

    def __getstate__(self):
        return self.state


class StyleGANNetwork(ProGANNetwork):
    """Pickled as `dnnlib.tflib.network.Network` with its state dict."""


_GLOBAL_NAMES[ProGANNetwork] = ("tfutil", "Network")
_GLOBAL_NAMES[StyleGANNetwork] = ("dnnlib.tflib.network", "Network")


def _nf(stage, kwargs):
    return min(int(kwargs["fmap_base"] / (2.0 ** (stage * kwargs["fmap_decay"]))),
               kwargs["fmap_max"])


def _with_defaults(static_kwargs, defaults):
    return {**defaults, **{key: value for key, value in static_kwargs.items()
                           if key in defaults}}


class _Variables:
    """The ordered (local name, value) list of one network; weights N(0, 1) as the originals
    store them under equalized learning rate, biases (and noise strengths, StyleMod biases,
    which start at 0 in the originals) N(0, 0.1)."""

    def __init__(self, rng):
        self.rng = rng
        self.items = []

    def scalar(self, name, value):
        self.items.append((name, np.float32(value)))

    def array(self, name, shape, scale=1.0, offset=0.0):
        values = self.rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        self.items.append((name, values + np.float32(offset)))

    def layer(self, scope, weight_shape, bias_size):
        self.array(f"{scope}/weight", weight_shape)
        self.array(f"{scope}/bias", [bias_size], scale=0.1)


def _state(cls, name, static_kwargs, func_name, variables, components=None):
    state = {"version": 3 if cls is StyleGANNetwork else 2, "name": name,
             "static_kwargs": dict(static_kwargs)}
    if cls is StyleGANNetwork:
        state["components"] = components or {}
    state.update(build_module_src=MODULE_SOURCE, build_func_name=func_name,
                 variables=variables.items)
    return cls(state)


# ---------------------------------------------------------------------------------------------
# ProGAN ([PG] networks.py G_paper / D_paper, linear structure: the variable order of the
# template graph, which is what `tfutil.Network.vars` lists).

PROGAN_G_DEFAULTS = dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192,
                         fmap_decay=1.0, fmap_max=512, latent_size=None, fused_scale=True)
PROGAN_D_DEFAULTS = dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192,
                         fmap_decay=1.0, fmap_max=512, mbstd_group_size=4, fused_scale=True)


def progan_generator_variables(static_kwargs, lod=0.0, rng=None):
    """G_paper's variables for `static_kwargs` (missing ones take G_paper's defaults)."""
    kw = _with_defaults(static_kwargs, PROGAN_G_DEFAULTS)
    top = int(np.log2(kw["resolution"]))
    latent_size = kw["latent_size"] or _nf(0, kw)
    out = _Variables(rng or np.random.default_rng(0))
    out.scalar("lod", lod)
    out.array("4x4/Dense/weight", [latent_size + kw["label_size"], _nf(1, kw) * 16])
    out.array("4x4/Dense/bias", [_nf(1, kw)], scale=0.1)
    out.layer("4x4/Conv", [3, 3, _nf(1, kw), _nf(1, kw)], _nf(1, kw))
    out.layer(f"ToRGB_lod{top - 2}", [1, 1, _nf(1, kw), kw["num_channels"]], kw["num_channels"])
    for r in range(3, top + 1):
        res, fin, fout = 2 ** r, _nf(r - 2, kw), _nf(r - 1, kw)
        if kw["fused_scale"]:  # a conv2d_transpose kernel: [k, k, out, in]
            out.layer(f"{res}x{res}/Conv0_up", [3, 3, fout, fin], fout)
        else:
            out.layer(f"{res}x{res}/Conv0", [3, 3, fin, fout], fout)
        out.layer(f"{res}x{res}/Conv1", [3, 3, fout, fout], fout)
        out.layer(f"ToRGB_lod{top - r}", [1, 1, fout, kw["num_channels"]], kw["num_channels"])
    return out


def _discriminator_variables(kw, lod, rng, fused, mbstd_features, outputs):
    """D_paper's / D_basic's variables (they differ in the names of the downsampling convs,
    the minibatch-stddev features and the output width)."""
    top = int(np.log2(kw["resolution"]))
    channels = kw["num_channels"]
    out = _Variables(rng or np.random.default_rng(0))
    out.scalar("lod", lod)
    out.layer("FromRGB_lod0", [1, 1, channels, _nf(top - 1, kw)], _nf(top - 1, kw))
    for r in range(top, 2, -1):
        res, fin, fout = 2 ** r, _nf(r - 1, kw), _nf(r - 2, kw)
        out.layer(f"{res}x{res}/Conv0", [3, 3, fin, fin], fin)
        out.layer(f"{res}x{res}/Conv1_down" if fused else f"{res}x{res}/Conv1",
                  [3, 3, fin, fout], fout)
        out.layer(f"FromRGB_lod{top - r + 1}", [1, 1, channels, fout], fout)
    mbstd = mbstd_features if kw["mbstd_group_size"] > 1 else 0
    out.layer("4x4/Conv", [3, 3, _nf(1, kw) + mbstd, _nf(1, kw)], _nf(1, kw))
    out.layer("4x4/Dense0", [_nf(1, kw) * 16, _nf(0, kw)], _nf(0, kw))
    out.layer("4x4/Dense1", [_nf(0, kw), outputs], outputs)
    return out


def progan_discriminator_variables(static_kwargs, lod=0.0, rng=None):
    """D_paper's variables for `static_kwargs` (missing ones take D_paper's defaults)."""
    kw = _with_defaults(static_kwargs, PROGAN_D_DEFAULTS)
    return _discriminator_variables(kw, lod, rng, kw["fused_scale"], 1, 1 + kw["label_size"])


def progan_states(static_kwargs, lod=0.0, d_lod=None, seed=0):
    """(G, D, Gs) of ProGAN as NVIDIA pickles them. static_kwargs: G_paper's and D_paper's
    keyword arguments (each network stores the ones its function takes, as the original
    training script passes them); lod: G's and Gs' stored lod; d_lod: D's (default lod).
    G and Gs hold different random values (Gs is the moving average in a real file)."""
    rng = np.random.default_rng(seed)
    g_kwargs = {key: value for key, value in static_kwargs.items() if key != "mbstd_group_size"}
    d_kwargs = {key: value for key, value in static_kwargs.items() if key != "latent_size"}
    g = _state(ProGANNetwork, "G", g_kwargs, "G_paper",
               progan_generator_variables(g_kwargs, lod, rng))
    d = _state(ProGANNetwork, "D", d_kwargs, "D_paper",
               progan_discriminator_variables(d_kwargs, lod if d_lod is None else d_lod, rng))
    gs = _state(ProGANNetwork, "Gs", g_kwargs, "G_paper",
                progan_generator_variables(g_kwargs, lod, rng))
    return g, d, gs


# ---------------------------------------------------------------------------------------------
# StyleGAN ([SG] training/networks_stylegan.py G_style, G_mapping, G_synthesis, D_basic).

STYLEGAN_SYNTHESIS_DEFAULTS = dict(dlatent_size=512, num_channels=3, resolution=1024,
                                   fmap_base=8192, fmap_decay=1.0, fmap_max=512)
STYLEGAN_MAPPING_DEFAULTS = dict(latent_size=512, label_size=0, dlatent_size=512,
                                 mapping_layers=8, mapping_fmaps=512)
STYLEGAN_D_DEFAULTS = dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192,
                           fmap_decay=1.0, fmap_max=512, mbstd_group_size=4,
                           mbstd_num_features=1)


def stylegan_synthesis_variables(static_kwargs, lod=0.0, rng=None):
    """G_synthesis' variables (linear structure): lod, the noise buffers, then per layer its
    weight (or const), Noise/weight, bias and StyleMod, with ToRGB after each resolution."""
    kw = _with_defaults(static_kwargs, STYLEGAN_SYNTHESIS_DEFAULTS)
    top = int(np.log2(kw["resolution"]))
    dlatent, channels = kw["dlatent_size"], kw["num_channels"]
    out = _Variables(rng or np.random.default_rng(0))
    out.scalar("lod", lod)
    for index in range(top * 2 - 2):
        side = 2 ** (index // 2 + 2)
        out.array(f"noise{index}", [1, 1, side, side])

    def epilogue(scope, fmaps):
        out.array(f"{scope}/Noise/weight", [fmaps], scale=0.1)
        out.array(f"{scope}/bias", [fmaps], scale=0.1)
        out.array(f"{scope}/StyleMod/weight", [dlatent, 2 * fmaps])
        out.array(f"{scope}/StyleMod/bias", [2 * fmaps], scale=0.1)

    out.array("4x4/Const/const", [1, _nf(1, kw), 4, 4], offset=1.0)  # initialised to ones
    epilogue("4x4/Const", _nf(1, kw))
    out.array("4x4/Conv/weight", [3, 3, _nf(1, kw), _nf(1, kw)])
    epilogue("4x4/Conv", _nf(1, kw))
    out.layer(f"ToRGB_lod{top - 2}", [1, 1, _nf(1, kw), channels], channels)
    for r in range(3, top + 1):
        res, fin, fout = 2 ** r, _nf(r - 2, kw), _nf(r - 1, kw)
        out.array(f"{res}x{res}/Conv0_up/weight", [3, 3, fin, fout])  # [k, k, in, out], fused or not
        epilogue(f"{res}x{res}/Conv0_up", fout)
        out.array(f"{res}x{res}/Conv1/weight", [3, 3, fout, fout])
        epilogue(f"{res}x{res}/Conv1", fout)
        out.layer(f"ToRGB_lod{top - r}", [1, 1, fout, channels], channels)
    return out


def stylegan_mapping_variables(static_kwargs, rng=None):
    """G_mapping's variables: LabelConcat (with labels), then Dense0 .. Dense{layers - 1}."""
    kw = _with_defaults(static_kwargs, STYLEGAN_MAPPING_DEFAULTS)
    out = _Variables(rng or np.random.default_rng(0))
    fan_in = kw["latent_size"]
    if kw["label_size"]:
        out.array("LabelConcat/weight", [kw["label_size"], kw["latent_size"]])
        fan_in += kw["latent_size"]
    for index in range(kw["mapping_layers"]):
        fmaps = kw["dlatent_size"] if index == kw["mapping_layers"] - 1 else kw["mapping_fmaps"]
        out.layer(f"Dense{index}", [fan_in, fmaps], fmaps)
        fan_in = fmaps
    return out


def stylegan_discriminator_variables(static_kwargs, lod=0.0, rng=None):
    """D_basic's variables: as D_paper's with Conv1_down everywhere and Dense1 [nf, max(L, 1)]."""
    kw = _with_defaults(static_kwargs, STYLEGAN_D_DEFAULTS)
    return _discriminator_variables(kw, lod, rng, True, kw["mbstd_num_features"],
                                    max(kw["label_size"], 1))


def _stylegan_generator(name, static_kwargs, lod, rng):
    synthesis_kwargs = dict(static_kwargs)
    synthesis = _state(StyleGANNetwork, "G_synthesis", synthesis_kwargs, "G_synthesis",
                       stylegan_synthesis_variables(synthesis_kwargs, lod, rng))
    top = int(np.log2(synthesis_kwargs.get("resolution", 1024)))
    mapping_kwargs = dict(static_kwargs, dlatent_broadcast=top * 2 - 2)
    mapping = _state(StyleGANNetwork, "G_mapping", mapping_kwargs, "G_mapping",
                     stylegan_mapping_variables(mapping_kwargs, rng))
    own = _Variables(rng)
    own.scalar("lod", lod)
    dlatent = _with_defaults(static_kwargs, STYLEGAN_MAPPING_DEFAULTS)["dlatent_size"]
    own.array("dlatent_avg", [dlatent], scale=0.5)
    # G_style builds synthesis first, then mapping: the components dict keeps that order.
    return _state(StyleGANNetwork, name, static_kwargs, "G_style", own,
                  components={"synthesis": synthesis, "mapping": mapping})


def stylegan_states(static_kwargs, lod=0.0, d_lod=None, seed=0):
    """(G, D, Gs) of StyleGAN v1 as NVIDIA pickles them: G_style with its `mapping` and
    `synthesis` components (the static kwargs go to all three, the mapping's with
    `dlatent_broadcast`), D_basic. Missing kwargs take the build functions' defaults."""
    rng = np.random.default_rng(seed)
    g = _stylegan_generator("G", static_kwargs, lod, rng)
    d = _state(StyleGANNetwork, "D", static_kwargs, "D_basic",
               stylegan_discriminator_variables(static_kwargs, lod if d_lod is None else d_lod,
                                                rng))
    gs = _stylegan_generator("Gs", static_kwargs, lod, rng)
    return g, d, gs


# ---------------------------------------------------------------------------------------------
# Pickling.


def network_variables(network):
    """{local name: value} of a network's own variables (not its components')."""
    return dict(network.state["variables"])


def weights_bytes(states):
    """Bytes of every stored value in the networks and their components."""
    total = 0
    for network in states:
        total += sum(np.asarray(value).nbytes for _, value in network.state["variables"])
        total += weights_bytes(network.state.get("components", {}).values())
    return total


class _Pickler(pickle._Pickler):  # the Python pickler, whose globals can be renamed
    """Writes the stand-in classes under the originals' names and NumPy's functions under
    numpy 1.x's `numpy.core.*` (what files written before numpy 2 hold); any other global is
    refused, so a writer bug cannot smuggle one into a fixture."""

    def __init__(self, file, protocol, numpy_core):
        super().__init__(file, protocol=protocol)
        self.numpy_core = numpy_core

    def save_global(self, obj, name=None):
        if obj in _GLOBAL_NAMES:
            module, name = _GLOBAL_NAMES[obj]
        else:
            module = getattr(obj, "__module__", None) or ""
            name = name or obj.__qualname__
            if module == "_codecs" and name == "encode":
                pass
            elif module == "numpy" and name in ("dtype", "ndarray"):
                pass
            elif module.startswith("numpy._core.") or module.startswith("numpy.core."):
                if self.numpy_core:
                    module = "numpy.core." + module.split(".", 2)[2]
            else:
                raise pickle.PicklingError(f"official_writer: unexpected global {module}.{name}")
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + module.encode("utf-8") + b"\n" + name.encode("utf-8")
                       + b"\n")
        self.memoize(obj)

    # The inherited table maps Python functions to the base class's save_global.
    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = save_global


def pickle_bytes(states, protocol=4, numpy_core=True):
    """The bytes of `pickle.dump((G, D, Gs), file, protocol)` as the originals wrote it.

    protocol: 4 = HIGHEST_PROTOCOL of the Python 3.6 the originals ran on; 2 and 5 (a file
    re-saved on Python >= 3.8, arrays in-band via `_frombuffer`) also. numpy_core: name
    NumPy's functions `numpy.core.*` as numpy 1.x did (False: numpy 2's `numpy._core.*`)."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol, numpy_core).dump(tuple(states))
    return buffer.getvalue()


def write_pickle(path, states, protocol=4, numpy_core=True):
    """Writes `(G, D, Gs)` to `path` (see `pickle_bytes`); returns the file size in bytes."""
    with open(path, "wb") as file:
        _Pickler(file, protocol, numpy_core).dump(tuple(states))
        return file.tell()
