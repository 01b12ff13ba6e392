"""python -m progan_tf.import_official: an official pickle (synthetic, tests/official_writer.py)
to the SavedModel layout, signatures and serving_meta.json of `python -m exports`, with the
source file, its kwargs and StyleGAN's stored truncation; errors in one line; `generate`
defaulting to the stored psi. (Parity with the original's images: tests/test_official.py.)"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import official_writer as writer
from progan_tf import generate
from progan_tf import official
from progan_tf.networks import truncate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300
STYLEGAN = dict(num_channels=3, resolution=16, label_size=0, fmap_base=64, fmap_max=8,
                latent_size=8, dlatent_size=8, mapping_layers=2, mapping_fmaps=8,
                truncation_psi=0.5, truncation_cutoff=3)


def run(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "progan_tf.import_official", *map(str, args)],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A StyleGAN file (truncation psi 0.5, cutoff 3 stored) imported by the command line."""
    directory = tmp_path_factory.mktemp("import")
    path = directory / "stylegan-test-16x16.pkl"
    writer.write_pickle(path, writer.stylegan_states(STYLEGAN, seed=5), protocol=4)
    result = run(path, "--out_dir", directory / "serving", "--model_name", "faces")
    assert result.returncode == 0, result.stderr
    return path, result, official.load(path)


def test_the_export_has_the_exports_layout_and_prints_its_directory(imported):
    path, result, _ = imported
    version_dir = result.stdout.strip().splitlines()[-1]
    assert version_dir == str(path.parent / "serving" / "faces" / "1")
    for entry in ("saved_model.pb", "variables", os.path.join("assets.extra",
                                                               "serving_meta.json")):
        assert os.path.exists(os.path.join(version_dir, entry)), entry
    assert f"Reading {path.name}: " in result.stderr  # the progress line


def test_serving_meta_records_the_source_its_kwargs_and_the_stored_truncation(imported):
    path, result, _ = imported
    version_dir = result.stdout.strip().splitlines()[-1]
    with open(os.path.join(version_dir, "assets.extra", "serving_meta.json")) as file:
        meta = json.load(file)
    assert meta["source"] == {"file": path.name, "bytes": path.stat().st_size,
                              "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                              "network": "Gs", "build_func": "G_style"}
    assert meta["static_kwargs"] == STYLEGAN
    assert (meta["truncation_psi"], meta["truncation_cutoff"]) == (0.5, 3)
    assert meta["architecture"] == "stylegan" and meta["resolution"] == 16 and meta["lod"] == 0
    assert meta["generator_config"]["truncation_cutoff"] == 3
    assert set(meta["signatures"]) == {"serving_default", "generate_seeds", "mapping",
                                       "synthesis"}
    assert set(meta["signatures"]["generate_seeds"]["inputs"]) == {"seeds", "truncation_psi"}


def test_signatures_render_the_gs_of_the_file_truncating_below_the_stored_cutoff(imported):
    _, result, nets = imported
    model = tf.saved_model.load(result.stdout.strip().splitlines()[-1])
    latents = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    dlatents = nets.Gs.mapping_model()(latents)
    synthesis = nets.Gs.synthesis_model_for(16, noise="const")
    untruncated = model.signatures["serving_default"](latents=tf.constant(latents))
    np.testing.assert_allclose(untruncated["images_float"],
                               np.clip(synthesis(dlatents), -1, 1), atol=1e-5)
    mapped = model.signatures["mapping"](latents=tf.constant(latents))
    np.testing.assert_allclose(mapped["dlatents"], dlatents, atol=1e-5)
    seeds = model.signatures["generate_seeds"](seeds=tf.constant([1, 2], tf.int64),
                                               truncation_psi=tf.constant([0.5, 0.5]))
    w = nets.Gs.mapping_model()(seeds["latents"])
    expected = synthesis(truncate(w, nets.Gs.dlatent_avg, 0.5, 3))
    np.testing.assert_allclose(seeds["images_float"], np.clip(expected, -1, 1), atol=1e-5)
    default_cutoff = synthesis(truncate(w, nets.Gs.dlatent_avg, 0.5))
    assert np.abs(np.asarray(default_cutoff) - np.asarray(expected)).max() > 1e-3


def test_generate_defaults_to_the_stored_psi_and_cutoff(imported, tmp_path):
    _, result, nets = imported
    version_dir = result.stdout.strip().splitlines()[-1]
    model = generate.load_saved_model(os.path.dirname(version_dir))
    assert (model.default_truncation_psi, model.truncation_cutoff) == (0.5, 3)
    out = tmp_path / "out"
    assert generate.main(["--saved_model", version_dir, "--seeds", "1,2", "--out_dir",
                          str(out)]) == 0
    stored = model.images_for_seeds([1, 2], truncation_psi=0.5)
    untruncated = model.images_for_seeds([1, 2], truncation_psi=1.0)
    from PIL import Image

    written = np.stack([np.asarray(Image.open(out / f"seed000{seed}.png")) for seed in (1, 2)])
    np.testing.assert_array_equal(written, stored)
    assert np.abs(written.astype(int) - untruncated.astype(int)).max() > 0
    # Style mixing truncates its styles below the stored cutoff too.
    mixed = model.dlatents_for_seeds([1], truncation_psi=0.0)
    avg = model.dlatent_avg()
    np.testing.assert_allclose(mixed[0, :3], np.tile(avg, (3, 1)), atol=1e-6)
    assert np.abs(mixed[0, 3:] - avg).max() > 1e-3


def test_an_export_without_stored_truncation_keeps_no_default(tmp_path):
    from progan_tf.generators import GeneratorFns

    version = tmp_path / "1" / "assets.extra"
    version.mkdir(parents=True)
    (version / "serving_meta.json").write_text(json.dumps({"generator_config": {}}))
    model = GeneratorFns(latent_size=2, images_float=None, has_truncation=True)
    assert generate.with_stored_truncation(model, str(tmp_path / "1")) is model
    (version / "serving_meta.json").write_text(json.dumps(
        {"generator_config": {"truncation_cutoff": 4}}))  # a trained run's non-default cutoff
    changed = generate.with_stored_truncation(model, str(tmp_path / "1"))
    assert (changed.default_truncation_psi, changed.truncation_cutoff) == (None, 4)


def test_a_bad_file_fails_with_one_error_line_and_writes_no_model(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04garbage")
    result = run(path, "--out_dir", tmp_path / "serving")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines()
             if line.startswith("python -m progan_tf.import_official: error: model.pkl: ")]
    assert len(lines) == 1, result.stderr
    assert not (tmp_path / "serving").exists()


def test_an_unsupported_kwarg_stops_the_import_before_writing(tmp_path):
    from progan_tf import import_official

    path = tmp_path / "model.pkl"
    writer.write_pickle(path, writer.progan_states(dict(num_channels=3, resolution=8,
                                                        fmap_base=32, fmap_max=8,
                                                        use_wscale=False)))
    with pytest.raises(official.OfficialFormatError, match="use_wscale=False"):
        import_official.import_official(path, tmp_path / "serving")
    assert not (tmp_path / "serving").exists()


def test_flags_are_checked_before_any_work(tmp_path):
    result = run("--out_dir", tmp_path)
    assert result.returncode != 0 and "expected one pickle file" in result.stderr
    result = run(tmp_path / "x.pkl")
    assert result.returncode != 0 and "--out_dir is required" in result.stderr
    result = run(tmp_path / "x.pkl", "--out_dir", tmp_path, "--network", "D")
    assert result.returncode != 0 and "network" in result.stderr
