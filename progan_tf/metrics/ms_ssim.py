"""Multi-scale SSIM between image pairs, as ProGAN's `metrics/ms_ssim.py` computes it (SPEC 5):
a diversity measure, lower = more varied.

5 scales with weights [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]; per scale an 11x11 Gaussian
window (sigma 1.5; both shrink to the image size at small scales, as in the original), VALID
filtering, k1 0.01, k2 0.03, dynamic range 255; SSIM and contrast-structure maps are averaged over
rows, columns *and* channels per pair; 2x2 box downsampling between scales; negative values are
clipped to 0 before the weighted product. `tf.image.ssim_multiscale` differs (it refuses images
under 176 px and averages channels differently, SPEC 10).

Registered metrics (`METRICS`): `ms_ssim` over pairs of fakes, `ms_ssim_reals` over pairs of reals.
"""

import numpy as np
import scipy.signal

from progan_tf.metrics.base import Metric, Plan, Window

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_window(size, sigma):
    """MATLAB fspecial('gaussian') [size, size], summing to 1 (even sizes are centred between
    pixels, as in the original)."""
    radius = size // 2
    offset = 0.5 if size % 2 == 0 else 0.0
    stop = radius + 1 - (1 if size % 2 == 0 else 0)
    y, x = np.mgrid[offset - radius:stop, offset - radius:stop]
    window = np.exp(-(x ** 2 + y ** 2) / (2.0 * sigma ** 2))
    return window / window.sum()


def ssim_and_cs(images1, images2, max_val=255.0, filter_size=11, filter_sigma=1.5, k1=0.01,
                k2=0.03):
    """Per-pair mean SSIM and contrast-structure at one scale.

    images1, images2: float64 [N, H, W, C]. Returns two [N] arrays.
    """
    _, height, width, _ = images1.shape
    size = min(filter_size, height, width)
    sigma = size * filter_sigma / filter_size
    window = gaussian_window(size, sigma)[None, :, :, None]

    def blur(x):
        return scipy.signal.fftconvolve(x, window, mode="valid", axes=(1, 2))

    mu1, mu2 = blur(images1), blur(images2)
    mu11, mu22, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma11 = blur(images1 * images1) - mu11
    sigma22 = blur(images2 * images2) - mu22
    sigma12 = blur(images1 * images2) - mu12
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    v1 = 2.0 * sigma12 + c2
    v2 = sigma11 + sigma22 + c2
    ssim = np.mean(((2.0 * mu12 + c1) * v1) / ((mu11 + mu22 + c1) * v2), axis=(1, 2, 3))
    cs = np.mean(v1 / v2, axis=(1, 2, 3))
    return ssim, cs


def box_downsample(images):
    """[N, H, W, C] -> [N, H/2, W/2, C], mean of each 2x2 block (odd edges dropped)."""
    h, w = images.shape[1] // 2 * 2, images.shape[2] // 2 * 2
    images = images[:, :h, :w]
    return (images[:, 0::2, 0::2] + images[:, 1::2, 0::2] + images[:, 0::2, 1::2]
            + images[:, 1::2, 1::2]) * 0.25


def ms_ssim_per_pair(images1, images2, weights=WEIGHTS, **ssim_kwargs):
    """MS-SSIM of each pair (images1[i], images2[i]).

    images1, images2: [N, H, W, C] with values in 0..255 (uint8 or float). Returns float64 [N].
    """
    images1 = np.asarray(images1, np.float64)
    images2 = np.asarray(images2, np.float64)
    if images1.shape != images2.shape or images1.ndim != 4:
        raise ValueError(f"MS-SSIM needs two [N, H, W, C] batches of one shape, got "
                         f"{images1.shape} and {images2.shape}")
    weights = np.asarray(weights, np.float64)
    smallest = 2 ** (len(weights) - 1)
    if min(images1.shape[1:3]) < smallest:
        raise ValueError(f"MS-SSIM with {len(weights)} scales needs images of at least "
                         f"{smallest}x{smallest}, got {images1.shape[1]}x{images1.shape[2]}")
    ssims, css = [], []
    for _ in range(len(weights)):
        ssim, cs = ssim_and_cs(images1, images2, **ssim_kwargs)
        ssims.append(ssim)
        css.append(cs)
        images1, images2 = box_downsample(images1), box_downsample(images2)
    ssims = np.clip(np.asarray(ssims), 0.0, np.inf)  # [scales, N]
    css = np.clip(np.asarray(css), 0.0, np.inf)
    return np.prod(css[:-1] ** weights[:-1, None], axis=0) * ssims[-1] ** weights[-1]


class MSSSIMAccumulator:
    """Mean MS-SSIM over consecutive pairs (images 0-1, 2-3, ...) of a stream, as ProGAN pairs
    even and odd indices. An odd image left at the end of a batch waits for the next one."""

    def __init__(self):
        self._sum = 0.0
        self.num_pairs = 0
        self._pending = None

    def feed(self, images):
        """images: [n, H, W, C] uint8."""
        images = np.asarray(images)
        if self._pending is not None:
            images = np.concatenate([self._pending, images], axis=0)
            self._pending = None
        if len(images) % 2:
            self._pending = images[-1:]
            images = images[:-1]
        if len(images):
            self._sum += float(np.sum(ms_ssim_per_pair(images[0::2], images[1::2])))
            self.num_pairs += len(images) // 2

    def result(self):
        if not self.num_pairs:
            raise ValueError("MS-SSIM: fewer than two images were fed")
        return self._sum / self.num_pairs


def _plan(request, name, stream):
    """Mean MS-SSIM of images 0-1, 2-3, ... of the `stream` ("reals" or "fakes")."""
    accumulator = MSSSIMAccumulator()
    plan = Plan(finish=lambda: {name: accumulator.result()})
    getattr(plan, stream).append(Window(0, request.num, accumulator.feed))
    return plan


METRICS = (
    Metric("ms_ssim", 20000, "MS-SSIM of N/2 pairs of fakes (ProGAN)",
           lambda request: _plan(request, "ms_ssim", "fakes"), needs_generator=True),
    Metric("ms_ssim_reals", 20000, "MS-SSIM of N/2 pairs of reals",
           lambda request: _plan(request, "ms_ssim_reals", "reals"), needs_reals=True),
)
