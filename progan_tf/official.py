"""NVIDIA's released ProGAN and StyleGAN (v1) pickles as this project's networks, read without
running any of their code (SPEC 11; the restricted unpickler is `progan_tf.utils.safe_pickle`).

    nets = official.load("karras2018iclr-celebahq-1024x1024.pkl", progress=sys.stderr)
    nets.architecture                 # "progan" | "stylegan"
    res = nets.trained_resolution("Gs")   # full resolution / 2^floor(lod); alpha set from lod
    images = nets.Gs.model_for(res)(latents)          # NHWC, like the original's NCHW output
    scores = nets.D.model_for(nets.trained_resolution("D"))(images)  # [N, 1 + label_size]

A file holds the tuple (G, D, Gs) of `tfutil.Network` (ProGAN, state version 2) or
`dnnlib.tflib.network.Network` (StyleGAN, version 3, G with its `mapping` and `synthesis`
components). Each network is rebuilt from its stored `static_kwargs` by the architecture
registry's classes at full resolution, then every stored variable is copied into exactly one of
our weights, with the layout changes of SPEC 11 (`name_map` lists them); anything left over on
either side, and any kwarg that changes the numbers in a way these networks cannot represent
(e.g. `use_wscale=False`), is an `OfficialFormatError` naming it. Kwargs that only shape the
TF1 graph (`structure`, `is_template_graph`, ...) are ignored, as are unknown ones (the
original build functions ignore them too); `ignored_kwargs` lists what was ignored.

Differences by design: a network at a fractional lod renders (and reads) at its trained
resolution, full / 2^floor(lod), where the original nearest-upsamples G's output to full size and
box-downsamples D's input from it (`upscale_to_full`, `downscale_from_full` do that). StyleGAN's
synthesis lod is the one G_style assigns before every call (G's own). A StyleGAN discriminator
with labels (its LabelSwitch conditioning) is refused.
"""

import dataclasses
import hashlib
import math
import os
import types
from typing import Callable, Mapping, Optional

import numpy as np

from progan_tf import architectures
from progan_tf.networks.stylegan import TRUNCATION_CUTOFF
from progan_tf.utils import progress as progress_lib
from progan_tf.utils import safe_pickle

NETWORKS = ("G", "D", "Gs")
_STATE_VERSIONS = {("tfutil", "Network"): 2, ("dnnlib.tflib.network", "Network"): 3}
_LOD = "lod"


class OfficialFormatError(ValueError):
    """A file that is not an official ProGAN/StyleGAN v1 pickle these networks can represent;
    the message (one line) names the file and what is wrong."""


@dataclasses.dataclass(frozen=True)
class WeightMap:
    """Where one stored variable goes: our `variable` and the layout change between them.

    to_ours: ndarray in the original's layout -> ndarray shaped like `variable`.
    to_original: the inverse (a permutation of entries, so it also maps gradients back).
    layout: a few words on the change ("as stored", "NCHW flatten -> NHWC", ...).
    """

    variable: object
    to_ours: Callable
    to_original: Callable
    layout: str


