"""Metric runs end to end (progan_tf/metrics/evaluate.py, base.py, sources.py, __main__.py and
the generator adapter progan_tf/generators.py): a tiny dataset pyramid, a stand-in SavedModel with
the export signature, the registry, the command line, and the records it writes (metrics.jsonl,
TensorBoard Metrics/<name>)."""

import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from data_tools.pyramid import PyramidWriter
from progan_tf import generators
from progan_tf.metrics import base, evaluate, sources
from progan_tf.utils.images import to_uint8

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LATENT_SIZE = 8
SIZE = 16
NUM_REALS = 24


def reals_array(count=NUM_REALS, channels=3):
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (count, SIZE // 4, SIZE // 4, channels))
    return np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2).astype(np.uint8)  # NHWC


def write_pyramid(directory, images, labels=None):
    with PyramidWriter(directory) as writer:
        writer.add(images.transpose(0, 3, 1, 2))  # the writer takes [B, C, R, R]
        if labels is not None:
            writer.set_labels(labels)
        writer.commit()
    return str(directory)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_pyramid(tmp_path_factory.mktemp("data") / "tiny", reals_array())


def export_stand_in(path, with_styles=False):
    """A SavedModel with the export contract: serving_default(latents [N, 8]) -> images uint8,
    images_float; optionally mapping (latents -> dlatents [N, 2, 8]) and synthesis."""
    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(SIZE * SIZE * 3, name="to_pixels")
    dense.build((None, LATENT_SIZE))

    def synthesize(dlatents):
        x = tf.tanh(dense(tf.reduce_mean(dlatents, axis=1)))
        return tf.reshape(x, [-1, SIZE, SIZE, 3])

    def outputs(x):
        return {"images": tf.cast(tf.clip_by_value(tf.round(x * 127.5 + 127.5), 0, 255), tf.uint8),
                "images_float": x}

    archive = keras.export.ExportArchive()
    archive.track(dense)
    latents = tf.TensorSpec([None, LATENT_SIZE], tf.float32, name="latents")
    dlatents = tf.TensorSpec([None, 2, LATENT_SIZE], tf.float32, name="dlatents")
    archive.add_endpoint("serving_default",
                         lambda z: outputs(synthesize(tf.stack([z, z], axis=1))),
                         input_signature=[latents])
    if with_styles:
        archive.add_endpoint("mapping", lambda z: {"dlatents": tf.stack([z, 2 * z], axis=1)},
                             input_signature=[latents])
        archive.add_endpoint("synthesis", lambda w: outputs(synthesize(w)),
                             input_signature=[dlatents])
    archive.write_out(str(path), verbose=False)
    return str(path)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    return export_stand_in(tmp_path_factory.mktemp("export") / "generator" / "1")


def replaying_generator(images, latent_size=LATENT_SIZE):
    """GeneratorFns that hands out `images` in order, whatever the latents (a perfect GAN)."""
    position = [0]

    def images_fn(latents, labels=None):
        start = position[0]
        position[0] += len(latents)
        return images[np.arange(start, start + len(latents)) % len(images)]

    return generators.GeneratorFns(latent_size=latent_size, images_float=None, images=images_fn)


def test_real_images_come_in_record_order_and_wrap_around(data_dir):
    reals = sources.RealImages(data_dir)
    assert (reals.resolution, reals.num_channels, reals.num_images) == (SIZE, 3, NUM_REALS)
    batches = list(reals.batches(30, batch_size=8, start=20))
    assert [len(b) for b in batches] == [8, 8, 8, 6]
    expected = reals_array()[np.arange(20, 50) % NUM_REALS]
    np.testing.assert_array_equal(np.concatenate(batches), expected)


def test_mirrored_reals_flip_about_half_of_the_images(data_dir):
    images = np.concatenate(list(sources.RealImages(data_dir, mirror=True, seed=3).batches(24)))
    original = reals_array()
    flipped = [not np.array_equal(a, b) for a, b in zip(images, original)]
    for image, source, was_flipped in zip(images, original, flipped):
        np.testing.assert_array_equal(image, source[:, ::-1] if was_flipped else source)
    assert 4 <= sum(flipped) <= 20


def test_bad_data_dir_names_the_directory(tmp_path):
    with pytest.raises(sources.SourceError, match="no .tfrecords"):
        sources.RealImages(str(tmp_path))


def test_saved_model_generator_follows_the_export_contract(saved_model):
    generator = generators.from_saved_model(os.path.dirname(saved_model))  # picks 1/
    assert generator.latent_size == LATENT_SIZE and generator.label_size == 0
    assert generator.mapping is None and generator.synthesis is None
    latents = np.random.default_rng(0).normal(size=(3, LATENT_SIZE)).astype(np.float32)
    images = generator.images(latents)
    assert images.shape == (3, SIZE, SIZE, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, to_uint8(generator.images_float(latents)))


