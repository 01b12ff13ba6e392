"""Sliced Wasserstein distance between Laplacian-pyramid patch statistics (ProGAN sec. 5.1, SPEC 5).

Per image: Laplacian pyramid from the full resolution down to 16x16 (5x5 binomial filter, mirrored
borders, as cv2.pyrDown/pyrUp; the last level is the low-pass residual), 128 random 7x7x3
neighbourhoods per level. Per level, over all descriptors of a set: normalise each colour channel
to mean 0, std 1; then 4 repeats x 128 random unit directions, sort both projections, mean
absolute difference. Reported x1e3 per level (`SWDx1e3_<res>`) and averaged (`SWDx1e3_avg`).

Registered metrics (`METRICS`): `swd` (reals vs fakes) and `swd_reals` (the noise floor: reals
0..N-1 vs reals N..2N-1).
"""

import numpy as np
import scipy.ndimage

from progan_tf.metrics.base import Metric, MetricsError, Plan, Window

NHOOD_SIZE = 7
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = 16
_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # [1,4,6,4,1] x [1,4,6,4,1] / 256


def level_resolutions(resolution):
    """Pyramid level sizes, finest first: 64 -> [64, 32, 16]."""
    if resolution < MIN_RESOLUTION or resolution & (resolution - 1):
        raise ValueError(f"SWD needs a power-of-two resolution >= {MIN_RESOLUTION}, "
                         f"got {resolution}")
    resolutions = []
    while resolution >= MIN_RESOLUTION:
        resolutions.append(resolution)
        resolution //= 2
    return resolutions


def _blur(images, taps):
    """Separable 5x5 binomial filter over axes 1, 2 of [N, H, W, C], mirrored borders (dcb|abcd|cba)."""
    images = scipy.ndimage.correlate1d(images, taps, axis=1, mode="mirror")
    return scipy.ndimage.correlate1d(images, taps, axis=2, mode="mirror")


def pyr_down(images):
    """[N, H, W, C] float32 -> [N, H/2, W/2, C] (cv2.pyrDown)."""
    return _blur(images, _BINOMIAL)[:, ::2, ::2]


def pyr_up(images):
    """[N, h, w, C] float32 -> [N, 2h, 2w, C] (cv2.pyrUp: zero-insertion, then 4x the filter)."""
    n, h, w, c = images.shape
    upsampled = np.zeros((n, 2 * h, 2 * w, c), images.dtype)
    upsampled[:, ::2, ::2] = images
    return _blur(upsampled, 2.0 * _BINOMIAL)


def laplacian_pyramid(images, num_levels):
    """[N, H, W, C] -> list of num_levels float32 arrays [N, H/2^i, W/2^i, C], finest first;
    every level but the last holds band-pass detail, the last the low-pass residual."""
    pyramid = [np.asarray(images, np.float32)]
    for _ in range(1, num_levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1])
    return pyramid


def reconstruct_laplacian_pyramid(pyramid):
    """Inverse of laplacian_pyramid (used by the tests)."""
    images = pyramid[-1]
    for level in pyramid[-2::-1]:
        images = pyr_up(images) + level
    return images


def neighbourhoods(level, rng, per_image=NHOODS_PER_IMAGE, size=NHOOD_SIZE):
    """Random size x size patches fully inside each image of `level` [N, h, w, C]:
    [N * per_image, size, size, C] float32, image i's patches at rows i*per_image..."""
    n, h, w, _ = level.shape
    half = size // 2
    count = n * per_image
    image_index = np.repeat(np.arange(n), per_image)[:, None, None]
    ys = rng.integers(half, h - half, size=count)[:, None, None]  # centres, patch fully inside
    xs = rng.integers(half, w - half, size=count)[:, None, None]
    offsets = np.arange(-half, half + 1)
    return level[image_index, ys + offsets[None, :, None], xs + offsets[None, None, :]]