@dataclasses.dataclass(frozen=True)
class OfficialNetworks:
    """The networks of one official pickle, loaded.

    G, D, Gs: this project's networks (registry classes), built at full resolution with every
        weight set; each network's fade alpha comes from its own stored lod.
    architecture: "progan" or "stylegan" (a name of `progan_tf.architectures`).
    lods: {"G", "D", "Gs"} -> the stored lod (0 = fully grown); `lod` is G's.
    static_kwargs: {"G", "D", "Gs"} -> that network's stored static_kwargs, as stored (for
        StyleGAN the G_style kwargs; its components received the same ones).
    build_funcs: {"G", "D", "Gs"} -> build function name ("G_paper", "D_basic", ...).
    ignored_kwargs: {"G", "D", "Gs"} -> sorted names of kwargs that were ignored (graph-only,
        training-only or unknown to the build function).
    truncation_psi, truncation_cutoff: StyleGAN's stored truncation (G_style's defaults 0.7 and
        8 unless Gs's static_kwargs say otherwise); psi 1.0 and cutoff 0 mean none. Both None
        for ProGAN, which has no truncation.
    name_maps: {"G", "D", "Gs"} -> {original variable name: WeightMap}; StyleGAN component
        variables are named "<component name>/<local name>" as dnnlib's `Network.vars` does
        (e.g. "G_synthesis/4x4/Conv/weight"). `lod` variables are not in it.
    source_name, source_sha256, source_size: the file's base name, SHA-256 (hex) and bytes.
    """

    G: object
    D: object
    Gs: object
    architecture: str
    lods: Mapping
    static_kwargs: Mapping
    build_funcs: Mapping
    ignored_kwargs: Mapping
    truncation_psi: Optional[float]
    truncation_cutoff: Optional[int]
    name_maps: Mapping
    source_name: str
    source_sha256: str
    source_size: int

    @property
    def lod(self):
        """G's stored lod."""
        return self.lods["G"]

    @property
    def resolution(self):
        """Full resolution of the networks."""
        return self.G.resolution

    def network(self, name):
        """G, D or Gs by name."""
        if name not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, received {name!r}")
        return getattr(self, name)

    def trained_resolution(self, name="Gs"):
        """Resolution network `name` runs at for its stored lod: full / 2^floor(lod)."""
        return lod_level(self.lods[name], self.network(name).resolution)[0]

    def to_original(self, name, values):
        """{our variable path: ndarray} of network `name` (e.g. gradients) -> {original
        variable name: ndarray in the original's layout}; paths without a stored variable
        are left out."""
        by_path = {entry.variable.path: (original, entry)
                   for original, entry in self.name_maps[name].items()}
        out = {}
        for path, value in values.items():
            if path in by_path:
                original, entry = by_path[path]
                out[original] = entry.to_original(np.asarray(value))
        return out

    def meta(self, network="Gs"):
        """JSON-able facts for serving_meta.json of an export of `network`: the source file,
        architecture, lod, static_kwargs and StyleGAN's stored truncation."""
        meta = {
            "source": {"file": self.source_name, "sha256": self.source_sha256,
                       "bytes": self.source_size, "network": network,
                       "build_func": self.build_funcs[network]},
            "architecture": self.architecture,
            "lod": self.lods[network],
            "static_kwargs": _jsonable(dict(self.static_kwargs[network])),
            "ignored_kwargs": list(self.ignored_kwargs[network]),
        }
        if self.truncation_psi is not None:
            meta["truncation_psi"] = self.truncation_psi
            meta["truncation_cutoff"] = self.truncation_cutoff
        return meta


def lod_level(lod, resolution):
    """(trained resolution, fade alpha) of a network of full `resolution` at the original's
    `lod`: resolution / 2^floor(lod) and 1 - frac(lod) (SPEC 1.5, 11)."""
    level = math.floor(lod)
    return resolution >> level, 1.0 - (lod - level)


def upscale_to_full(images, resolution):
    """Nearest-neighbour upscaling of NHWC images to `resolution`, as the original G returns
    them at a lod > 0 (NumPy)."""
    factor = resolution // images.shape[1]
    return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)


def downscale_from_full(images, resolution):
    """2^k x 2^k box downscaling of NHWC images to `resolution`, as the original D reads them
    at a lod > 0 (NumPy, float32)."""
    factor = images.shape[1] // resolution
    n, h, w, c = images.shape
    blocks = np.asarray(images, np.float32).reshape(n, h // factor, factor, w // factor, factor, c)
    return blocks.mean(axis=(2, 4), dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# Layout changes (SPEC 11). Each is a permutation of entries.

def _layout(name, to_ours, to_original):
    return name, to_ours, to_original


_AS_STORED = _layout("as stored", lambda w: w, lambda w: w)
# An upsample-then-conv kernel from a stored conv2d_transpose kernel [k, k, out, in] (ProGAN).
_TRANSPOSED_UP = _layout("conv2d_transpose [k,k,out,in] -> rotated 180 degrees, HWIO",
                         lambda w: w[::-1, ::-1].transpose(0, 1, 3, 2),
                         lambda w: w.transpose(0, 1, 3, 2)[::-1, ::-1])
# StyleGAN's fused up-conv stores [k, k, in, out] and transposes at run time: only the rotation.
_ROTATED = _layout("rotated 180 degrees", lambda w: w[::-1, ::-1], lambda w: w[::-1, ::-1])
# [1, C, H, W] -> [1, H, W, C] (noise images) and [1, C, 4, 4] -> [4, 4, C] (the const input).
_NCHW_IMAGE = _layout("NCHW -> NHWC", lambda w: w.transpose(0, 2, 3, 1),
                      lambda w: w.transpose(0, 3, 1, 2))
_NCHW_CONST = _layout("[1,C,H,W] -> [H,W,C]", lambda w: w[0].transpose(1, 2, 0),
                      lambda w: w.transpose(2, 0, 1)[None])


def _dense_to_nchw(channels):
    """G's first dense: outputs reshaped to [N, C, 4, 4] there, to [N, 4, 4, C] here."""
    def to_ours(w):
        return w.reshape(w.shape[0], channels, 4, 4).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)

    def to_original(w):
        return w.reshape(w.shape[0], 4, 4, channels).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)

    return _layout("dense outputs NCHW -> NHWC", to_ours, to_original)


