"""Tests for progan_tf.networks.stylegan: NVIDIA's parameter counts, noise modes, truncation,
style mixing, fade-in continuity, serialization and restoring older checkpoints."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from progan_tf.networks import stylegan
from progan_tf.networks import count_params as _count, parameters_up_to

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "networks"
TINY = dict(fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16, mapping_fmaps=16)


def normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def rebuilt(generator, **config_changes):
    """A StyleGenerator from `generator`'s config (with `config_changes`) holding its weights."""
    copy = stylegan.StyleGenerator.from_config({**generator.get_config(), **config_changes})
    for target, source in zip(copy.weights, generator.weights):
        target.assign(source)
    return copy


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return stylegan.StyleGenerator(32, fused_min_resolution=16, **TINY)


def test_parameter_counts_match_nvidia_stylegan():
    generator = stylegan.StyleGenerator(1024)
    assert _count(generator) == 26_219_627
    assert _count(generator.mapping) == 2_101_248
    assert _count(generator) - _count(generator.mapping) == 24_118_379
    assert parameters_up_to(generator, 32) == 22_841_356
    assert _count(stylegan.StyleGenerator(32)) == 22_841_356
    # Non-trainable state is not counted: dlatent_avg, noise images, fade alpha.
    assert generator.dlatent_avg.shape == (512,) and not generator.dlatent_avg.trainable
    assert generator.num_layers == 18
    assert generator.block_128x128.fused and not generator.block_64x64.fused
    # The discriminator is ProGAN's plus parameter-free blurs.
    assert _count(stylegan.stylegan_discriminator(1024)) == 23_087_249


def test_fused_upsampling_renders_the_unfused_generators_images_from_the_same_weights(tiny):
    # Fused from 16x16 up (`tiny`), from 128 (the original's 'auto', the default: none at 32)
    # and from 8 (every block): three compute paths of one function and one checkpoint layout.
    assert not tiny.block_8x8.fused and tiny.block_16x16.fused
    assert stylegan.StyleGenerator(8, **TINY).get_config()["fused_min_resolution"] == 128
    z = normal(3, 16, seed=4)
    reference = np.asarray(tiny.model_for(32, noise="const")(z))
    for fused_min_resolution in (8, 128):
        other = rebuilt(tiny, fused_min_resolution=fused_min_resolution)
        assert [other.block_at(r).fused for r in (8, 16, 32)] == [fused_min_resolution == 8] * 3
        # Float rounding, relative to the largest output (about 11; AdaIN amplifies).
        np.testing.assert_allclose(other.model_for(32, noise="const")(z), reference, rtol=0,
                                   atol=1e-5 * np.abs(reference).max())


def test_mapping_uses_lrmul_on_weights_and_biases_and_broadcasts(tiny):
    dense = tiny.mapping.dense_0
    assert dense.lrmul == 0.01 and dense.runtime_scale == pytest.approx(2 ** 0.5 / 4 * 0.01)
    z = normal(3, 16)
    w = np.asarray(tiny.mapping_model()(z))
    assert w.shape == (3, tiny.num_layers, 16)
    np.testing.assert_array_equal(w[:, 0], w[:, -1])
    assert tiny.block_4x4.const.numpy().min() == tiny.block_4x4.const.numpy().max() == 1.0


def test_zero_initialised_noise_weights_leave_the_output_unchanged(tiny):
    z = normal(2, 16)
    np.testing.assert_array_equal(tiny.model_for(32, noise="random")(z),
                                  tiny.model_for(32, noise="const")(z))
    with_noise = rebuilt(tiny)
    with_noise.block_8x8.noise1.weight.assign(np.ones(16, "float32"))
    # Fresh noise on every call: asked for, or by default when training.
    for model, kwargs in ((with_noise.model_for(32, noise="random"), {}),
                          (with_noise.model_for(32), {"training": True}),
                          (with_noise.synthesis_model_for(32), {"training": True})):
        inputs = z if model.name.endswith("32x32") and "synthesis" not in model.name else (
            with_noise.mapping_model()(z))
        assert not np.allclose(model(inputs, **kwargs), model(inputs, **kwargs))
    # Each layer's fixed noise image: asked for, or by default when not training.
    const = np.asarray(with_noise.model_for(32, noise="const")(z, training=True))
    for images in (with_noise.model_for(32, noise="const")(z), with_noise.model_for(32)(z),
                   with_noise.model_for(32)(z, training=False), with_noise(z),
                   with_noise.synthesis_model_for(32)(with_noise.mapping_model()(z))):
        np.testing.assert_array_equal(images, const)