def test_not_a_saved_model_is_reported(tmp_path):
    with pytest.raises(generators.GeneratorError, match="not a SavedModel"):
        generators.from_saved_model(str(tmp_path))


def test_metrics_of_a_generator_that_replays_the_reals(data_dir):
    # Fakes identical to the reals, in the same order: SWD and FID are 0 and MS-SSIM agrees.
    reals = sources.RealImages(data_dir)
    features = lambda images: images.reshape(len(images), -1)[:, ::97].astype(np.float64)
    results = evaluate.compute_metrics(
        ["swd", "fid", "ms_ssim", "ms_ssim_reals"], generator=replaying_generator(reals_array()),
        reals=reals, num=NUM_REALS, batch_size=5, feature_fn=features, progress_stream=None)
    assert list(results) == ["swd", "fid", "ms_ssim", "ms_ssim_reals"]
    assert set(results["swd"].values) == {"SWDx1e3_16", "SWDx1e3_avg"}
    assert results["swd"].values == {"SWDx1e3_16": 0.0, "SWDx1e3_avg": 0.0}
    assert results["fid"].value == pytest.approx(0.0, abs=1e-6)
    assert results["ms_ssim"].value == pytest.approx(results["ms_ssim_reals"].value, rel=1e-12)
    assert 0 < results["ms_ssim"].value < 1
    assert results["fid"].num == NUM_REALS and results["fid"].seconds > 0


def test_swd_noise_floor_compares_two_different_windows_of_reals(data_dir):
    reals = sources.RealImages(data_dir)
    results = evaluate.compute_metrics(["swd_reals"], reals=reals, num=12, progress_stream=None)
    assert set(results["swd_reals"].values) == {"SWDx1e3_reals_16", "SWDx1e3_reals_avg"}
    assert results["swd_reals"].value > 0


def test_ppl_z_runs_on_any_generator_and_w_needs_mapping(saved_model, tmp_path):
    generator = generators.from_saved_model(saved_model)
    mse = lambda a, b: np.mean(np.square(a - b), axis=(1, 2, 3))
    results = evaluate.compute_metrics(["ppl_zend"], generator=generator, num=6, batch_size=4,
                                       ppl_crop=False, distance_fn=mse, progress_stream=None)
    assert results["ppl_zend"].value > 0
    with pytest.raises(evaluate.MetricsError, match="StyleGAN"):
        evaluate.compute_metrics(["ppl_wfull"], generator=generator, num=4, distance_fn=mse)
    styled = generators.from_saved_model(export_stand_in(tmp_path / "styled", with_styles=True))
    results = evaluate.compute_metrics(["ppl_wfull"], generator=styled, num=6, batch_size=4,
                                       ppl_crop=False, distance_fn=mse, progress_stream=None)
    assert results["ppl_wfull"].value > 0


def test_requests_missing_an_input_are_refused_with_the_flag_to_give(data_dir):
    with pytest.raises(evaluate.MetricsError, match="--data_dir"):
        evaluate.compute_metrics(["swd"], generator=replaying_generator(reals_array()))
    with pytest.raises(evaluate.MetricsError, match="--saved_model, --run_dir or --pickle"):
        evaluate.compute_metrics(["ms_ssim"], reals=sources.RealImages(data_dir))
    with pytest.raises(evaluate.MetricsError, match="unknown metric"):
        evaluate.parse_metric_names("fid,is")