def _dense_from_nchw(channels):
    """D's Dense0: reads an NCHW flatten [C, 4, 4] there, an NHWC one [4, 4, C] here."""
    def to_ours(w):
        return w.reshape(channels, 4, 4, w.shape[-1]).transpose(1, 2, 0, 3).reshape(-1, w.shape[-1])

    def to_original(w):
        return w.reshape(4, 4, channels, w.shape[-1]).transpose(2, 0, 1, 3).reshape(-1, w.shape[-1])

    return _layout("dense inputs NCHW flatten -> NHWC", to_ours, to_original)


class _NameMap:
    """Collects {original name: WeightMap} for one network."""

    def __init__(self, prefix=""):
        self.entries = {}
        self.prefix = prefix

    def add(self, name, variable, layout=_AS_STORED):
        label, to_ours, to_original = layout
        self.entries[self.prefix + name] = WeightMap(variable, to_ours, to_original, label)

    def layer(self, name, layer, kernel_layout=_AS_STORED):
        """`name`/weight -> layer.kernel and `name`/bias -> layer.bias."""
        self.add(f"{name}/weight", layer.kernel, kernel_layout)
        if layer.bias is not None:
            self.add(f"{name}/bias", layer.bias)


# ------------------------------------------------------------------------------------------------
# static_kwargs of each build function.


@dataclasses.dataclass(frozen=True)
class _Kwargs:
    """What one build function's static_kwargs mean here.

    represented: kwarg -> the original's default; carried into our network.
    fixed: kwarg -> the values our networks compute the same way (the first is the default);
        any other value stops the load.
    Every other kwarg leaves a stored network's numbers alone and is ignored, as the build
    function's own `**kwargs` does: graph structure (`structure`, `is_template_graph`,
    `force_clean_graph`), training-time and runtime switches (`dlatent_avg_beta`,
    `style_mixing_prob`, `randomize_noise`, `dlatent_broadcast`, ...) and unknown names.
    """

    represented: Mapping
    fixed: Mapping

    def read(self, kwargs, where):
        """({kwarg: value} of the represented ones, defaults filled; sorted ignored names)."""
        for key, allowed in self.fixed.items():
            value = kwargs.get(key, allowed[0])
            if not any(_same(value, choice) for choice in allowed):
                raise OfficialFormatError(
                    f"{where}: {key}={value!r} changes the network's numbers and is not "
                    f"supported here (supported: {', '.join(map(repr, allowed))})")
        values = {key: kwargs.get(key, default) for key, default in self.represented.items()}
        ignored = sorted(key for key in kwargs
                         if key not in self.represented and key not in self.fixed)
        return values, ignored


def _same(value, choice):
    """`value` as the original's code reads it equals `choice`: switches by truth (the
    original tests `if use_wscale:`), floats to a relative 1e-6, anything else by ==."""
    if choice is None:
        return value is None
    if isinstance(choice, bool):
        return isinstance(value, (bool, int, np.bool_, np.integer)) and bool(value) == choice
    if isinstance(choice, float):
        return (isinstance(value, (int, float, np.integer, np.floating))
                and not isinstance(value, bool) and math.isclose(float(value), choice,
                                                                 rel_tol=1e-6))
    return type(value) is type(choice) and value == choice


