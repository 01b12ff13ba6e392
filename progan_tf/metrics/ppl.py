"""Perceptual path length (StyleGAN sec. 4.1, [SG] `metrics/perceptual_path_length.py`; SPEC 5).

For each sample: two latents z0, z1 ~ N(0, I) and t ~ U(0, 1) (`full`) or t = 0 (`end`); the
images at t and t + eps (eps = 1e-4) along a spherical interpolation in Z (`z`), or a linear one
between the mapped w0 = f(z0), w1 = f(z1) in W (`w`); distance = LPIPS-VGG16(img_t, img_t+eps) /
eps^2. The images are optionally cropped to the face region (rows 3c..7c, cols 2c..6c, c = H/8)
and box-downsampled to 256 when larger. Values outside the 1st-99th percentiles are dropped, then
the mean is reported.

The generator enters as plain callables, so any network plugs in:
    generate(latents [N, Z]) -> images float32 [N, H, W, C] in [-1, 1]      (Z space)
    mapping(latents [N, Z]) -> dlatents [N, L, D]; synthesis(dlatents) -> images (W space)
`synthesis` must be deterministic for a given input (StyleGAN: noise inputs fixed, not
re-randomised per call), or noise, not the path, dominates the distance.

Registered metrics (`METRICS`): `ppl_zfull`, `ppl_zend`, `ppl_wfull`, `ppl_wend` (the last two
need a generator with styles).
"""

import numpy as np

from progan_tf.metrics.base import Metric, MetricsError, Plan
from progan_tf.utils.progress import Progress

EPSILON = 1e-4
SPACES = ("z", "w")
SAMPLINGS = ("full", "end")


def normalize(v):
    """Unit vectors along the last axis."""
    return v / np.sqrt(np.sum(np.square(v), axis=-1, keepdims=True))


def slerp(a, b, t):
    """Spherical interpolation between the directions of a and b [N, Z] at t [N, 1]; unit length."""
    a, b = normalize(a), normalize(b)
    d = np.clip(np.sum(a * b, axis=-1, keepdims=True), -1.0, 1.0)
    p = t * np.arccos(d)
    c = normalize(b - d * a)
    return normalize(a * np.cos(p) + c * np.sin(p))


def lerp(a, b, t):
    """a + (b - a) * t, t broadcast against a."""
    return a + (b - a) * t