def test_results_are_appended_as_json_lines_and_written_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = {
        "swd": evaluate.MetricResult("swd", {"SWDx1e3_16": 3.0, "SWDx1e3_avg": 3.0}, 8, 1.5),
        "fid": evaluate.MetricResult("fid", {"fid": 12.5}, 8, 2.0),
    }
    path = str(tmp_path / "run" / "metrics.jsonl")
    evaluate.append_jsonl(path, results, kimg=120.0, extra={"generator": "g"})
    evaluate.append_jsonl(path, {"fid": results["fid"]}, kimg=240.0)
    with open(path) as lines:
        records = [json.loads(line) for line in lines]
    assert [r["metric"] for r in records] == ["swd", "fid", "fid"]
    assert records[0]["value"] == 3.0 and records[0]["SWDx1e3_16"] == 3.0
    assert records[1]["kimg"] == 120.0 and records[2]["kimg"] == 240.0
    assert records[1]["num"] == 8 and records[1]["time"] == 2.0 and records[0]["generator"] == "g"

    evaluate.write_tensorboard(str(tmp_path / "logs"), results, step=120)
    events = EventAccumulator(str(tmp_path / "logs"), size_guidance={"tensors": 0})
    events.Reload()
    assert {"Metrics/SWDx1e3_16", "Metrics/SWDx1e3_avg", "Metrics/fid"} <= set(
        events.Tags()["tensors"])
    (event,) = events.Tensors("Metrics/fid")
    assert event.step == 120 and tf.make_ndarray(event.tensor_proto) == pytest.approx(12.5)


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "progan_tf.metrics", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_command_line_prints_appends_and_logs(data_dir, saved_model, tmp_path):
    results_file, log_dir = tmp_path / "metrics.jsonl", tmp_path / "logs"
    done = run_cli("--metrics", "swd,ms_ssim,swd_reals", "--num", "8", "--batch_size", "4",
                   "--data_dir", data_dir, "--saved_model", saved_model, "--kimg", "12",
                   "--results_file", str(results_file), "--tensorboard_dir", str(log_dir))
    assert done.returncode == 0, done.stderr
    assert "SWDx1e3_16" in done.stdout and "ms_ssim" in done.stdout
    assert "img/s" in done.stderr  # progress lines
    records = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert [r["metric"] for r in records] == ["swd", "ms_ssim", "swd_reals"]
    assert all(r["kimg"] == 12.0 and r["num"] == 8 for r in records)
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(log_dir))


def test_command_line_errors_are_one_line(data_dir):
    done = run_cli("--metrics", "swd", "--saved_model", "/nonexistent/model")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr  # TensorFlow's own start-up lines may precede ours
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --saved_model: /nonexistent/model does not exist")


PROGAN_TINY = dict(resolution=16, num_channels=3, fmap_base=32, fmap_max=16)  # latent_size 16
STYLEGAN_TINY = dict(resolution=16, fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16,
                     mapping_fmaps=16)


def test_in_memory_progan_generator_gives_its_models_images():
    from progan_tf.networks import Generator

    network = Generator(**PROGAN_TINY)
    generator = sources.generator_from_network(network)
    latents = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    expected = network.model_for(16)(latents).numpy()
    np.testing.assert_allclose(generator.images_float(latents), expected, atol=1e-6)
    np.testing.assert_array_equal(generator.images(latents), to_uint8(expected))
    assert generator.mapping is None and generator.synthesis is None


def test_stylegan_fakes_draw_fresh_noise_and_ppl_synthesis_renders_the_stored_noise():
    from progan_tf.networks.stylegan import StyleGenerator

    network = StyleGenerator(**STYLEGAN_TINY)
    for res in (8, 16):  # give the noise inputs some weight so the noise shows in the images
        noise = getattr(network, f"block_{res}x{res}").noise0
        noise.weight.assign(np.full(noise.weight.shape, 0.5, "float32"))
    generator = sources.generator_from_network(network)
    latents = np.random.default_rng(1).normal(size=(2, 16)).astype(np.float32)
    dlatents = generator.mapping(latents)
    assert dlatents.shape == (2, network.num_layers, 16)
    # PPL: both ends of a pair see the same noise, so the same w renders the same image.
    np.testing.assert_array_equal(generator.synthesis(dlatents), generator.synthesis(dlatents))
    np.testing.assert_allclose(generator.synthesis(dlatents),
                               network.synthesis_model_for(16, noise="const")(dlatents),
                               rtol=1e-5, atol=1e-5)
    # FID (StyleGAN's protocol): every fake gets fresh noise.
    assert not np.allclose(generator.images_float(latents), generator.images_float(latents))
    # The network itself is left as it was: its inference rendering stays deterministic.
    np.testing.assert_array_equal(network.model_for(16)(latents), network.model_for(16)(latents))


def test_run_directory_generator_is_restored_from_the_checkpoint(tmp_path):
    from progan_tf.networks import Generator

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trained = Generator(**PROGAN_TINY)
    (run_dir / "network.json").write_text(json.dumps(
        {"architecture": "progan", "generator": trained.get_config()}))
    state = tf.Module()
    state.images_seen = tf.Variable(24000, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(generator_ema=trained, state=state),
                                         str(run_dir / "checkpoints"), 1)
    manager.save()
    generator, kimg = sources.generator_from_run_dir(str(run_dir))
    assert kimg == pytest.approx(24.0)
    latents = np.random.default_rng(2).normal(size=(2, 16)).astype(np.float32)
    np.testing.assert_allclose(generator.images_float(latents),
                               trained.model_for(16)(latents).numpy(), atol=1e-6)
    with pytest.raises(generators.GeneratorError, match="network.json"):
        sources.generator_from_run_dir(str(tmp_path))