_DTYPES = ("float32", "float16")  # weights are float32 either way; we compute in float32
_CHANNELS = dict(fmap_base=8192, fmap_decay=1.0, fmap_max=512)

_KWARGS = {
    "G_paper": _Kwargs(
        represented=dict(num_channels=1, resolution=32, label_size=0, latent_size=None,
                         normalize_latents=True, use_pixelnorm=True, fused_scale=True,
                         **_CHANNELS),
        fixed=dict(use_wscale=(True,), pixelnorm_epsilon=(1e-8,), use_leakyrelu=(True,),
                   dtype=_DTYPES)),
    "D_paper": _Kwargs(
        represented=dict(num_channels=1, resolution=32, label_size=0, mbstd_group_size=4,
                         fused_scale=True, **_CHANNELS),
        fixed=dict(use_wscale=(True,), dtype=_DTYPES)),
    # What decides the truncation of the original's Gs.run() (see _truncation).
    "G_style": _Kwargs(
        represented=dict(truncation_psi=0.7, truncation_cutoff=TRUNCATION_CUTOFF,
                         truncation_psi_val=None, truncation_cutoff_val=None,
                         is_training=False, is_validation=False),
        fixed={}),
    "G_mapping": _Kwargs(
        represented=dict(latent_size=512, label_size=0, dlatent_size=512, mapping_layers=8,
                         mapping_fmaps=512, mapping_lrmul=0.01),
        fixed=dict(mapping_nonlinearity=("lrelu",), use_wscale=(True,),
                   normalize_latents=(True,), dtype=_DTYPES)),
    "G_synthesis": _Kwargs(
        represented=dict(dlatent_size=512, num_channels=3, resolution=1024, fused_scale="auto",
                         blur_filter=[1, 2, 1], **_CHANNELS),
        fixed=dict(use_styles=(True,), const_input_layer=(True,), use_noise=(True,),
                   nonlinearity=("lrelu",), use_wscale=(True,), use_pixel_norm=(False,),
                   use_instance_norm=(True,), dtype=_DTYPES)),
    "D_basic": _Kwargs(
        represented=dict(num_channels=1, resolution=32, mbstd_group_size=4,
                         mbstd_num_features=1, blur_filter=[1, 2, 1], **_CHANNELS),
        # The labelled D_basic sums its per-label scores (LabelSwitch): not representable.
        # Its fused_scale is ignored: both of its paths pool before the bias.
        fixed=dict(label_size=(0,), nonlinearity=("lrelu",), use_wscale=(True,),
                   dtype=_DTYPES)),
}


def _channels(values):
    """fmap_base, fmap_decay, fmap_max as plain Python numbers (network.json stores them)."""
    return dict(fmap_base=int(values["fmap_base"]), fmap_decay=float(values["fmap_decay"]),
                fmap_max=int(values["fmap_max"]))


# ------------------------------------------------------------------------------------------------
# One network: build ours from the kwargs, name every stored variable.


@dataclasses.dataclass
class _Loaded:
    """A built network, its name map, the names of its lod variables (its own first) and
    the kwargs it ignored; `truncation` (psi, cutoff) for StyleGAN generators."""

    network: object
    name_map: _NameMap
    lod_names: tuple
    ignored: list
    truncation: tuple = (None, None)


def _progan_generator(arch, net, where):
    values, ignored = _KWARGS["G_paper"].read(net.kwargs, where)
    resolution = int(values["resolution"])
    generator = arch.generator_class(
        resolution=resolution, num_channels=int(values["num_channels"]),
        label_size=int(values["label_size"]), latent_size=values["latent_size"],
        normalize_latents=bool(values["normalize_latents"]),
        use_pixelnorm=bool(values["use_pixelnorm"]), **_channels(values), name="generator")
    names = _NameMap()
    block = generator.block_4x4
    names.add("4x4/Dense/weight", block.dense.kernel, _dense_to_nchw(block.filters))
    names.add("4x4/Dense/bias", block.dense_bias.bias)
    names.layer("4x4/Conv", block.conv)
    for res in generator.resolutions[1:]:
        block = generator.block_at(res)
        if values["fused_scale"]:
            names.layer(f"{res}x{res}/Conv0_up", block.conv0, _TRANSPOSED_UP)
        else:
            names.layer(f"{res}x{res}/Conv0", block.conv0)
        names.layer(f"{res}x{res}/Conv1", block.conv1)
    _image_layers(names, generator, "ToRGB", lambda layer: layer)
    return _Loaded(generator, names, (_LOD,), ignored)


