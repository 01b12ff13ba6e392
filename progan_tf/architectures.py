"""The architecture registry: one `Architecture` record per network family (ProGAN, StyleGAN)
saying how to build its networks, how training draws fakes, what an export serves, and which
training defaults it brings. Nothing outside this module asks "is this StyleGAN?".

    arch = architectures.get("stylegan")          # by name (flags, network.json)
    arch = architectures.of(generator)            # by network object
    arch = architectures.of_official("G_style", "D_basic")  # by NVIDIA's build functions
    g_kwargs, d_kwargs = arch.network_kwargs(cfg, resolution, num_channels, label_size)
    generator = arch.generator_class(**g_kwargs)
    discriminator = arch.build_discriminator(**d_kwargs)
"""

import dataclasses
import types
from typing import Callable

from progan_tf import schedule as schedule_lib
from progan_tf import serving
from progan_tf.networks import progan
from progan_tf.networks import stylegan
from progan_tf.networks.base import nf


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What the rest of the project needs to know about one network family.

    name: the `--architecture` value and network.json's "architecture".
    generator_class: the generator's class (its `from_config` rebuilds a stored generator).
    discriminator_class: the class `build_discriminator` returns.
    build_discriminator: `(**d_kwargs) -> discriminator`.
    network_kwargs: `(cfg, resolution, num_channels, label_size) -> (g_kwargs, d_kwargs)` from a
        TrainConfig-like object and the data.
    fakes: `(generator, inputs, resolution, mixing=None) -> (images, extras)`, the training
        forward pass of the generator (inputs: latents or [latents, labels]); `mixing` is None or
        a `StyleMixing`; `extras` holds "dlatents_w0" [n, D] when the generator has a mapping
        network (the trainer updates `dlatent_avg` from it) and "mixing_cutoff" when it mixed.
    endpoints: `(generator, resolution) -> [serving.Endpoint]`, the SavedModel signatures.
    presets: TrainConfig field values the command line uses for flags not given.
    styles: the generator maps z to per-layer styles w (mapping/synthesis models,
        `dlatent_avg`, truncation, style mixing).
    official_build_funcs: the (G, D) build function names of NVIDIA's pickles of this family
        (`progan_tf.official` loads them; SPEC 11).
    """

    name: str
    generator_class: type
    discriminator_class: type
    build_discriminator: Callable
    network_kwargs: Callable
    fakes: Callable
    endpoints: Callable
    presets: types.MappingProxyType
    styles: bool = False
    official_build_funcs: tuple = ()


@dataclasses.dataclass(frozen=True)
class StyleMixing:
    """Style-mixing inputs of one training forward pass (StyleGAN, SPEC 3).

    second_inputs: the second latents (with the same labels), shaped like the first inputs.
    seed: stateless seed [2] of the crossover draw. probability: of mixing at all.
    """

    second_inputs: object
    seed: object
    probability: float


def _common_kwargs(cfg, resolution, num_channels, label_size):
    return dict(resolution=resolution, num_channels=num_channels, label_size=label_size,
                fmap_base=cfg.fmap_base, fmap_decay=cfg.fmap_decay, fmap_max=cfg.fmap_max)


def _discriminator_kwargs(cfg, common):
    return dict(common, mbstd_group_size=cfg.mbstd_group_size,
                mbstd_grouping=cfg.mbstd_grouping)


def _progan_kwargs(cfg, resolution, num_channels, label_size):
    common = _common_kwargs(cfg, resolution, num_channels, label_size)
    return dict(common, latent_size=cfg.latent_size), _discriminator_kwargs(cfg, common)


def _stylegan_kwargs(cfg, resolution, num_channels, label_size):
    common = _common_kwargs(cfg, resolution, num_channels, label_size)
    # None = nf(0) as in ProGAN (512 at the paper's widths); w has the latent's size.
    latent_size = cfg.latent_size or nf(0, cfg.fmap_base, cfg.fmap_decay, cfg.fmap_max)
    dlatent_size = cfg.dlatent_size or latent_size
    generator = dict(common, latent_size=latent_size, dlatent_size=dlatent_size,
                     mapping_layers=cfg.mapping_layers,
                     mapping_fmaps=cfg.mapping_fmaps or dlatent_size,
                     mapping_lrmul=cfg.mapping_lrmul)
    return generator, _discriminator_kwargs(cfg, common)


def _progan_fakes(generator, inputs, resolution, mixing=None):
    del mixing  # ProGAN has no styles to mix
    return generator.model_for(resolution)(inputs, training=True), {}


def _stylegan_fakes(generator, inputs, resolution, mixing=None):
    """w = mapping(z); with `mixing`, a second latent's w takes over from a random crossover
    layer on (one draw per global batch, the same on every replica); then synthesis."""
    mapping = generator.mapping_model()
    dlatents = mapping(inputs, training=True)
    extras = {"dlatents_w0": dlatents[:, 0]}
    if mixing is not None and mixing.probability > 0:
        dlatents2 = mapping(mixing.second_inputs, training=True)
        cutoff = stylegan.draw_mixing_cutoff(stylegan.num_layers_at(resolution),
                                             mixing.probability, mixing.seed)
        extras["mixing_cutoff"] = cutoff
        dlatents = stylegan.mix_styles(dlatents, dlatents2, cutoff)
    return generator.synthesis_model_for(resolution)(dlatents, training=True), extras


_STYLEGAN_PRESETS = dict(
    loss="logistic_r1", ema_kimg=10.0,
    lod_initial_resolution=schedule_lib.STYLEGAN_INITIAL_RESOLUTION,
    total_kimg=schedule_lib.STYLEGAN_TOTAL_KIMG,
    lrate_dict=dict(schedule_lib.STYLEGAN_LRATE_DICT))

PROGAN = Architecture(
    name="progan", generator_class=progan.Generator, discriminator_class=progan.Discriminator,
    build_discriminator=progan.Discriminator, network_kwargs=_progan_kwargs,
    fakes=_progan_fakes, endpoints=serving.progan_endpoints,
    presets=types.MappingProxyType({}), official_build_funcs=("G_paper", "D_paper"))

STYLEGAN = Architecture(
    name="stylegan", generator_class=stylegan.StyleGenerator,
    discriminator_class=progan.Discriminator,
    build_discriminator=stylegan.stylegan_discriminator, network_kwargs=_stylegan_kwargs,
    fakes=_stylegan_fakes, endpoints=serving.stylegan_endpoints,
    presets=types.MappingProxyType(_STYLEGAN_PRESETS), styles=True,
    official_build_funcs=("G_style", "D_basic"))

_REGISTRY = {arch.name: arch for arch in (PROGAN, STYLEGAN)}
NAMES = tuple(_REGISTRY)


def get(name):
    """The Architecture called `name`; a ValueError naming the known ones otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(NAMES)})")
    return _REGISTRY[name]


def of(generator):
    """The Architecture whose generator class `generator` is an instance of."""
    for arch in _REGISTRY.values():
        if type(generator) is arch.generator_class:
            return arch
    raise ValueError(f"{type(generator).__name__} is not the generator of a registered "
                     f"architecture (known: {', '.join(NAMES)})")


def of_official(g_build_func, d_build_func):
    """The Architecture whose NVIDIA pickles use these G and D build functions (e.g. "G_paper",
    "D_paper"); None when no registered family does."""
    for arch in _REGISTRY.values():
        if arch.official_build_funcs == (g_build_func, d_build_func):
            return arch
    return None