def test_progress_lines_show_counts_percent_and_rate_and_end_once(data_dir):
    stream = io.StringIO()  # not a terminal: one plain line per 10 s, and the final one
    evaluate.compute_metrics(["ms_ssim_reals"], reals=sources.RealImages(data_dir), num=10,
                             batch_size=2, progress_stream=stream)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reals")
    assert "10 / 10" in lines[0] and "100.0%" in lines[0] and "img/s" in lines[0]


def test_a_registered_metric_gets_its_windows_of_the_shared_passes(data_dir, monkeypatch):
    seen = {"reals": [], "fakes": []}

    def plan(request):
        return base.Plan(reals=[base.Window(2, request.num, seen["reals"].append)],
                         fakes=[base.Window(0, request.num, seen["fakes"].append)],
                         finish=lambda: {"count": len(seen["reals"])})

    monkeypatch.setitem(evaluate.METRICS, "count", base.Metric(
        "count", 4, "test metric", plan, needs_reals=True, needs_generator=True))
    results = evaluate.compute_metrics("count", reals=sources.RealImages(data_dir),
                                       generator=replaying_generator(reals_array()[::-1]),
                                       batch_size=3, progress_stream=None, num=None)
    np.testing.assert_array_equal(np.concatenate(seen["reals"]), reals_array()[2:6])
    np.testing.assert_array_equal(np.concatenate(seen["fakes"]), reals_array()[::-1][:4])
    assert results["count"].num == 4 and results["count"].value == len(seen["reals"])


# ---------------------------------------------------------------------------------------------
# --pickle: an official NVIDIA pickle (NVIDIA's layout, written by tests/official_writer.py).

STYLEGAN_PICKLE = dict(num_channels=3, resolution=SIZE, fmap_base=64, fmap_max=16,
                       latent_size=16, dlatent_size=16, mapping_layers=2, mapping_fmaps=16)


@pytest.fixture(scope="module")
def stylegan_pickle(tmp_path_factory):
    import official_writer

    path = tmp_path_factory.mktemp("official") / "stylegan-16.pkl"
    official_writer.write_pickle(path, official_writer.stylegan_states(STYLEGAN_PICKLE, seed=7))
    return str(path)


def test_pickle_fakes_draw_fresh_noise_untruncated_unless_a_psi_is_given(stylegan_pickle):
    from progan_tf import official
    from progan_tf.networks.stylegan import truncate

    gs = official.load(stylegan_pickle).Gs
    latents = np.random.default_rng(3).normal(size=(2, 16)).astype(np.float32)
    fakes = generators.from_pickle(stylegan_pickle, noise="random")  # what metrics use
    assert fakes.default_truncation_psi == 0.7  # stored, but not applied to the fakes
    # FID (StyleGAN's protocol): every fake gets fresh noise; PPL's synthesis the stored noise.
    assert not np.allclose(fakes.images_float(latents), fakes.images_float(latents))
    dlatents = fakes.mapping(latents)
    np.testing.assert_allclose(fakes.synthesis(dlatents),
                               gs.synthesis_model_for(SIZE, noise="const")(dlatents),
                               rtol=1e-5, atol=1e-5)
    # Untruncated by default (compared with the stored noise, which is deterministic) ...
    stored_noise = generators.from_pickle(stylegan_pickle, noise="const")
    np.testing.assert_allclose(stored_noise.images_float(latents),
                               gs.model_for(SIZE, noise="const")(latents), rtol=1e-5, atol=1e-5)
    # ... and truncated below the stored cutoff by the psi asked for.
    truncated = generators.from_pickle(stylegan_pickle, noise="const", truncation_psi=0.5)
    expected = gs.synthesis_model_for(SIZE, noise="const")(
        truncate(gs.mapping_model()(latents), gs.dlatent_avg, 0.5, 8))
    np.testing.assert_allclose(truncated.images_float(latents), expected, rtol=1e-5, atol=1e-5)
    assert np.abs(truncated.images_float(latents) - stored_noise.images_float(latents)).max() > 0.1


def test_command_line_measures_a_pickle_and_names_it(data_dir, saved_model, stylegan_pickle,
                                                    tmp_path):
    results_file = tmp_path / "metrics.jsonl"
    done = run_cli("--metrics", "swd", "--num", "8", "--batch_size", "4", "--data_dir",
                   data_dir, "--pickle", stylegan_pickle, "--results_file", str(results_file))
    assert done.returncode == 0, done.stderr
    assert "SWDx1e3_16" in done.stdout
    (record,) = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert record["generator"] == "stylegan-16.pkl (Gs)" and record["num"] == 8
    done = run_cli("--metrics", "swd", "--data_dir", data_dir, "--pickle", stylegan_pickle,
                   "--saved_model", saved_model)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --saved_model and --pickle exclude each other: give one generator")