def _image_layers(names, network, prefix, conv_of):
    full_log2 = network.resolution_log2
    for res in network.resolutions:
        lod = full_log2 - int(math.log2(res))
        names.layer(f"{prefix}_lod{lod}", conv_of(network.image_layer_at(res)))


def _discriminator_layers(names, discriminator, conv1_name):
    _image_layers(names, discriminator, "FromRGB", lambda layer: layer.conv)
    for res in discriminator.resolutions[1:]:
        block = discriminator.block_at(res)
        names.layer(f"{res}x{res}/Conv0", block.conv0)
        names.layer(f"{res}x{res}/{conv1_name}", block.conv1)
    block = discriminator.block_4x4
    names.layer("4x4/Conv", block.conv)
    names.add("4x4/Dense0/weight", block.dense0.kernel, _dense_from_nchw(block.filters))
    names.add("4x4/Dense0/bias", block.dense0.bias)
    names.layer("4x4/Dense1", block.dense1)


def _progan_discriminator(arch, net, where):
    values, ignored = _KWARGS["D_paper"].read(net.kwargs, where)
    fused = bool(values["fused_scale"])
    discriminator = arch.build_discriminator(
        resolution=int(values["resolution"]), num_channels=int(values["num_channels"]),
        label_size=int(values["label_size"]), mbstd_group_size=int(values["mbstd_group_size"]),
        mbstd_grouping="strided", fused_scale=fused, **_channels(values), name="discriminator")
    names = _NameMap()
    _discriminator_layers(names, discriminator, "Conv1_down" if fused else "Conv1")
    return _Loaded(discriminator, names, (_LOD,), ignored)


def _stylegan_discriminator(arch, net, where):
    values, ignored = _KWARGS["D_basic"].read(net.kwargs, where)
    discriminator = arch.build_discriminator(
        resolution=int(values["resolution"]), num_channels=int(values["num_channels"]),
        label_size=0, mbstd_group_size=int(values["mbstd_group_size"]),
        mbstd_num_features=int(values["mbstd_num_features"]), mbstd_grouping="strided",
        blur_filter=_blur(values["blur_filter"]), **_channels(values), name="discriminator")
    names = _NameMap()
    _discriminator_layers(names, discriminator, "Conv1_down")
    return _Loaded(discriminator, names, (_LOD,), ignored)


def _blur(taps):
    return [float(tap) for tap in taps] if taps else None


def _fused_min_resolution(fused_scale, resolution, where):
    """G_synthesis's fused_scale as our first fused resolution ('auto': outputs >= 128)."""
    if isinstance(fused_scale, str) and fused_scale == "auto":
        return 128
    if fused_scale is True or fused_scale is False or isinstance(fused_scale, np.bool_):
        return 8 if fused_scale else 2 * resolution
    raise OfficialFormatError(f"{where}: fused_scale={fused_scale!r} is not True, False or 'auto'")