def crop_and_resize(images, crop):
    """[N, H, W, C] -> the face crop (rows 3c..7c, cols 2c..6c, c = H // 8) when `crop`, then
    box-downsampled by an integer factor to 256 when larger; grayscale tiled to RGB."""
    if crop:
        c = images.shape[1] // 8
        images = images[:, 3 * c:7 * c, 2 * c:6 * c]
    if images.shape[1] > 256:
        factor = images.shape[1] // 256
        n, h, w, ch = images.shape
        images = images.reshape(n, h // factor, factor, w // factor, factor, ch).mean(axis=(2, 4))
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def endpoint_latents(space, sampling, latents, t, epsilon, mapping=None):
    """The interleaved inputs [2N, ...] (t, t + eps for each sample) to hand to the generator.

    latents: [2N, Z] (pairs 0-1, 2-3, ...); t: [N]. For `z` these are unit latents for
    `generate` (or `mapping` then `synthesis`); for `w`, dlatents for `synthesis`.
    """
    if space == "w":
        dlatents = np.asarray(mapping(latents), np.float32)
        w0, w1 = dlatents[0::2], dlatents[1::2]
        t_w = t.reshape([-1] + [1] * (dlatents.ndim - 1))
        e0, e1 = lerp(w0, w1, t_w), lerp(w0, w1, t_w + epsilon)
    else:
        z0, z1 = latents[0::2].astype(np.float64), latents[1::2].astype(np.float64)
        e0, e1 = slerp(z0, z1, t[:, None]), slerp(z0, z1, t[:, None] + epsilon)
    return np.stack([e0, e1], axis=1).reshape((-1,) + e0.shape[1:]).astype(np.float32)


def path_distances(space, sampling, latent_size, num_samples, distance_fn, generate=None,
                   mapping=None, synthesis=None, batch_size=16, seed=0, crop=True,
                   epsilon=EPSILON, progress=None):
    """Raw PPL distances [num_samples] (before outlier rejection).

    Args:
        space: "z" or "w".
        sampling: "full" (t ~ U(0, 1)) or "end" (t = 0).
        latent_size: Z.
        num_samples: number of (t, t + eps) pairs.
        distance_fn: (images0, images1) [n, h, w, 3] float32 in [-1, 1] -> [n] (LPIPS).
        generate: latents [n, Z] -> images [n, H, W, C] float32 (Z space without mapping).
        mapping, synthesis: the two halves of a StyleGAN generator (required for "w"; used for
            "z" as well when given, so both spaces share the synthesis network and its noise).
        batch_size: samples per step (2 * batch_size images).
        seed: seeds latents and t.
        crop: crop to the face region (SPEC 5: StyleGAN always crops; a flag here).
        progress: optional callable(n) told how many samples were done.
    """
    if space not in SPACES or sampling not in SAMPLINGS:
        raise ValueError(f"PPL space must be one of {SPACES} and sampling one of {SAMPLINGS}, "
                         f"got {space!r}, {sampling!r}")
    if space == "w" and (mapping is None or synthesis is None):
        raise ValueError("PPL in W space needs the generator's `mapping` and `synthesis` "
                         "(a StyleGAN generator); ProGAN generators support ppl_z* only")
    if space == "z" and generate is None and (mapping is None or synthesis is None):
        raise ValueError("PPL in Z space needs `generate`, or `mapping` and `synthesis`")
    rng = np.random.default_rng(seed)
    distances = []
    done = 0
    while done < num_samples:
        n = min(batch_size, num_samples - done)
        latents = rng.standard_normal((2 * n, latent_size)).astype(np.float32)
        t = rng.uniform(0.0, 1.0, n) if sampling == "full" else np.zeros(n)
        inputs = endpoint_latents(space, sampling, latents, t, epsilon, mapping)
        if space == "w" or generate is None:
            if space == "z":
                inputs = np.asarray(mapping(inputs), np.float32)
            images = synthesis(inputs)
        else:
            images = generate(inputs)
        images = crop_and_resize(np.asarray(images, np.float32), crop)
        distances.append(np.asarray(distance_fn(images[0::2], images[1::2]), np.float64)
                         / epsilon ** 2)
        done += n
        if progress is not None:
            progress(n)
    return np.concatenate(distances)


def filtered_mean(distances):
    """Mean of the distances between the 1st ('lower') and 99th ('higher') percentiles."""
    distances = np.asarray(distances, np.float64)
    lo = np.percentile(distances, 1, method="lower")
    hi = np.percentile(distances, 99, method="higher")
    return float(np.mean(distances[(lo <= distances) & (distances <= hi)]))


def _lpips():
    from progan_tf.metrics.lpips import LPIPS

    return LPIPS()


def _plan(request, name, space, sampling):
    """All the work happens in `finish`: PPL draws its own latents, not the shared fakes."""
    generator = request.generator

    def finish():
        distance_fn = request.distance_fn or request.shared_value("lpips", _lpips)
        with Progress(name, request.num, unit="pairs", stream=request.progress_stream,
                      enabled=request.progress_stream is not None) as progress:
            distances = path_distances(
                space, sampling, generator.latent_size, request.num, distance_fn,
                generate=lambda z: generator.images_float(z, None), mapping=generator.mapping,
                synthesis=generator.synthesis, batch_size=request.batch_size,
                seed=request.seed + 5, crop=request.ppl_crop, progress=progress.update)
        return {name: filtered_mean(distances)}

    return Plan(finish=finish)


def _check(request, name, space):
    generator = request.generator
    if generator.label_size:
        raise MetricsError(f"{name}: PPL is defined for unconditional generators only")
    if space == "w" and not generator.has_styles:
        raise MetricsError(f"{name} needs a StyleGAN generator (mapping and synthesis); "
                           f"{generator.description} has neither")


def _metric(space, sampling, description):
    name = f"ppl_{space}{sampling}"
    return Metric(name, 100000, description,
                  lambda request: _plan(request, name, space, sampling),
                  needs_generator=True, check=lambda request: _check(request, name, space),
                  unit="pairs")


METRICS = (
    _metric("z", "full", "PPL in Z, t ~ U(0, 1) (StyleGAN)"),
    _metric("z", "end", "PPL in Z, t = 0"),
    _metric("w", "full", "PPL in W, t ~ U(0, 1); StyleGAN only"),
    _metric("w", "end", "PPL in W, t = 0; StyleGAN only"),
)
