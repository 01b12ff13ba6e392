"""progan_tf.generate: seed parsing, latent paths (slerp, lerp, the original's smoothed walk),
grids, and the command from a SavedModel alone or from a run's checkpoint."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from PIL import Image

import exports
from progan_tf import generate, generators
from progan_tf.networks import Generator
from progan_tf.utils.images import image_grid
from training_common import tree_bytes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(resolution=8, num_channels=3, fmap_base=32, fmap_max=16)  # latent_size 16


# ---------------------------------------------------------------------------------------------
# Pure helpers.

@pytest.mark.parametrize("text, seeds", [
    ("0-3", [0, 1, 2, 3]), ("1,5,9", [1, 5, 9]), ("0-2,10", [0, 1, 2, 10]), ("7", [7]),
    ("4294967295", [2**32 - 1]), (" 3 , 4-5 ", [3, 4, 5]), ("9,2", [9, 2])])
def test_parse_seeds_reads_ranges_and_lists_in_order(text, seeds):
    assert generate.parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [
    ("-1", "out of range"), ("4294967296", "out of range"), ("0-4294967296", "out of range"),
    ("5-3", "runs backwards"), ("a", "not a seed"), ("1,,2", "not a seed"), ("", "not a seed"),
    ("0-99999999", "more than")])
def test_parse_seeds_rejects_bad_text_naming_the_flag(text, message):
    with pytest.raises(generate.GenerateError, match=message) as error:
        generate.parse_seeds(text)
    assert str(error.value).startswith("--seeds")


def test_parse_grid():
    assert generate.parse_grid("8x4") == (8, 4)
    for bad in ("8", "0x2", "axb", "2x2x2"):
        with pytest.raises(generate.GenerateError, match="--grid"):
            generate.parse_grid(bad)


def test_slerp_keeps_the_norm_between_orthogonal_unit_vectors():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(generate.slerp(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(generate.slerp(a, b, 1.0), b, atol=1e-12)
    np.testing.assert_allclose(generate.slerp(a, b, 0.5), [0.5**0.5, 0.5**0.5])
    np.testing.assert_allclose(generate.slerp(a, b, 1 / 3), [np.cos(np.pi / 6), np.sin(np.pi / 6)])
    np.testing.assert_allclose(generate.lerp(a, b, 0.5), [0.5, 0.5])
    np.testing.assert_allclose(generate.slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: lerp


def test_interpolation_passes_through_every_key_latent():
    keys = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    for method in ("slerp", "lerp"):
        frames = generate.interpolation_latents(keys, 4, method)
        assert frames.shape == (9, 16)
        np.testing.assert_allclose(frames[[0, 4, 8]], keys, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(generate.interpolation_latents(keys, 4, "lerp")[2],
                               (keys[0] + keys[1]) / 2, rtol=1e-6, atol=1e-6)
    with pytest.raises(generate.GenerateError, match="at least two seeds"):
        generate.interpolation_latents(keys[:1], 4)


def originals_walk(num_frames, num_walks, latent_size, smoothing_frames, seed):
    """[PG] util_scripts.py generate_interpolation_video's latents, written as the original."""
    latents = np.random.RandomState(seed).randn(num_frames, num_walks, latent_size)
    latents = scipy.ndimage.gaussian_filter(latents.astype(np.float32),
                                            [smoothing_frames, 0, 0], mode="wrap")
    return latents / np.sqrt(np.mean(np.square(latents)))


@pytest.mark.parametrize("length, sigma", [(40, 2.5), (5, 3.0), (12, 0.0)])
def test_walk_smoothing_wraps_like_the_original_also_for_short_walks_and_no_smoothing(length,
                                                                                      sigma):
    # (5, 3.0): the kernel is wider than the walk, so it wraps around more than once.
    np.testing.assert_allclose(generate.random_walk_latents(length, 2, 3, sigma, seed=1),
                               originals_walk(length, 2, 3, sigma, seed=1), rtol=1e-5, atol=1e-6)