def _stylegan_generator(arch, net, where):
    style, _ = _KWARGS["G_style"].read(net.kwargs, where)
    components = {}
    for key, func in (("mapping", "G_mapping"), ("synthesis", "G_synthesis")):
        component = net.components.get(key)
        if component is None or component.build_func != func:
            found = "none" if component is None else component.build_func
            raise OfficialFormatError(f"{where}: expected a {key!r} component built by {func}, "
                                      f"found {found}")
        values, _ = _KWARGS[func].read(component.kwargs, f"{where} {key} ({func})")
        components[key] = (component, values)
    extra = set(net.components) - {"mapping", "synthesis"}
    if extra:
        raise OfficialFormatError(f"{where}: unexpected components {sorted(extra)}")
    (mapping, m), (synthesis, s) = components["mapping"], components["synthesis"]
    resolution = int(s["resolution"])
    psi, cutoff = _truncation(style)
    generator = arch.generator_class(
        resolution=resolution, num_channels=int(s["num_channels"]),
        label_size=int(m["label_size"]), latent_size=int(m["latent_size"]),
        dlatent_size=int(m["dlatent_size"]), mapping_layers=int(m["mapping_layers"]),
        mapping_fmaps=int(m["mapping_fmaps"]), mapping_lrmul=float(m["mapping_lrmul"]),
        fused_min_resolution=_fused_min_resolution(s["fused_scale"], resolution, where),
        blur_filter=_blur(s["blur_filter"]), truncation_cutoff=cutoff, **_channels(s),
        name="generator")
    names = _NameMap()
    names.add("dlatent_avg", generator.dlatent_avg)
    names.prefix = mapping.name + "/"
    for index in range(generator.mapping_layers):
        names.layer(f"Dense{index}", getattr(generator.mapping, f"dense_{index}"))
    if generator.label_size:
        names.add("LabelConcat/weight", generator.mapping.label_embedding)
    names.prefix = synthesis.name + "/"
    fused_from = _fused_min_resolution(s["fused_scale"], resolution, where)
    for res in generator.resolutions:
        block = generator.block_at(res)
        if res == 4:
            names.add("4x4/Const/const", block.const, _NCHW_CONST)
            convs = (("4x4/Const", None, None), ("4x4/Conv", block.conv, _AS_STORED))
        else:
            up_layout = _ROTATED if res >= fused_from else _AS_STORED  # fused: transposed conv
            convs = ((f"{res}x{res}/Conv0_up", block.conv0_up, up_layout),
                     (f"{res}x{res}/Conv1", block.conv1, _AS_STORED))
        for index, (scope, conv, layout) in enumerate(convs):  # index: the block's epilogue
            if conv is not None:
                names.add(f"{scope}/weight", conv.kernel, layout)
            noise = getattr(block, f"noise{index}")
            names.add(f"{scope}/Noise/weight", noise.weight)
            names.add(f"{scope}/bias", getattr(block, f"bias{index}").bias)
            names.layer(f"{scope}/StyleMod", getattr(block, f"adain{index}").style)
            names.add(f"noise{2 * (int(math.log2(res)) - 2) + index}", noise.fixed_noise,
                      _NCHW_IMAGE)
    _image_layers(names, generator, "ToRGB", lambda layer: layer)
    consumed = set()  # G_style passes its kwargs on to both components
    for func in ("G_style", "G_mapping", "G_synthesis"):
        consumed |= set(_KWARGS[func].represented) | set(_KWARGS[func].fixed)
    ignored = sorted(key for key in net.kwargs if key not in consumed)
    return _Loaded(generator, names, (_LOD, synthesis.name + "/" + _LOD), ignored,
                   truncation=(psi, cutoff))


def _truncation(style):
    """(psi, cutoff) of the original's Gs.run() outside training: G_style's rules, psi None or
    1 and cutoff None or <= 0 meaning none (returned as psi 1.0 and cutoff 0)."""
    psi, cutoff = style["truncation_psi"], style["truncation_cutoff"]
    if style["is_validation"]:
        psi, cutoff = style["truncation_psi_val"], style["truncation_cutoff_val"]
    if style["is_training"] or cutoff is None or cutoff <= 0:
        return 1.0, 0
    return (1.0 if psi is None else float(psi)), int(cutoff)


_BUILDERS = {"G_paper": _progan_generator, "D_paper": _progan_discriminator,
             "G_style": _stylegan_generator, "D_basic": _stylegan_discriminator}
# The state version each build function's networks are saved with: tfutil.Network (ProGAN's
# repository) 2, dnnlib.tflib.network.Network (StyleGAN's) 3.
_BUILD_FUNC_VERSIONS = {"G_paper": 2, "D_paper": 2, "G_style": 3, "D_basic": 3}


# ------------------------------------------------------------------------------------------------
# The pickled states.


@dataclasses.dataclass(frozen=True)
class _State:
    """One pickled network: its name, build function, kwargs, variables and components."""

    name: str
    version: int
    build_func: str
    kwargs: Mapping
    variables: Mapping
    components: Mapping


