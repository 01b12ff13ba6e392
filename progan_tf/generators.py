"""A trained generator as functions of NumPy arrays (`GeneratorFns`), whichever form it takes:
an exported SavedModel (`from_saved_model`), a run directory's checkpoint (`from_run_dir`) or a
network in memory (`from_network`). `progan_tf.generate` and `progan_tf.metrics` both use it.

    generator = generators.from_saved_model("results/00000-quickstart/export/generator")
    images = generator.images_for_seeds([1, 5, 9])       # uint8 [3, H, W, C]
    if generator.has_styles:                              # StyleGAN: mapping and synthesis
        dlatents = generator.dlatents_for_seeds([1, 5, 9], truncation_psi=0.7)

A seed's latents follow the exported `generate_seeds` rule (`serving.seeds_to_latents`), so a
seed renders the same image from a checkpoint and from its export.
"""

import dataclasses
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from progan_tf import architectures
from progan_tf import serving
from progan_tf.networks.stylegan import TRUNCATION_CUTOFF, truncate
from progan_tf.utils.files import find_saved_model
from progan_tf.utils.images import to_uint8

SIGNATURES = ("serving_default", "generate_seeds", "mapping", "synthesis")


class GeneratorError(ValueError):
    """A SavedModel, run directory or checkpoint that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class GeneratorFns:
    """A generator as plain functions of NumPy arrays.

    latent_size: Z.
    images_float: (latents float32 [N, Z], labels float32 [N, L] or None) -> float32
        [N, H, W, C] in about [-1, 1].
    images: same inputs -> uint8 [N, H, W, C]; default to_uint8(images_float(...)).
    label_size: L (0: unconditional; labels are then None).
    mapping: (latents [N, Z], labels or None) -> dlatents [N, num_layers, D], or None when the
        generator has no styles.
    synthesis: dlatents -> float32 images [N, H, W, C], rendering each noise input's stored
        image (deterministic, as PPL needs), or None.
    dlatent_avg: () -> the truncation centre [D], or None (no truncation from dlatents).
    seed_images: (seeds int64 [N], labels or None, truncation_psi float or None) -> uint8
        images, the export's `generate_seeds`; None = `images` of the seeds' latents (and
        `mapping`, truncation, `synthesis` when psi is given).
    has_truncation: the generator takes a truncation psi (StyleGAN).
    default_truncation_psi: the psi `generate` uses when --trunc is not given (an official
        StyleGAN pickle's stored 0.7), None = untruncated.
    truncation_cutoff: layers < cutoff are truncated (`dlatents_for_seeds`).
    description: where it came from, for logs.
    keep_alive: an object the functions need alive (the loaded SavedModel or the network).
    """

    latent_size: int
    images_float: Optional[Callable]
    images: Optional[Callable] = None
    label_size: int = 0
    mapping: Optional[Callable] = None
    synthesis: Optional[Callable] = None
    dlatent_avg: Optional[Callable] = None
    seed_images: Optional[Callable] = None
    has_truncation: bool = False
    default_truncation_psi: Optional[float] = None
    truncation_cutoff: int = TRUNCATION_CUTOFF
    description: str = "generator"
    keep_alive: object = None

    def __post_init__(self):
        if self.images is None:
            images_float = self.images_float
            object.__setattr__(self, "images",
                               lambda latents, labels=None: to_uint8(images_float(latents, labels)))

    @property
    def has_styles(self):
        """True when mapping and synthesis exist (StyleGAN)."""
        return self.mapping is not None and self.synthesis is not None

    def sample_labels(self, count, rng, label_pool=None):
        """None when unconditional; else `count` rows drawn from `label_pool` [M, L] (the
        dataset's labels) or, without one, uniform one-hot labels."""
        if not self.label_size:
            return None
        if label_pool is not None and len(label_pool):
            return np.asarray(label_pool[rng.integers(0, len(label_pool), count)], np.float32)
        return np.eye(self.label_size, dtype=np.float32)[rng.integers(0, self.label_size, count)]

    def images_for_latents(self, latents, labels=None, batch_size=16):
        """[N, Z] latents -> uint8 [N, H, W, C], `batch_size` at a time."""
        latents = np.asarray(latents, np.float32)
        return _batched(lambda start, stop: self.images(latents[start:stop],
                                                        _rows(labels, start, stop)),
                        len(latents), batch_size)

    def images_for_seeds(self, seeds, labels=None, truncation_psi=None, batch_size=16):
        """[N] seeds -> uint8 [N, H, W, C]; truncation_psi applies to styled generators only."""
        seeds = np.asarray(seeds, np.int64)
        if self.seed_images is not None:
            return _batched(lambda start, stop: self.seed_images(
                seeds[start:stop], _rows(labels, start, stop), truncation_psi),
                len(seeds), batch_size)
        if truncation_psi is None or not self.has_styles:
            return self.images_for_latents(seed_latents(seeds, self.latent_size), labels,
                                           batch_size)
        dlatents = self.dlatents_for_seeds(seeds, labels, truncation_psi, batch_size=batch_size)
        return self.images_for_dlatents(dlatents, batch_size)

    def dlatents_for_seeds(self, seeds, labels=None, truncation_psi=None, cutoff=None,
                           batch_size=16):
        """[N] seeds -> dlatents [N, num_layers, D] via `mapping`, truncated like StyleGAN
        (layers < cutoff, default `truncation_cutoff`, pulled towards dlatent_avg by psi) when
        psi is given."""
        cutoff = self.truncation_cutoff if cutoff is None else cutoff
        latents = seed_latents(seeds, self.latent_size)
        dlatents = _batched(lambda start, stop: np.asarray(
            self.mapping(latents[start:stop], _rows(labels, start, stop))),
            len(latents), batch_size)
        if truncation_psi is None:
            return dlatents
        average = None if self.dlatent_avg is None else self.dlatent_avg()
        if average is None:
            raise GeneratorError(f"{self.description}: no dlatent_avg to truncate towards")
        return np.asarray(truncate(dlatents, average, truncation_psi, cutoff))

    def images_for_dlatents(self, dlatents, batch_size=16):
        """dlatents [N, num_layers, D] -> uint8 [N, H, W, C] via `synthesis`."""
        dlatents = np.asarray(dlatents, np.float32)
        return _batched(lambda start, stop: to_uint8(self.synthesis(dlatents[start:stop])),
                        len(dlatents), batch_size)


def _rows(array, start, stop):
    return None if array is None else np.asarray(array)[start:stop]


def _batched(run, count, batch_size):
    """Concatenates run(start, stop) over [0, count) in steps of batch_size."""
    return np.concatenate([np.asarray(run(start, min(start + batch_size, count)))
                           for start in range(0, count, batch_size)])


def seed_latents(seeds, latent_size):
    """[N] seeds -> [N, latent_size] float32 by the generate_seeds rule (philox, key [seed, 0])."""
    return serving.seeds_to_latents(np.asarray(seeds, np.int64), latent_size).numpy()


# ---------------------------------------------------------------------------------------------
# An exported SavedModel: its signatures.


def from_signatures(functions, description="generator", keep_alive=None):
    """GeneratorFns over signature functions {name: (input specs by name, function)}; each
    function takes tensors of its specs' dtypes by name and returns a dict of output tensors,
    like `tf.saved_model.load(path).signatures[name]`. Uses serving_default (required) and,
    when present, generate_seeds (with or without truncation_psi), mapping and synthesis."""

    def run(name, output, **inputs):
        specs, function = functions[name]
        feed = {key: tf.constant(value, specs[key].dtype) for key, value in inputs.items()
                if value is not None and key in specs}
        return function(**feed)[output].numpy()

    specs = functions["serving_default"][0]
    latent_size = int(specs["latents"].shape[-1])
    label_size = int(specs["labels"].shape[-1]) if "labels" in specs else 0
    fields = dict(latent_size=latent_size, label_size=label_size, description=description,
                  keep_alive=keep_alive)
    fields["images_float"] = lambda latents, labels=None: run(
        "serving_default", "images_float", latents=latents, labels=labels)
    fields["images"] = lambda latents, labels=None: run(
        "serving_default", "images", latents=latents, labels=labels)
    if "generate_seeds" in functions:
        fields["has_truncation"] = "truncation_psi" in functions["generate_seeds"][0]

        def seed_images(seeds, labels=None, truncation_psi=None):
            psi = np.full([len(seeds)], 1.0 if truncation_psi is None else truncation_psi,
                          np.float32)
            return run("generate_seeds", "images", seeds=seeds, labels=labels, truncation_psi=psi)

        fields["seed_images"] = seed_images
    if "mapping" in functions and "synthesis" in functions:
        zeros = (np.zeros([1, latent_size], np.float32),
                 np.zeros([1, label_size], np.float32) if label_size else None)
        fields["mapping"] = lambda latents, labels=None: run(
            "mapping", "dlatents", latents=latents, labels=labels)
        fields["synthesis"] = lambda dlatents: run("synthesis", "images_float", dlatents=dlatents)
        fields["dlatent_avg"] = lambda: run("mapping", "dlatent_avg", latents=zeros[0],
                                            labels=zeros[1])[0]
    return GeneratorFns(**fields)


def from_saved_model(path):
    """GeneratorFns of an exported SavedModel directory, or of the highest numbered version in
    a model directory. Needs no project code in the export."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise GeneratorError(f"{path} does not exist")
    version_dir = find_saved_model(path)
    if version_dir is None:
        raise GeneratorError(f"{path} is not a SavedModel (no saved_model.pb, nor numbered "
                             f"version directories holding one)")
    try:
        loaded = tf.saved_model.load(version_dir)
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise GeneratorError(f"{version_dir} cannot be loaded: "
                             f"{str(error).splitlines()[0]}") from None
    signatures = dict(loaded.signatures)
    default = signatures.get("serving_default")
    if (default is None or "latents" not in default.structured_input_signature[1]
            or "images_float" not in default.structured_outputs):
        raise GeneratorError(f"{version_dir} is not a generator export (its signatures are "
                             f"{sorted(signatures)}; expected serving_default taking 'latents' "
                             f"and returning 'images_float' and 'images')")
    functions = {name: (function.structured_input_signature[1], function)
                 for name, function in signatures.items() if name in SIGNATURES}
    return from_signatures(functions, description=version_dir, keep_alive=loaded)


# ---------------------------------------------------------------------------------------------
# A network in memory, or restored from a run directory.


def _numpy_function(model, num_inputs=1):
    """model(inputs, training=False) as a function of NumPy arrays (None inputs dropped), traced
    once per input shape class."""

    @tf.function(reduce_retracing=True)
    def forward(*inputs):
        return model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)

    def call(*arrays):
        tensors = [tf.constant(array, tf.float32) for array in arrays[:num_inputs]
                   if array is not None]
        return forward(*tensors).numpy()

    return call


def from_network(generator, resolution=None, noise="const", description="generator",
                 truncation_psi=None, truncation_cutoff=None):
    """GeneratorFns of an in-memory progan_tf generator at `resolution` (default its final one).

    noise: for generators with styles, the noise inputs of `images`/`images_float`: "const"
        renders each layer's stored noise image, as an export does; "random" draws fresh noise
        per image (StyleGAN's FID protocol). `synthesis` always renders the stored noise, so
        both ends of a PPL pair see the same noise.
    truncation_psi: generators with styles: `images`/`images_float` truncate w (layers <
        truncation_cutoff, default the generator's) towards dlatent_avg by this psi; None =
        untruncated.
    Outputs are the network's own (`images_float` is not clipped).
    """
    res = resolution or generator.resolution
    if truncation_cutoff is None:
        truncation_cutoff = getattr(generator, "truncation_cutoff", TRUNCATION_CUTOFF)
    label_size = int(generator.label_size)
    num_inputs = 2 if label_size else 1
    fields = dict(latent_size=int(generator.latent_size), label_size=label_size,
                  description=description, keep_alive=generator,
                  truncation_cutoff=truncation_cutoff)
    if architectures.of(generator).styles:
        images_float = _numpy_function(generator.model_for(res, noise=noise), num_inputs)
        if truncation_psi is not None:
            images_float = _numpy_function(
                _truncated_model(generator, res, noise, truncation_psi, truncation_cutoff),
                num_inputs)
        fields.update(
            mapping=_numpy_function(generator.mapping_model(), num_inputs),
            synthesis=_numpy_function(generator.synthesis_model_for(res, noise="const")),
            dlatent_avg=lambda: generator.dlatent_avg.numpy(), has_truncation=True)
    elif truncation_psi is not None:
        raise GeneratorError(f"{description}: truncation needs a StyleGAN generator (ProGAN "
                             f"has no styles to truncate)")
    else:
        images_float = _numpy_function(generator.model_for(res), num_inputs)
    return GeneratorFns(images_float=lambda latents, labels=None: images_float(latents, labels),
                        **fields)


def _truncated_model(generator, res, noise, psi, cutoff):
    """latents (+ labels) -> images of w truncated towards dlatent_avg (StyleGAN's G_style
    outside training), as one callable like a Keras model."""
    mapping = generator.mapping_model()
    synthesis = generator.synthesis_model_for(res, noise=noise)

    def model(inputs, training=False):
        dlatents = truncate(mapping(inputs, training=training), generator.dlatent_avg, psi,
                            cutoff)
        return synthesis(dlatents, training=training)

    return model


def from_pickle(path, network="Gs", noise="const", truncation_psi=None, progress=None):
    """GeneratorFns of an official NVIDIA ProGAN / StyleGAN pickle (`progan_tf.official`, which
    never runs the file's code), rendering at the resolution of the network's stored lod.

    network: "Gs" (the moving average, what NVIDIA's scripts render) or "G".
    noise, truncation_psi: as `from_network` (StyleGAN; "const" renders the stored noise
        buffers, the original's randomize_noise=False). The pickle's stored psi and cutoff
        become `default_truncation_psi` (what `generate` uses without --trunc) and
        `truncation_cutoff`.
    progress: passed to `official.load` (a progress line while a large file loads).
    """
    from progan_tf import official

    if network not in ("Gs", "G"):
        raise GeneratorError(f"--network must be Gs or G, received {network!r}")
    try:
        loaded = official.load(path, progress=progress)
    except official.OfficialFormatError as error:
        raise GeneratorError(str(error)) from None
    fns = from_network(loaded.network(network), loaded.trained_resolution(network),
                       noise=noise, truncation_psi=truncation_psi,
                       truncation_cutoff=loaded.truncation_cutoff,
                       description=f"{loaded.source_name} ({network})")
    psi = loaded.truncation_psi  # None for ProGAN; 1.0 when the file truncates nothing
    if not fns.has_truncation or psi is None or psi == 1.0:
        return fns
    return dataclasses.replace(fns, default_truncation_psi=psi)


def from_run_dir(path, raw=False, noise="const"):
    """(GeneratorFns, RunCheckpoint) of a run directory or checkpoint prefix: the generator of
    network.json restored from the latest (or given) checkpoint, at its final resolution.

    raw: the trained generator instead of its moving average. noise: as `from_network`.
    """
    from exports import run_dir as run_dir_lib

    try:
        generator, location = run_dir_lib.load_generator(path, raw=raw)
    except run_dir_lib.ExportError as error:
        raise GeneratorError(str(error)) from None
    return from_network(generator, noise=noise, description=location.checkpoint), location