def test_random_walk_is_the_originals_smoothed_unit_rms_loop():
    walk = generate.random_walk_latents(90, 2, 16, smoothing_frames=6.0, seed=1000)
    assert walk.shape == (90, 2, 16) and walk.dtype == np.float32
    np.testing.assert_allclose(np.sqrt(np.mean(np.square(walk))), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(walk, generate.random_walk_latents(90, 2, 16, 6.0, 1000))
    steps = np.diff(np.concatenate([walk, walk[:1]]), axis=0)  # includes last -> first frame
    rough = generate.random_walk_latents(90, 2, 16, smoothing_frames=0.0, seed=1000)
    rough_steps = np.diff(np.concatenate([rough, rough[:1]]), axis=0)
    assert np.sqrt(np.mean(steps**2)) < 0.3 * np.sqrt(np.mean(rough_steps**2))
    assert np.abs(steps[-1]).max() < 3 * np.abs(steps[:-1]).max()  # the loop closes smoothly
    np.testing.assert_allclose(walk, originals_walk(90, 2, 16, 6.0, 1000), rtol=1e-5, atol=1e-6)


def test_image_grid_is_row_major_with_black_empty_cells():
    images = np.arange(1, 6, dtype=np.uint8)[:, None, None, None] * np.ones((5, 2, 3, 1), np.uint8)
    grid = image_grid(images, (3, 2))  # (columns, rows), as --grid 3x2
    assert grid.shape == (4, 9, 1)
    np.testing.assert_array_equal(grid[::2, ::3, 0], [[1, 2, 3], [4, 5, 0]])
    with pytest.raises(ValueError, match="7 images do not fit a 3x2 grid"):
        image_grid(np.zeros((7, 2, 2, 1), np.uint8), (3, 2))


def test_truncation_psi_is_fed_when_the_signature_has_it():
    received = {}

    def seeds_fn(seeds, truncation_psi):
        received["psi"] = truncation_psi.numpy()
        return {"images": tf.zeros([len(seeds), 2, 2, 3], tf.uint8)}

    specs = {"seeds": tf.TensorSpec([None], tf.int64, "seeds"),
             "truncation_psi": tf.TensorSpec([None], tf.float32, "truncation_psi")}
    model = generators.from_signatures({
        "serving_default": ({"latents": tf.TensorSpec([None, 4], tf.float32, "latents")}, None),
        "generate_seeds": (specs, seeds_fn)}, description="fake")
    assert model.has_truncation and model.latent_size == 4 and model.label_size == 0
    assert model.images_for_seeds([1, 2, 3], truncation_psi=0.7).shape == (3, 2, 2, 3)
    np.testing.assert_allclose(received["psi"], [0.7, 0.7, 0.7])


# ---------------------------------------------------------------------------------------------
# The command, against exported SavedModels and a run directory.

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A run directory (checkpoint of G and G_ema), its CLI export, and a conditional export."""
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("generate")
    run_dir = str(root / "00000-tiny")
    generator, generator_ema = Generator(**TINY), Generator(**TINY)
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "network.json"), "w") as file:
        json.dump({"architecture": "progan", "generator": generator.get_config()}, file)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=generator, generator_ema=generator_ema),
        os.path.join(run_dir, "checkpoints"), 1).save()
    version_dir = exports.export_checkpoint(run_dir)
    conditional = Generator(label_size=3, **TINY)
    conditional_dir = exports.export_generator(conditional, root / "conditional")
    return {"run_dir": run_dir, "version_dir": version_dir,
            "model_dir": os.path.dirname(version_dir), "conditional_dir": conditional_dir,
            "generator_ema": generator_ema, "conditional": conditional}


def seed_images(version_dir, seeds, labels=None):
    inputs = {"seeds": tf.constant(seeds, tf.int64)}
    if labels is not None:
        inputs["labels"] = tf.constant(labels, tf.float32)
    signature = tf.saved_model.load(version_dir).signatures["generate_seeds"]
    return signature(**inputs)["images"].numpy()


def read_png(path):
    return np.asarray(Image.open(path))


def test_grid_from_the_model_directory_holds_each_seeds_image(models, tmp_path):
    out = tmp_path / "out"
    # The model directory (numbered versions) resolves to its latest version.
    assert generate.main(["--saved_model", models["model_dir"], "--seeds", "0-4", "--grid",
                          "3x2", "--out_dir", str(out)]) == 0
    grid = read_png(out / "grid.png")
    assert grid.shape == (16, 24, 3)
    expected = seed_images(models["version_dir"], [0, 1, 2, 3, 4])
    for index, image in enumerate(expected):
        row, column = divmod(index, 3)
        np.testing.assert_array_equal(grid[row * 8:(row + 1) * 8, column * 8:(column + 1) * 8],
                                      image)
    assert grid[8:, 16:].max() == 0  # sixth cell empty
    assert sorted(os.listdir(out)) == ["grid.png"]  # no temporary files left


def test_checkpoint_and_saved_model_give_the_same_seed_pngs(models, tmp_path):
    for source, flag in (("checkpoint", "--checkpoint"), ("saved_model", "--saved_model")):
        path = models["run_dir"] if source == "checkpoint" else models["version_dir"]
        assert generate.main([flag, path, "--seeds", "1,5,9", "--out_dir",
                              str(tmp_path / source)]) == 0
    expected = seed_images(models["version_dir"], [1, 5, 9])
    for index, seed in enumerate([1, 5, 9]):
        name = f"seed{seed:04d}.png"
        np.testing.assert_array_equal(read_png(tmp_path / "saved_model" / name), expected[index])
        np.testing.assert_array_equal(read_png(tmp_path / "checkpoint" / name), expected[index])
    z = exports.seeds_to_latents([5], 16)
    keras_image = models["generator_ema"].model_for(8)(z).numpy()[0]
    np.testing.assert_array_equal(expected[1], np.clip(np.round(keras_image * 127.5 + 127.5),
                                                       0, 255).astype(np.uint8))


def test_interp_frames_start_and_end_at_the_seed_images(models, tmp_path):
    out = tmp_path / "interp"
    assert generate.main(["--saved_model", models["version_dir"], "--seeds", "2,7", "--interp",
                          "slerp", "--steps", "4", "--out_dir", str(out)]) == 0
    frames = sorted(os.listdir(out))
    assert frames == [f"interp_{i:05d}.png" for i in range(5)]
    expected = seed_images(models["version_dir"], [2, 7])
    np.testing.assert_array_equal(read_png(out / frames[0]), expected[0])
    np.testing.assert_array_equal(read_png(out / frames[-1]), expected[1])
    assert generate.main(["--saved_model", models["version_dir"], "--seeds", "2,7,9",
                          "--interp", "lerp", "--steps", "3", "--gif", "--out_dir",
                          str(tmp_path / "gif")]) == 0
    with Image.open(tmp_path / "gif" / "interp.gif") as gif:
        assert (gif.n_frames, gif.size) == (7, (8, 8))


def test_walk_writes_the_smoothed_walk_as_frames_and_gif(models, tmp_path):
    args = ["--saved_model", models["version_dir"], "--walk", "--seeds", "5", "--grid", "2x1",
            "--duration_sec", "1", "--fps", "6", "--smoothing_sec", "0.5"]
    assert generate.main(args + ["--out_dir", str(tmp_path / "png")]) == 0
    frames = sorted(os.listdir(tmp_path / "png"))
    assert frames == [f"walk_{i:05d}.png" for i in range(6)]
    latents = generate.random_walk_latents(6, 2, 16, 3.0, 5)
    images = tf.saved_model.load(models["version_dir"]).signatures["serving_default"](
        latents=tf.constant(latents[3]))["images"].numpy()
    np.testing.assert_array_equal(read_png(tmp_path / "png" / frames[3]),
                                  np.concatenate(list(images), axis=1))
    assert generate.main(args + ["--gif", "--out_dir", str(tmp_path / "gif")]) == 0
    with Image.open(tmp_path / "gif" / "walk.gif") as gif:
        assert (gif.n_frames, gif.size) == (6, (16, 8))


def test_label_selects_the_class_of_a_conditional_model(models, tmp_path):
    for label in (0, 2):
        assert generate.main(["--saved_model", models["conditional_dir"], "--seeds", "4",
                              "--label", str(label), "--out_dir", str(tmp_path / str(label))]) == 0
    one_hot = np.eye(3, dtype=np.float32)[[0, 2]]
    expected = seed_images(models["conditional_dir"], [4, 4], one_hot)
    np.testing.assert_array_equal(read_png(tmp_path / "0" / "seed0004.png"), expected[0])
    np.testing.assert_array_equal(read_png(tmp_path / "2" / "seed0004.png"), expected[1])
    assert not np.array_equal(expected[0], expected[1])


def test_stylegan_checkpoint_renders_like_its_export_with_and_without_truncation(tmp_path):
    from progan_tf.networks.stylegan import StyleGenerator

    keras.utils.set_random_seed(1)
    generator = StyleGenerator(16, fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16,
                               mapping_fmaps=16)
    for res in (8, 16):  # the stored noise images must show: give them weight
        noise = getattr(generator, f"block_{res}x{res}").noise1
        noise.weight.assign(np.full(noise.weight.shape, 0.5, "float32"))
    generator.dlatent_avg.assign(np.linspace(-1, 1, 16).astype("float32"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "network.json").write_text(json.dumps(
        {"architecture": "stylegan", "generator": generator.get_config()}))
    tf.train.CheckpointManager(tf.train.Checkpoint(generator_ema=generator),
                               str(run_dir / "checkpoints"), 1).save()
    from_checkpoint = generate.load_checkpoint(str(run_dir))
    from_export = generate.load_saved_model(exports.export_checkpoint(str(run_dir)))
    assert from_checkpoint.has_styles and from_checkpoint.has_truncation
    for psi in (None, 0.5):
        np.testing.assert_array_equal(from_checkpoint.images_for_seeds([0, 1, 2], None, psi),
                                      from_export.images_for_seeds([0, 1, 2], None, psi))
    np.testing.assert_allclose(from_checkpoint.dlatents_for_seeds([3], truncation_psi=0.5),
                               from_export.dlatents_for_seeds([3], truncation_psi=0.5),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("not_saved_model", "is not a SavedModel"),
    ("seed_range", "--seeds: 4294967296 is out of range"),
    ("label_unconditional", "--label: this model is unconditional"),
    ("label_missing", "--label: this model is conditional"),
    ("label_range", "--label: 3 is out of range 0..2"),
    ("trunc_progan", "--trunc: this model has no truncation"),
    ("grid_too_small", "--grid 2x2 holds 4 images, received 6 seeds"),
    ("missing_checkpoint", "--checkpoint:"),
])
def test_bad_input_is_one_line_and_exit_code_1(models, tmp_path, capsys, case, message):
    saved = ["--saved_model", models["version_dir"]]
    conditional = ["--saved_model", models["conditional_dir"]]
    argv = {
        "missing": ["--saved_model", str(tmp_path / "nope"), "--seeds", "1"],
        "not_saved_model": ["--saved_model", str(tmp_path), "--seeds", "1"],
        "seed_range": saved + ["--seeds", "4294967296"],
        "label_unconditional": saved + ["--seeds", "1", "--label", "0"],
        "label_missing": conditional + ["--seeds", "1"],
        "label_range": conditional + ["--seeds", "1", "--label", "3"],
        "trunc_progan": saved + ["--seeds", "1", "--trunc", "0.7"],
        "grid_too_small": saved + ["--seeds", "0-5", "--grid", "2x2"],
        "missing_checkpoint": ["--checkpoint", str(tmp_path / "no_run"), "--seeds", "1"],
    }[case]
    out = tmp_path / "out"
    assert generate.main(argv + ["--out_dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists() or os.listdir(out) == []


def test_trunc_of_one_is_accepted_for_progan(models, tmp_path):
    assert generate.main(["--saved_model", models["version_dir"], "--seeds", "3", "--trunc", "1",
                          "--out_dir", str(tmp_path)]) == 0
    np.testing.assert_array_equal(read_png(tmp_path / "seed0003.png"),
                                  seed_images(models["version_dir"], [3])[0])


def test_command_line_writes_a_grid_and_reports_errors_without_traceback(models, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "progan_tf.generate", "--seeds", "0-3", "--grid", "2x2",
               "--out_dir", str(tmp_path / "out")]
    ok = subprocess.run(command + ["--saved_model", models["model_dir"]], capture_output=True,
                        text=True, timeout=240, cwd=REPO, env=env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert read_png(tmp_path / "out" / "grid.png").shape == (16, 16, 3)
    bad = subprocess.run(command + ["--saved_model", str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=240, cwd=REPO, env=env)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].endswith("does not exist")


# ---------------------------------------------------------------------------------------------
# A run directory whose newest checkpoint does not load: generate and metrics (both through
# generators.from_run_dir) use the one before and change nothing in the run directory.


def test_checkpoint_run_dir_skips_a_bit_flipped_newest_checkpoint_and_changes_nothing(
        tmp_path, capsys):
    keras.utils.set_random_seed(1)
    run_dir = str(tmp_path / "00000-tiny")
    generator, generator_ema = Generator(**TINY), Generator(**TINY)
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "network.json"), "w") as file:
        json.dump({"architecture": "progan", "generator": generator.get_config()}, file)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=generator, generator_ema=generator_ema),
        os.path.join(run_dir, "checkpoints"), 2)
    manager.save()
    z = exports.seeds_to_latents([3], 16)
    images_at_step_1 = generator_ema.model_for(8)(z).numpy()
    expected = np.clip(np.round(images_at_step_1 * 127.5 + 127.5), 0, 255).astype(np.uint8)[0]
    for weight in generator_ema.trainable_weights:
        weight.assign(weight * 0.5 + 0.1)
    newest = manager.save()
    data = bytearray(open(newest + ".data-00000-of-00001", "rb").read())
    data[len(data) // 3] ^= 0x01
    open(newest + ".data-00000-of-00001", "wb").write(bytes(data))
    before = tree_bytes(run_dir)

    assert generate.main(["--checkpoint", run_dir, "--seeds", "3", "--out_dir",
                          str(tmp_path / "out")]) == 0
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith(
        f"warning: {newest}: skipped, it does not load (TensorBundle at ckpt-2 shard 0")
    assert "Checksum does not match" in warning and warning.endswith("); using ckpt-1\n")
    np.testing.assert_array_equal(read_png(tmp_path / "out" / "seed0003.png"), expected)
    fns, location = generators.from_run_dir(run_dir, noise="random")  # what metrics use
    assert location.checkpoint == os.path.join(run_dir, "checkpoints", "ckpt-1")
    np.testing.assert_allclose(fns.images_float(z), images_at_step_1, rtol=1e-6, atol=1e-6)
    assert capsys.readouterr().err == warning
    assert tree_bytes(run_dir) == before


# ---------------------------------------------------------------------------------------------
# --pickle: an official NVIDIA pickle (NVIDIA's layout, written by tests/official_writer.py).

STYLEGAN_PICKLE = dict(num_channels=3, resolution=16, fmap_base=64, fmap_max=16, latent_size=16,
                       dlatent_size=16, mapping_layers=2, mapping_fmaps=16)


@pytest.fixture(scope="module")
def official_pickles(tmp_path_factory):
    import official_writer

    directory = tmp_path_factory.mktemp("official")
    stylegan = directory / "stylegan-16.pkl"
    official_writer.write_pickle(stylegan,
                                 official_writer.stylegan_states(STYLEGAN_PICKLE, seed=5))
    progan = directory / "progan-8.pkl"
    official_writer.write_pickle(progan, official_writer.progan_states(
        dict(num_channels=3, resolution=8, fmap_base=32, fmap_max=16), seed=6))
    return {"stylegan": str(stylegan), "progan": str(progan)}


def test_pickle_renders_gs_with_its_stored_noise_and_stored_truncation(official_pickles,
                                                                       tmp_path):
    from progan_tf import official

    loaded = official.load(official_pickles["stylegan"])
    assert (loaded.truncation_psi, loaded.truncation_cutoff) == (0.7, 8)  # G_style's defaults
    gs = generators.from_network(loaded.Gs, noise="const")  # the stored noise images
    seeds = [1, 2]
    truncated = gs.images_for_seeds(seeds, truncation_psi=0.7)
    untruncated = gs.images_for_seeds(seeds)
    assert np.abs(truncated.astype(int) - untruncated).max() > 8

    def run(*flags):
        out = tmp_path / "-".join(flags or ("default",))
        assert generate.main(["--pickle", official_pickles["stylegan"], "--seeds", "1,2",
                              "--out_dir", str(out), *flags]) == 0
        return np.stack([read_png(out / f"seed000{seed}.png") for seed in seeds])

    np.testing.assert_array_equal(run(), truncated)  # the pickle's psi 0.7 without --trunc
    np.testing.assert_array_equal(run("--trunc", "1"), untruncated)
    np.testing.assert_array_equal(run("--trunc", "0.7"), truncated)
    from_g = run("--network", "G", "--trunc", "1")
    np.testing.assert_array_equal(
        from_g, generators.from_network(loaded.G, noise="const").images_for_seeds(seeds))
    assert not np.array_equal(from_g, untruncated)


@pytest.mark.parametrize("case, message", [
    ("trunc_progan", "--trunc: this model has no truncation"),
    ("network_without_pickle", "--network applies to --pickle only"),
    ("not_a_pickle", "--pickle: not-a-pickle.pkl: not a pickle"),
])
def test_bad_pickle_input_is_one_line(official_pickles, models, tmp_path, capsys, case,
                                      message):
    not_a_pickle = tmp_path / "not-a-pickle.pkl"
    not_a_pickle.write_bytes(b"\x00garbage")
    argv = {
        "trunc_progan": ["--pickle", official_pickles["progan"], "--trunc", "0.5"],
        "network_without_pickle": ["--saved_model", models["version_dir"], "--network", "G"],
        "not_a_pickle": ["--pickle", str(not_a_pickle)],
    }[case]
    assert generate.main(argv + ["--seeds", "1", "--out_dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert message in err[-1], err
    assert not (tmp_path / "out").exists()


def test_progan_pickle_renders_gs_at_its_resolution(official_pickles, tmp_path):
    from progan_tf import official

    gs = official.load(official_pickles["progan"]).Gs
    assert generate.main(["--pickle", official_pickles["progan"], "--seeds", "0-3", "--grid",
                          "2x2", "--out_dir", str(tmp_path)]) == 0
    images = generators.from_network(gs).images_for_seeds([0, 1, 2, 3])
    np.testing.assert_array_equal(read_png(tmp_path / "grid.png"), image_grid(images, (2, 2)))


def test_pickle_mid_growth_renders_at_its_lod_with_its_stored_psi_and_cutoff(tmp_path):
    from progan_tf import official

    path = os.path.join(REPO, "tests", "fixtures", "official", "stylegan_32_lod1_3.pkl")
    loaded = official.load(path)  # made by NVIDIA's code: lod 1.3, psi 0.6 and cutoff 3 stored
    assert (loaded.truncation_psi, loaded.truncation_cutoff) == (0.6, 3)
    gs = generators.from_network(loaded.Gs, resolution=16, noise="const")
    expected = gs.images_for_dlatents(gs.dlatents_for_seeds([5], truncation_psi=0.6, cutoff=3))
    other_cutoff = gs.images_for_dlatents(gs.dlatents_for_seeds([5], truncation_psi=0.6,
                                                                cutoff=8))
    assert not np.array_equal(expected, other_cutoff)
    assert generate.main(["--pickle", path, "--seeds", "5", "--out_dir", str(tmp_path)]) == 0
    image = read_png(tmp_path / "seed0005.png")
    assert image.shape == (16, 16, 3)  # 32 / 2^floor(1.3)
    np.testing.assert_array_equal(image, expected[0])