def _state(obj, where):
    if not isinstance(obj, safe_pickle.PickledObject):
        raise OfficialFormatError(f"{where}: expected a network object, found "
                                  f"{type(obj).__name__}")
    state = obj.state
    if not isinstance(state, dict):
        raise OfficialFormatError(f"{where}: the network holds no state dict")
    version = state.get("version")
    if version == 4:
        raise OfficialFormatError(f"{where}: a StyleGAN2 pickle (network version 4); only "
                                  f"ProGAN (version 2) and StyleGAN v1 (version 3) files load")
    expected = _STATE_VERSIONS[(obj.module, obj.name)]
    if version != expected:
        raise OfficialFormatError(f"{where}: {obj.module}.{obj.name} state version {version!r}, "
                                  f"expected {expected}")
    for key, kind in (("name", str), ("build_func_name", str), ("static_kwargs", dict),
                      ("variables", list)):
        if not isinstance(state.get(key), kind):
            raise OfficialFormatError(f"{where}: state entry {key!r} is missing or not a "
                                      f"{kind.__name__}")
    variables = {}
    for item in state["variables"]:
        if (not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str)
                or not isinstance(item[1], (np.ndarray, np.generic))):
            raise OfficialFormatError(f"{where}: variables must be (name, array) pairs")
        if item[0] in variables:
            raise OfficialFormatError(f"{where}: variable {item[0]!r} is stored twice")
        variables[item[0]] = np.asarray(item[1])
    components = state.get("components") or {}
    if not isinstance(components, dict):
        raise OfficialFormatError(f"{where}: components must be a dict")
    if components and version != 3:
        raise OfficialFormatError(f"{where}: components in a version {version} network")
    return _State(state["name"], version, state["build_func_name"], state["static_kwargs"],
                  variables,
                  {key: _state(value, f"{where} component {key!r}")
                   for key, value in components.items()})


def _all_variables(state):
    """{name: array} of a network and its components, as dnnlib's `Network.vars` names them."""
    out = dict(state.variables)
    for component in state.components.values():
        out.update((f"{component.name}/{name}", value)
                   for name, value in _all_variables(component).items())
    return out


def _read_lod(stored, names, resolution, where):
    lods = []
    for name in names:
        if name not in stored:
            raise OfficialFormatError(f"{where}: no {name!r} variable")
        value = np.asarray(stored[name])
        if value.size != 1 or not np.isfinite(value).all():
            raise OfficialFormatError(f"{where}: {name!r} is not a finite scalar")
        lods.append(float(value.reshape(())))
    lod = lods[0]
    if not 0.0 <= lod <= math.log2(resolution) - 2:
        raise OfficialFormatError(f"{where}: lod {lod} is outside 0..{math.log2(resolution) - 2:g} "
                                  f"for resolution {resolution}")
    return lod


def _assign(loaded, stored, where, lod, on_assign):
    """Copies every stored variable into its weight; every weight must receive one."""
    entries = loaded.name_map.entries
    unknown = sorted(set(stored) - set(entries) - set(loaded.lod_names))
    missing = sorted(set(entries) - set(stored))
    network = loaded.network
    mapped = {id(entry.variable) for entry in entries.values()}
    unset = sorted(weight.path for weight in network.weights
                   if id(weight) not in mapped and weight is not network.fade_alpha)
    if unknown or missing or unset:
        parts = []
        if unknown:
            parts.append(f"stored variables with no place here: {', '.join(unknown)}")
        if missing:
            parts.append(f"variables the static_kwargs imply but the file lacks: "
                         f"{', '.join(missing)}")
        if unset:
            parts.append(f"weights of ours nothing sets: {', '.join(unset)}")
        raise OfficialFormatError(f"{where}: " + "; ".join(parts))
    for name, entry in entries.items():
        value = np.asarray(stored[name], np.float32)
        shape = tuple(entry.variable.shape)
        converted = None
        if value.size == math.prod(shape):
            try:
                converted = entry.to_ours(value)
            except ValueError:
                converted = None
        if converted is None or tuple(converted.shape) != shape:
            expected = entry.to_original(np.zeros(shape, np.float32)).shape
            raise OfficialFormatError(f"{where}: variable {name!r} has shape {value.shape}; "
                                      f"the network its static_kwargs describe needs {expected}")
        entry.variable.assign(np.ascontiguousarray(converted))
        on_assign()
    network.set_alpha(lod_level(lod, network.resolution)[1])


# ------------------------------------------------------------------------------------------------
# Loading a file.


