"""Perceptual path length (progan_tf/metrics/ppl.py): interpolation, crop, sampling and
outlier rejection, with stand-in generators and distances."""

import numpy as np
import pytest

from progan_tf.metrics import ppl


def angle(a, b):
    a, b = ppl.normalize(a), ppl.normalize(b)
    return np.arccos(np.clip(np.sum(a * b, axis=-1), -1, 1))


def test_slerp_walks_the_great_circle_at_constant_speed():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    np.testing.assert_allclose(ppl.slerp(a, b, np.zeros((5, 1))), ppl.normalize(a), atol=1e-12)
    np.testing.assert_allclose(ppl.slerp(a, b, np.ones((5, 1))), ppl.normalize(b), atol=1e-12)
    t = rng.uniform(size=(5, 1))
    middle = ppl.slerp(a, b, t)
    np.testing.assert_allclose(np.linalg.norm(middle, axis=-1), 1.0)
    np.testing.assert_allclose(angle(a, middle), t[:, 0] * angle(a, b), rtol=1e-9)
    np.testing.assert_allclose(angle(middle, b), (1 - t[:, 0]) * angle(a, b), rtol=1e-9)


def test_lerp_is_linear():
    np.testing.assert_allclose(ppl.lerp(np.array([1.0, 2.0]), np.array([3.0, 6.0]), 0.25),
                               [1.5, 3.0])


def test_crop_takes_rows_3c_to_7c_and_columns_2c_to_6c():
    ys, xs = np.mgrid[0:32, 0:32]
    image = (ys * 100 + xs).astype(np.float32)[None, :, :, None]
    cropped = ppl.crop_and_resize(image, crop=True)
    assert cropped.shape == (1, 16, 16, 3)  # gray tiled to RGB for VGG
    assert cropped[0, 0, 0, 0] == 12 * 100 + 8 and cropped[0, -1, -1, 2] == 27 * 100 + 23
    assert ppl.crop_and_resize(image, crop=False).shape == (1, 32, 32, 3)


def test_images_larger_than_256_are_box_downsampled():
    image = np.random.default_rng(1).normal(size=(1, 512, 512, 3)).astype(np.float32)
    out = ppl.crop_and_resize(image, crop=False)
    assert out.shape == (1, 256, 256, 3)
    np.testing.assert_allclose(out[0, 0, 0], image[0, :2, :2].mean(axis=(0, 1)), rtol=1e-5)


def test_endpoints_interleave_t_and_t_plus_epsilon():
    latents = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    t = np.array([0.0, 0.5, 1.0])
    inputs = ppl.endpoint_latents("z", "full", latents, t, 1e-4)
    assert inputs.shape == (6, 4)
    np.testing.assert_allclose(inputs[0], ppl.normalize(latents[0]), atol=1e-6)
    np.testing.assert_allclose(inputs[5], ppl.slerp(latents[4:5].astype(np.float64),
                                                    latents[5:6], np.array([[1.0001]]))[0],
                               atol=1e-6)


def linear_synthesis(matrix, size=16):
    """w [N, 1, D] -> images [N, size, size, 3], linear in w."""
    return lambda w: (np.asarray(w)[:, 0] @ matrix).reshape(-1, size, size, 3).astype(np.float32)


def mean_squared(images0, images1):
    return np.mean(np.square(images0.astype(np.float64) - images1), axis=(1, 2, 3))


def test_w_space_path_length_of_a_linear_generator_is_known():
    # Along a lerp, (img(t + eps) - img(t)) / eps = (w1 - w0) A exactly, so every sample's
    # distance / eps^2 is mean(((w1 - w0) A)^2), whatever t is.
    rng = np.random.default_rng(3)
    matrix = rng.normal(0, 0.05, (4, 16 * 16 * 3))
    mapping = lambda z: np.asarray(z)[:, None, :] * 0.5
    for sampling in ("full", "end"):
        distances = ppl.path_distances(
            "w", sampling, 4, 10, mean_squared, mapping=mapping,
            synthesis=linear_synthesis(matrix), batch_size=4, seed=7, crop=False)
        latents = np.random.default_rng(7).normal(size=(8, 4)).astype(np.float32)  # batch 1
        dw = 0.5 * (latents[1::2] - latents[0::2])
        expected = np.mean(np.square(dw @ matrix), axis=1)
        assert distances.shape == (10,)
        np.testing.assert_allclose(distances[:4], expected, rtol=2e-2)


def test_z_space_uses_generate_or_mapping_and_synthesis_and_reports_positive_lengths():
    rng = np.random.default_rng(4)
    matrix = rng.normal(0, 0.05, (4, 16 * 16 * 3))
    synthesis = linear_synthesis(matrix)
    generate = lambda z: synthesis(np.asarray(z)[:, None, :])
    via_generate = ppl.path_distances("z", "full", 4, 6, mean_squared, generate=generate,
                                      batch_size=3, seed=1, crop=False)
    via_halves = ppl.path_distances("z", "full", 4, 6, mean_squared,
                                    mapping=lambda z: np.asarray(z)[:, None, :],
                                    synthesis=synthesis, batch_size=3, seed=1, crop=False)
    np.testing.assert_allclose(via_generate, via_halves, rtol=1e-6)
    assert np.all(via_generate > 0)


def test_w_space_without_mapping_is_refused():
    with pytest.raises(ValueError, match="StyleGAN"):
        ppl.path_distances("w", "full", 4, 2, mean_squared, generate=lambda z: z)
    with pytest.raises(ValueError, match="space"):
        ppl.path_distances("x", "full", 4, 2, mean_squared, generate=lambda z: z)


def test_filtered_mean_drops_values_outside_the_1st_and_99th_percentiles():
    # 200 values 0..199: the 1st percentile ('lower') is 1, the 99th ('higher') is 198.
    values = np.random.default_rng(5).permutation(np.arange(200.0))
    assert ppl.filtered_mean(values) == pytest.approx(np.mean(np.arange(1, 199)))
    values[values == 199] = 1e9  # an outlier does not move the result
    assert ppl.filtered_mean(values) == pytest.approx(np.mean(np.arange(1, 199)))