def test_models_are_cached_per_resolution_and_noise_mode(tiny):
    assert tiny.model_for(16) is tiny.model_for(16, noise=None)
    assert tiny.model_for(16, "random") is tiny.model_for(16, noise="random")
    assert len({id(tiny.model_for(16, noise)) for noise in (None, "random", "const")}) == 3
    assert tiny.synthesis_model_for(16, "const") is tiny.synthesis_model_for(16, "const")
    assert tiny.synthesis_model_for(16, "const") is not tiny.synthesis_model_for(16)
    with pytest.raises(ValueError, match="noise must be one of"):
        tiny.model_for(16, noise="fixed")
    with pytest.raises(ValueError, match="resolution must be one of"):
        tiny.synthesis_model_for(64)


def test_truncation_psi_zero_gives_the_average_and_one_is_identity(tiny):
    tiny.dlatent_avg.assign(normal(16, seed=7))
    w = tiny.mapping_model()(normal(5, 16))
    avg = tiny.dlatent_avg.numpy()
    zero = np.asarray(stylegan.truncate(w, tiny.dlatent_avg, psi=0.0, cutoff=tiny.num_layers))
    np.testing.assert_allclose(zero, np.broadcast_to(avg, zero.shape), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stylegan.truncate(w, tiny.dlatent_avg, psi=1.0), w, rtol=1e-6,
                               atol=1e-6)
    half = np.asarray(stylegan.truncate(w, tiny.dlatent_avg, psi=0.5, cutoff=3))
    np.testing.assert_allclose(half[:, :3], avg + 0.5 * (np.asarray(w)[:, :3] - avg), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(half[:, 3:], np.asarray(w)[:, 3:])
    per_sample = np.asarray(stylegan.truncate(w, tiny.dlatent_avg, psi=np.array(
        [0.0, 1.0, 1.0, 1.0, 1.0], "float32")))
    np.testing.assert_allclose(per_sample[0, 0], avg, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(per_sample[1], np.asarray(w)[1], rtol=1e-6)


def test_dlatent_average_is_an_exponential_moving_average(tiny):
    tiny.dlatent_avg.assign(np.zeros(16, "float32"))
    w = np.asarray(tiny.mapping_model()(normal(4, 16)))
    tiny.update_dlatent_avg(w, beta=0.995)
    np.testing.assert_allclose(tiny.dlatent_avg.numpy(), 0.005 * w[:, 0].mean(axis=0), rtol=1e-5)


def test_style_mixing_crossover_index_semantics():
    first = np.zeros((2, 6, 3), "float32")
    second = np.ones((2, 6, 3), "float32")
    mixed = np.asarray(stylegan.mix_styles(first, second, 2))
    assert (mixed[:, :2] == 0).all() and (mixed[:, 2:] == 1).all()
    np.testing.assert_array_equal(stylegan.mix_styles(first, second, 6), first)
    cutoffs = [int(stylegan.draw_mixing_cutoff(6, 0.9, [i, 0])) for i in range(400)]
    assert set(cutoffs) <= {1, 2, 3, 4, 5, 6}
    no_mix = cutoffs.count(6) / len(cutoffs)
    assert 0.05 < no_mix < 0.16  # 10 % no mixing; mixing spreads over 1..5 uniformly
    assert all(cutoffs.count(c) > 40 for c in range(1, 6))
    assert {int(stylegan.draw_mixing_cutoff(6, 0.0, [i, 0])) for i in range(20)} == {6}
    assert int(stylegan.draw_mixing_cutoff(6, 0.9, [5, 1])) == int(
        stylegan.draw_mixing_cutoff(6, 0.9, [5, 1]))
    assert stylegan.num_layers_at(8) == 4 and stylegan.num_layers_at(1024) == 18


def test_synthesis_fade_in_is_continuous(tiny):
    w = tiny.mapping_model()(normal(3, 16))
    for res in (8, 16, 32):
        tiny.set_alpha(1.0)
        previous = np.asarray(tiny.synthesis_model_for(res // 2)(w))
        tiny.set_alpha(0.0)
        grown = np.asarray(tiny.synthesis_model_for(res)(w))
        np.testing.assert_allclose(grown, previous.repeat(2, 1).repeat(2, 2), rtol=1e-5,
                                   atol=1e-5)
    tiny.set_alpha(1.0)


def test_changing_alpha_does_not_retrace(tiny):
    model = tiny.model_for(16)

    @tf.function
    def run(z):
        return model(z, training=True)

    z = normal(2, 16)
    for alpha in (0.0, 0.5, 1.0):
        tiny.set_alpha(alpha)
        run(z)
    assert run.experimental_get_tracing_count() == 1


def test_checkpoint_and_config_round_trip(tiny, tmp_path):
    path = tf.train.Checkpoint(generator=tiny).write(str(tmp_path / "g"))
    saved = [n for n, _ in tf.train.list_variables(path) if n.endswith("VARIABLE_VALUE")]
    assert len(saved) == len(tiny.weights)
    assert "generator/mapping/dense_7/kernel/.ATTRIBUTES/VARIABLE_VALUE" in saved
    assert "generator/dlatent_avg/.ATTRIBUTES/VARIABLE_VALUE" in saved
    clone = stylegan.StyleGenerator.from_config(tiny.get_config())
    tf.train.Checkpoint(generator=clone).read(path).assert_consumed()
    z = normal(2, 16)
    np.testing.assert_array_equal(clone.model_for(32, noise="const")(z),
                                  tiny.model_for(32, noise="const")(z))


def test_keras_file_round_trip_of_the_synthesis_model(tiny, tmp_path):
    model = tiny.model_for(16, noise="const")
    model.save(tmp_path / "g.keras")
    revived = keras.models.load_model(tmp_path / "g.keras")
    z = normal(2, 16)
    np.testing.assert_allclose(revived(z), model(z), rtol=1e-6, atol=1e-6)


def test_conditional_mapping_embeds_labels():
    generator = stylegan.StyleGenerator(8, label_size=3, **TINY)
    # Label embedding 3 x 16, first dense takes 32 inputs (latents + embedded labels).
    assert generator.mapping.label_embedding.shape == (3, 16)
    assert generator.mapping.dense_0.kernel.shape == (32, 16)
    z, labels = normal(3, 16), np.eye(3, dtype="float32")
    images = generator.model_for(8)([z, labels])
    assert images.shape == (3, 8, 8, 3)
    assert not np.allclose(images, generator.model_for(8)([z, labels[::-1]]))


def test_export_round_trip_with_mapping_synthesis_and_truncation(tmp_path):
    import exports
    from progan_tf import generate

    keras.utils.set_random_seed(3)
    generator = stylegan.StyleGenerator(16, **TINY)
    for res in (8, 16):  # give the noise inputs some weight so fixed noise matters
        noise = getattr(generator, f"block_{res}x{res}").noise0
        noise.weight.assign(np.full(noise.weight.shape, 0.5, "float32"))
    generator.dlatent_avg.assign(normal(16, seed=9))
    version = exports.export_generator(generator, str(tmp_path / "export"))
    loaded = tf.saved_model.load(version)
    assert set(loaded.signatures) == {"serving_default", "generate_seeds", "mapping", "synthesis"}

    z = normal(3, 16)
    default = loaded.signatures["serving_default"](latents=tf.constant(z))
    mapped = loaded.signatures["mapping"](latents=tf.constant(z))
    assert mapped["dlatents"].shape == (3, generator.num_layers, 16)
    np.testing.assert_allclose(mapped["dlatent_avg"][0], generator.dlatent_avg.numpy())
    synthesized = loaded.signatures["synthesis"](dlatents=mapped["dlatents"])
    np.testing.assert_array_equal(default["images"], synthesized["images"])
    np.testing.assert_allclose(default["images_float"],
                               np.clip(generator.model_for(16)(z), -1, 1), rtol=1e-5, atol=1e-5)

    seeds = tf.constant([0, 1, 2], tf.int64)
    # psi = 0 on every layer (6 layers at 16x16 < cutoff 8): every seed renders w_avg.
    flat = loaded.signatures["generate_seeds"](seeds=seeds, truncation_psi=tf.zeros([3]))
    assert np.array_equal(flat["images"][0], flat["images"][1])
    average = loaded.signatures["synthesis"](
        dlatents=tf.tile(generator.dlatent_avg[None, None], [1, generator.num_layers, 1]))
    np.testing.assert_allclose(flat["images_float"][0], average["images_float"][0], atol=1e-5)
    free = loaded.signatures["generate_seeds"](seeds=seeds, truncation_psi=tf.ones([3]))
    assert not np.array_equal(free["images"][0], free["images"][1])

    out = tmp_path / "mix"
    assert generate.main(["--saved_model", str(tmp_path / "export" / "generator"),
                          "--style_mix", "0,1:5,6,7", "--style_layers", "0-1",
                          "--out_dir", str(out)]) == 0
    from PIL import Image
    grid = np.asarray(Image.open(out / "style_mix.png"))
    assert grid.shape[:2] == (4 * 16, 3 * 16)
    model = generate.load_saved_model(str(tmp_path / "export" / "generator"))
    columns, rows = model.dlatents_for_seeds([0, 1]), model.dlatents_for_seeds([5, 6, 7])
    mixed = rows[2].copy()
    mixed[:2] = columns[1, :2]
    cell = model.images_for_dlatents(mixed[None])[0]
    np.testing.assert_array_equal(grid[3 * 16:, 2 * 16:].reshape(cell.shape), cell)
    assert not grid[:16, :16].any()  # the corner stays empty


def test_checkpoint_with_randomize_variables_restores_and_renders_the_old_fixed_noise():
    # Written by tests/fixtures/networks/make_stylegan_randomize_checkpoint.py with the code
    # that stored the noise mode in a `randomize` variable per NoiseInjection layer.
    prefix = str(FIXTURES / "stylegan_randomize_checkpoint")
    with np.load(prefix + ".npz", allow_pickle=False) as stored:
        old = dict(stored)
    assert any(name.endswith("/randomize/.ATTRIBUTES/VARIABLE_VALUE")
               for name, _ in tf.train.list_variables(prefix))
    generator = stylegan.StyleGenerator(**json.loads(str(old["config"])), seed=1)
    status = tf.train.Checkpoint(generator=generator).read(prefix).expect_partial()
    status.assert_existing_objects_matched()  # everything but the `randomize` values is used
    assert float(generator.fade_alpha.numpy()) == 0.5
    latents = old["latents"]
    dlatents = generator.mapping_model()(latents)
    for res in (4, 8):
        np.testing.assert_allclose(generator.model_for(res, noise="const")(latents),
                                   old[f"images_{res}"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(generator.model_for(res)(latents), old[f"images_{res}"],
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(generator.synthesis_model_for(res)(dlatents),
                                   old[f"synthesis_{res}"], rtol=1e-6, atol=1e-6)
    # The noise weights are non-zero, so random noise renders something else.
    assert not np.allclose(generator.model_for(8, noise="random")(latents), old["images_8"])
