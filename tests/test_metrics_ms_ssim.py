"""MS-SSIM (progan_tf/metrics/ms_ssim.py) as ProGAN computes it."""

import numpy as np
import pytest

from progan_tf.metrics import ms_ssim

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def random_images(count, size, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3)).astype(np.uint8)


def direct_ms_ssim(img1, img2):
    """MS-SSIM written out with explicit sliding windows (no FFT), one pair at a time."""
    img1, img2 = img1.astype(np.float64), img2.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    css, ssims = [], []
    for _ in range(5):
        size = min(11, img1.shape[0])
        window = ms_ssim.gaussian_window(size, size * 1.5 / 11)
        views = [np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(0, 1))
                 for x in (img1, img2, img1 * img1, img2 * img2, img1 * img2)]
        mu1, mu2, e11, e22, e12 = [np.einsum("hwcij,ij->hwc", v, window) for v in views]
        v1 = 2 * (e12 - mu1 * mu2) + c2
        v2 = (e11 - mu1 ** 2) + (e22 - mu2 ** 2) + c2
        ssims.append(np.mean((2 * mu1 * mu2 + c1) * v1 / ((mu1 ** 2 + mu2 ** 2 + c1) * v2)))
        css.append(np.mean(v1 / v2))
        img1 = (img1[0::2, 0::2] + img1[1::2, 0::2] + img1[0::2, 1::2] + img1[1::2, 1::2]) / 4
        img2 = (img2[0::2, 0::2] + img2[1::2, 0::2] + img2[0::2, 1::2] + img2[1::2, 1::2]) / 4
    css, ssims = np.clip(css, 0, None), np.clip(ssims, 0, None)
    return np.prod(css[:-1] ** WEIGHTS[:-1]) * ssims[-1] ** WEIGHTS[-1]


def test_gaussian_window_sums_to_one_and_is_symmetric():
    for size, sigma in ((11, 1.5), (4, 4 * 1.5 / 11), (1, 1.5 / 11)):
        window = ms_ssim.gaussian_window(size, sigma)
        assert window.shape == (size, size)
        assert window.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(window, window[::-1, ::-1])
    window = ms_ssim.gaussian_window(11, 1.5)
    assert window[5, 5] / window[5, 6] == pytest.approx(np.exp(1 / (2 * 1.5 ** 2)))


def test_identical_pairs_score_one():
    images = random_images(4, 32, seed=0)
    np.testing.assert_allclose(ms_ssim.ms_ssim_per_pair(images, images), 1.0, rtol=1e-12)


def test_constant_images_follow_the_closed_form():
    # Flat images: every contrast-structure term is c2 / c2 = 1, so MS-SSIM is the last scale's
    # luminance term (2ab + c1) / (a^2 + b^2 + c1) to the power of the last weight.
    a, b = 100.0, 160.0
    c1 = (0.01 * 255) ** 2
    images1 = np.full((1, 16, 16, 3), a)
    images2 = np.full((1, 16, 16, 3), b)
    expected = ((2 * a * b + c1) / (a * a + b * b + c1)) ** WEIGHTS[-1]
    np.testing.assert_allclose(ms_ssim.ms_ssim_per_pair(images1, images2), expected, rtol=1e-9)


def test_matches_a_direct_sliding_window_implementation():
    images1, images2 = random_images(2, 16, seed=1), random_images(2, 16, seed=2)
    images2[1] = np.clip(images1[1] + 40, 0, 255)  # one related pair
    expected = [direct_ms_ssim(x, y) for x, y in zip(images1, images2)]
    np.testing.assert_allclose(ms_ssim.ms_ssim_per_pair(images1, images2), expected, rtol=1e-9)


def test_is_symmetric_and_lower_for_unrelated_pairs():
    images1, images2 = random_images(3, 32, seed=3), random_images(3, 32, seed=4)
    forward = ms_ssim.ms_ssim_per_pair(images1, images2)
    np.testing.assert_allclose(forward, ms_ssim.ms_ssim_per_pair(images2, images1), rtol=1e-12)
    related = np.clip(images1.astype(int) + 10, 0, 255)
    assert np.all(ms_ssim.ms_ssim_per_pair(images1, related) > forward)


def test_accumulator_pairs_even_and_odd_images_across_batches():
    images = random_images(6, 16, seed=5)
    accumulator = ms_ssim.MSSSIMAccumulator()
    accumulator.feed(images[:3])  # image 2 waits for image 3
    accumulator.feed(images[3:4])
    accumulator.feed(images[4:])
    assert accumulator.num_pairs == 3
    expected = ms_ssim.ms_ssim_per_pair(images[0::2], images[1::2]).mean()
    assert accumulator.result() == pytest.approx(expected, rel=1e-12)


def test_rejects_images_too_small_for_five_scales():
    with pytest.raises(ValueError, match="16x16"):
        ms_ssim.ms_ssim_per_pair(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))