def sha256_of(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress(stream, label, total, unit):
    return progress_lib.Progress(label, total=total, unit=unit, stream=stream,
                                 enabled=stream is not None)


def load(path, progress=None):
    """Reads NVIDIA's ProGAN or StyleGAN (v1) pickle `path` into an OfficialNetworks.

    progress: None (quiet) or a text stream such as sys.stderr for progress lines (reading the
        file, setting the weights).
    Raises OfficialFormatError (one line, naming the file) for anything it cannot load: not a
    pickle, truncated, a refused global (named), a PyTorch or StyleGAN2 file (named as such),
    unsupported kwargs (named), variables left over on either side (listed), wrong shapes.
    Nothing in the file is executed: its embedded network source code is never read as code.
    """
    path = os.fspath(path)
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise OfficialFormatError(f"{path}: no such file")
    size = os.path.getsize(path)
    reading = _progress(progress, f"Reading {name}", size, "B")
    try:
        with reading:
            value = safe_pickle.load_network_pickle(path, on_read=reading.update)
    except safe_pickle.UnpicklingError as error:
        raise OfficialFormatError(str(error)) from None
    if (not isinstance(value, tuple) or len(value) != 3
            or not all(isinstance(item, safe_pickle.PickledObject) for item in value)):
        found = (f"a {type(value).__name__} of {len(value)}" if isinstance(value, (tuple, list))
                 else f"a {type(value).__name__}")
        raise OfficialFormatError(f"{name}: expected the tuple (G, D, Gs) of networks that "
                                  f"NVIDIA's training code saves, found {found}")
    states = {key: _state(obj, f"{name}: {key}") for key, obj in zip(NETWORKS, value)}
    del value
    funcs = {key: states[key].build_func for key in NETWORKS}
    arch = architectures.of_official(funcs["G"], funcs["D"])
    if arch is None or funcs["Gs"] != funcs["G"]:
        supported = ", ".join(f"{g}/{d}/{g} ({a.name})" for a in map(architectures.get,
                                                                     architectures.NAMES)
                              if a.official_build_funcs for g, d in [a.official_build_funcs])
        raise OfficialFormatError(f"{name}: networks built by {funcs['G']}/{funcs['D']}/"
                                  f"{funcs['Gs']} (G/D/Gs); supported: {supported}")
    for key, state in states.items():
        if state.version != _BUILD_FUNC_VERSIONS[state.build_func]:
            raise OfficialFormatError(
                f"{name}: {key} is a version {state.version} network built by "
                f"{state.build_func}, which NVIDIA's code saves as version "
                f"{_BUILD_FUNC_VERSIONS[state.build_func]} (a ProGAN trained with the StyleGAN "
                f"repository is not supported)")
    static_kwargs = {key: dict(states[key].kwargs) for key in NETWORKS}
    loaded, lods = {}, {}
    total = sum(len(_all_variables(state)) for state in states.values())
    setting = _progress(progress, "Setting weights", total, "variables")
    with setting:
        for key in NETWORKS:
            where = f"{name}: {key} ({funcs[key]})"
            state = states.pop(key)
            item = _BUILDERS[state.build_func](arch, state, where)
            stored = _all_variables(state)
            lods[key] = _read_lod(stored, item.lod_names[:1], item.network.resolution, where)
            _assign(item, stored, where, lods[key], lambda: setting.update(1))
            setting.update(len(set(item.lod_names) & set(stored)))
            loaded[key] = item
    truncation = loaded["Gs"].truncation
    return OfficialNetworks(
        G=loaded["G"].network, D=loaded["D"].network, Gs=loaded["Gs"].network,
        architecture=arch.name, lods=types.MappingProxyType(lods),
        static_kwargs=types.MappingProxyType(static_kwargs),
        build_funcs=types.MappingProxyType(funcs),
        ignored_kwargs=types.MappingProxyType({key: tuple(loaded[key].ignored)
                                               for key in NETWORKS}),
        truncation_psi=truncation[0], truncation_cutoff=truncation[1],
        name_maps=types.MappingProxyType({key: types.MappingProxyType(loaded[key].name_map
                                                                      .entries)
                                          for key in NETWORKS}),
        source_name=name, source_sha256=sha256_of(path), source_size=size)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