def descriptors_for_batch(images, rng, num_levels):
    """uint8 [N, H, W, 3] -> per level, [N * 128, 7, 7, 3] float32 raw descriptors."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"SWD needs RGB images [N, H, W, 3], got shape {images.shape}")
    return [neighbourhoods(level, rng) for level in laplacian_pyramid(images, num_levels)]


def finalize_descriptors(descriptors):
    """List of [n, 7, 7, C] blocks -> [M, 7*7*C] float32, each channel at mean 0 and std 1."""
    desc = np.concatenate(descriptors, axis=0) if isinstance(descriptors, list) else descriptors
    mean = desc.mean(axis=(0, 1, 2), dtype=np.float64)
    std = desc.std(axis=(0, 1, 2), dtype=np.float64)
    desc = ((desc - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float32)
    return desc.reshape(desc.shape[0], -1)


def sliced_wasserstein(a, b, rng, dir_repeats=DIR_REPEATS, dirs_per_repeat=DIRS_PER_REPEAT,
                       max_chunk_elements=1 << 25):
    """Mean over dir_repeats of the mean |sorted(a.u) - sorted(b.u)| over dirs_per_repeat random
    unit directions u. a, b: [M, D] float32 with the same M (equal-size sets).

    Directions are projected a few at a time so memory stays O(M * chunk), not O(M * 128).
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein needs two [M, D] arrays of one shape, got "
                         f"{a.shape} and {b.shape}")
    chunk = max(1, min(dirs_per_repeat, max_chunk_elements // max(1, a.shape[0])))
    results = []
    for _ in range(dir_repeats):
        directions = rng.standard_normal((a.shape[1], dirs_per_repeat))
        directions /= np.sqrt(np.sum(np.square(directions), axis=0, keepdims=True))
        directions = directions.astype(np.float32)  # [D, directions]
        total = 0.0
        for start in range(0, dirs_per_repeat, chunk):
            part = directions[:, start:start + chunk]
            proj_a = np.sort(part.T @ a.T, axis=1)  # [chunk, M]
            proj_b = np.sort(part.T @ b.T, axis=1)
            total += float(np.abs(proj_a - proj_b).sum(dtype=np.float64))
        results.append(total / (a.shape[0] * dirs_per_repeat))
    return float(np.mean(results))


class DescriptorSet:
    """Accumulates descriptors of one image set, batch by batch.

    Args:
        resolution: image side H = W (a power of two >= 16).
        seed: seeds the neighbourhood positions.
    """

    def __init__(self, resolution, seed=0):
        self.resolutions = level_resolutions(resolution)
        self._rng = np.random.default_rng(seed)
        self._levels = [[] for _ in self.resolutions]
        self.num_images = 0

    def feed(self, images):
        """images: uint8 [n, H, W, 3] (grayscale [n, H, W, 1] is tiled to RGB)."""
        images = np.asarray(images)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        if images.shape[1] != self.resolutions[0] or images.shape[2] != self.resolutions[0]:
            raise ValueError(f"SWD set was built for {self.resolutions[0]}x{self.resolutions[0]} "
                             f"images, got {images.shape[1]}x{images.shape[2]}")
        for level, desc in zip(self._levels, descriptors_for_batch(images, self._rng,
                                                                   len(self.resolutions))):
            level.append(desc)
        self.num_images += len(images)

    def finalize(self):
        """-> list of [num_images * 128, 147] normalised descriptors, finest level first."""
        if not self.num_images:
            raise ValueError("SWD: no images were fed")
        return [finalize_descriptors(level) for level in self._levels]


def swd_from_descriptors(desc_a, desc_b, resolutions, seed=0, prefix="SWDx1e3"):
    """Two finalized descriptor lists (finest level first) -> {"<prefix>_<res>": value x 1e3, ...,
    "<prefix>_avg": mean over levels}."""
    if not len(desc_a) == len(desc_b) == len(resolutions):
        raise ValueError("SWD: the two sets and `resolutions` have different pyramid depths")
    rng = np.random.default_rng(seed)
    results = {f"{prefix}_{res}": sliced_wasserstein(a, b, rng) * 1e3
               for res, a, b in zip(resolutions, desc_a, desc_b)}
    results[f"{prefix}_avg"] = float(np.mean(list(results.values())))
    return results


def swd(images_a, images_b, seed=0):
    """SWD x 1e3 per level between two uint8 [N, H, W, 3] sets of the same size (all in memory)."""
    resolution = np.shape(images_a)[1]
    sets = [DescriptorSet(resolution, seed=seed + i) for i in range(2)]
    sets[0].feed(images_a)
    sets[1].feed(images_b)
    return swd_from_descriptors(sets[0].finalize(), sets[1].finalize(), sets[0].resolutions,
                                seed=seed + 2)


# ---------------------------------------------------------------------------------------------
# The registered metrics. Every descriptor set of a run draws its patch positions from the same
# seed (common random numbers: a set compared with itself gives exactly 0, and reals and fakes
# are sampled alike); sets of the same window of reals are shared by swd and swd_reals.


def _real_descriptors(request, plan, start):
    """The descriptor set of reals [start, start + num), fed once per run through `plan`."""

    def make():
        descriptors = DescriptorSet(request.reals.resolution, seed=request.seed + 11)
        plan.reals.append(Window(start, request.num, descriptors.feed))
        return descriptors

    return request.shared_value(("swd_reals", start, request.num), make)


def _fake_sink(request, descriptors):
    reals, generator = request.reals, request.generator

    def feed(images):
        if images.shape[1:3] != (reals.resolution, reals.resolution):
            raise MetricsError(f"swd: {generator.description} makes {images.shape[1]}x"
                               f"{images.shape[2]} images but {reals.path} holds "
                               f"{reals.resolution}x{reals.resolution}")
        descriptors.feed(images)

    return feed


def _plan(request, fakes, prefix):
    plan = Plan()
    set_a = _real_descriptors(request, plan, 0)
    if fakes:
        set_b = DescriptorSet(request.reals.resolution, seed=request.seed + 11)
        plan.fakes.append(Window(0, request.num, _fake_sink(request, set_b)))
    else:
        set_b = _real_descriptors(request, plan, request.num)
    plan.finish = lambda: swd_from_descriptors(set_a.finalize(), set_b.finalize(),
                                               set_a.resolutions, seed=request.seed + 3,
                                               prefix=prefix)
    return plan


def _check(request):
    try:
        level_resolutions(request.reals.resolution)
    except ValueError as error:
        raise MetricsError(f"swd: {error}") from None


METRICS = (
    Metric("swd", 16384, "SWD x1e3 per level, reals vs fakes (ProGAN)",
           lambda request: _plan(request, fakes=True, prefix="SWDx1e3"),
           needs_reals=True, needs_generator=True, check=_check),
    Metric("swd_reals", 16384, "SWD noise floor: reals 0..N-1 vs reals N..2N-1",
           lambda request: _plan(request, fakes=False, prefix="SWDx1e3_reals"),
           needs_reals=True, check=_check),
)
