"""SWD (progan_tf/metrics/swd.py): pyramid, neighbourhoods, normalisation, the sliced
Wasserstein distance, and the metric's behaviour on image sets."""

import numpy as np
import pytest
import scipy.ndimage

from progan_tf.metrics import swd


def smooth_images(count, size=32, seed=0):
    """Smooth random colour images, uint8 [count, size, size, 3]."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, size // 4, size // 4, 3))
    images = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)
    images = scipy.ndimage.gaussian_filter(images, sigma=(0, 1.5, 1.5, 0))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def test_level_resolutions_stop_at_16_and_reject_small_images():
    assert swd.level_resolutions(64) == [64, 32, 16]
    assert swd.level_resolutions(16) == [16]
    with pytest.raises(ValueError, match="16"):
        swd.level_resolutions(8)
    with pytest.raises(ValueError, match="power-of-two"):
        swd.level_resolutions(48)


def test_pyr_down_is_the_5x5_binomial_filter_with_mirrored_borders_then_every_second_pixel():
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    taps = np.array([1, 4, 6, 4, 1], np.float64)
    kernel = np.outer(taps, taps) / 256.0
    padded = np.pad(images, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")  # dcb|abcd|cba
    expected = np.zeros_like(images, dtype=np.float64)
    for dy in range(5):
        for dx in range(5):
            expected += kernel[dy, dx] * padded[:, dy:dy + 8, dx:dx + 8]
    np.testing.assert_allclose(swd.pyr_down(images), expected[:, ::2, ::2], rtol=1e-5, atol=1e-4)


def test_pyr_up_and_pyr_down_keep_a_constant_image_constant():
    images = np.full((1, 8, 8, 3), 77.0, np.float32)
    np.testing.assert_allclose(swd.pyr_down(images), 77.0, rtol=1e-6)
    np.testing.assert_allclose(swd.pyr_up(images), 77.0, rtol=1e-6)
    assert swd.pyr_up(images).shape == (1, 16, 16, 3)


def test_laplacian_pyramid_has_the_level_sizes_and_reconstructs_the_images():
    images = smooth_images(3, 32)
    pyramid = swd.laplacian_pyramid(images, 2)
    assert [level.shape for level in pyramid] == [(3, 32, 32, 3), (3, 16, 16, 3)]
    np.testing.assert_allclose(swd.reconstruct_laplacian_pyramid(pyramid), images, atol=1e-3)


def test_neighbourhoods_are_7x7_patches_fully_inside_the_image():
    # Pixel value = y * 100 + x (channel c adds 10000 c): a patch reveals where it was taken.
    h = w = 16
    ys, xs = np.mgrid[0:h, 0:w]
    level = np.stack([ys * 100 + xs + 10000 * c for c in range(3)], axis=-1)[None]
    level = np.repeat(level, 2, axis=0).astype(np.float32)
    patches = swd.neighbourhoods(level, np.random.default_rng(0), per_image=50)
    assert patches.shape == (100, 7, 7, 3)
    top_left = patches[:, 0, 0, 0]
    top, left = top_left // 100, top_left % 100
    assert top.min() >= 0 and left.min() >= 0 and top.max() <= h - 7 and left.max() <= w - 7
    offsets = np.arange(7)
    expected = (top[:, None, None] + offsets[None, :, None]) * 100 + left[:, None, None] \
        + offsets[None, None, :]
    np.testing.assert_array_equal(patches[..., 0], expected)
    np.testing.assert_array_equal(patches[..., 2] - patches[..., 0], 20000)


def test_finalize_descriptors_gives_each_channel_mean_0_and_std_1():
    rng = np.random.default_rng(2)
    blocks = [rng.normal([10, -5, 300], [2, 7, 40], (64, 7, 7, 3)).astype(np.float32)
              for _ in range(3)]
    desc = swd.finalize_descriptors(blocks)
    assert desc.shape == (192, 147)
    per_channel = desc.reshape(192, 7, 7, 3)
    np.testing.assert_allclose(per_channel.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(per_channel.std(axis=(0, 1, 2)), 1.0, rtol=1e-5)


def test_sliced_wasserstein_in_one_dimension_is_the_mean_gap_of_sorted_values():
    # With D = 1 every unit direction is +-1, so each projection is the 1-D W1 distance.
    rng = np.random.default_rng(3)
    a = rng.permutation(np.arange(100, dtype=np.float32))[:, None]
    b = rng.permutation(np.arange(100, dtype=np.float32) + 2.5)[:, None]
    assert swd.sliced_wasserstein(a, b, rng, dir_repeats=2, dirs_per_repeat=8) == \
        pytest.approx(2.5, rel=1e-6)


def test_sliced_wasserstein_does_not_depend_on_the_direction_chunking():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(500, 12)).astype(np.float32)
    b = rng.normal(0.3, 1.2, size=(500, 12)).astype(np.float32)
    whole = swd.sliced_wasserstein(a, b, np.random.default_rng(9))
    chunked = swd.sliced_wasserstein(a, b, np.random.default_rng(9), max_chunk_elements=1000)
    assert chunked == pytest.approx(whole, rel=1e-6)


def test_sliced_wasserstein_rejects_sets_of_different_size():
    with pytest.raises(ValueError, match="one shape"):
        swd.sliced_wasserstein(np.zeros((4, 3)), np.zeros((5, 3)), np.random.default_rng(0))


def _swd_with_shared_patches(images_a, images_b):
    sets = [swd.DescriptorSet(images_a.shape[1], seed=5) for _ in range(2)]
    sets[0].feed(images_a)
    sets[1].feed(images_b)
    return swd.swd_from_descriptors(sets[0].finalize(), sets[1].finalize(), sets[0].resolutions)


def test_swd_of_a_set_against_itself_is_zero():
    images = smooth_images(16)
    results = _swd_with_shared_patches(images, images)
    assert set(results) == {"SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg"}
    assert all(value == 0.0 for value in results.values())


def test_swd_grows_monotonically_with_added_noise():
    images = smooth_images(16)
    rng = np.random.default_rng(6)
    noise = rng.normal(size=images.shape)
    averages = []
    for sigma in (0, 4, 8, 16, 32):
        noisy = np.clip(np.rint(images + sigma * noise), 0, 255).astype(np.uint8)
        averages.append(_swd_with_shared_patches(images, noisy)["SWDx1e3_avg"])
    assert averages[0] == 0.0
    assert all(later > earlier for earlier, later in zip(averages, averages[1:])), averages


def test_swd_with_independent_patches_separates_like_from_unlike_sets():
    # Two halves of one distribution are closer than a set and its noisy copy.
    images = smooth_images(64, seed=7)
    noisy = np.clip(images + np.random.default_rng(8).normal(0, 32, images.shape), 0, 255)
    same = swd.swd(images[:32], images[32:])["SWDx1e3_avg"]
    different = swd.swd(images[:32], noisy[32:].astype(np.uint8))["SWDx1e3_avg"]
    assert 0 < same < different


def test_average_is_the_mean_of_the_levels_and_grayscale_is_tiled():
    images = smooth_images(8)
    gray = images[..., :1]
    results = _swd_with_shared_patches(np.repeat(gray, 3, axis=-1), gray)
    assert results["SWDx1e3_avg"] == 0.0
    results = swd.swd(images, images[::-1])
    assert results["SWDx1e3_avg"] == pytest.approx(
        (results["SWDx1e3_32"] + results["SWDx1e3_16"]) / 2)


def test_descriptor_set_rejects_images_of_another_size():
    descriptors = swd.DescriptorSet(32)
    with pytest.raises(ValueError, match="32x32"):
        descriptors.feed(np.zeros((2, 16, 16, 3), np.uint8))
