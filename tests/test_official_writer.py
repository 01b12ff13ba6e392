"""tests/official_writer.py, the synthetic NVIDIA-layout pickles of the --init_from, generate and
metrics tests and of bench/import_official.py, against what `progan_tf.official.load` expects:
every stored variable lands in one of our weights and maps back to the stored value, for ProGAN
(fused, unfused, labels, grayscale, fractional lods) and StyleGAN, in protocols 2, 4 and 5; and
the benchmark runs end to end on a narrow network."""

import json
import os
import pickletools
import subprocess
import sys

import numpy as np
import pytest

import official_writer
from progan_tf import official

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = {
    "progan_fused_labels": (official_writer.progan_states, dict(
        num_channels=3, resolution=16, label_size=3, fmap_base=64, fmap_max=16,
        fused_scale=True), 0.0, 0.0, 4, True),
    "progan_celebahq_layout": (official_writer.progan_states, dict(
        official_writer.PROGAN_CELEBAHQ, num_channels=1, resolution=32, fmap_base=64,
        fmap_max=16, latent_size=24), 1.3, 0.7, 2, True),
    "stylegan": (official_writer.stylegan_states, dict(
        num_channels=3, resolution=16, fmap_base=64, fmap_max=16, latent_size=16,
        dlatent_size=16, mapping_layers=3, mapping_fmaps=8), 0.0, 0.0, 4, True),
    "stylegan_fused_numpy2": (official_writer.stylegan_states, dict(
        num_channels=3, resolution=16, fmap_base=64, fmap_max=16, latent_size=16,
        dlatent_size=16, mapping_layers=2, mapping_fmaps=16, fused_scale=True), 0.5, 0.5, 5,
        False),
}


def stored_variables(network):
    """{name as official's name_maps spell it: value} of a writer network (components as
    "<component name>/<local name>")."""
    out = dict(network.state["variables"])
    for component in network.state.get("components", {}).values():
        out.update((f"{component.state['name']}/{name}", value)
                   for name, value in stored_variables(component).items())
    return out


@pytest.mark.parametrize("case", CASES)
def test_every_written_variable_lands_in_one_weight_and_maps_back(case, tmp_path):
    make_states, kwargs, lod, d_lod, protocol, numpy_core = CASES[case]
    states = make_states(kwargs, lod=lod, d_lod=d_lod, seed=1)
    path = tmp_path / f"{case}.pkl"
    official_writer.write_pickle(path, states, protocol=protocol, numpy_core=numpy_core)
    globals_named = {arg for opcode, arg, _ in pickletools.genops(path.read_bytes())
                     if opcode.name in ("GLOBAL", "SHORT_BINUNICODE") and arg
                     and arg.startswith("numpy.")}
    assert {name.split(".")[1] for name in globals_named} == {"core" if numpy_core else "_core"}
    loaded = official.load(path)
    assert loaded.architecture == case.split("_")[0]
    assert dict(loaded.lods) == pytest.approx({"G": lod, "D": d_lod, "Gs": lod})
    for name, network in zip(official.NETWORKS, states):
        stored = stored_variables(network)
        ours = {weight.path: weight.numpy() for weight in loaded.network(name).weights}
        back = loaded.to_original(name, ours)
        assert set(back) == {key for key in stored if key.split("/")[-1] != "lod"}, name
        for key, value in back.items():
            np.testing.assert_array_equal(value, stored[key], err_msg=f"{name} {key}")
    assert loaded.static_kwargs["D"] == states[1].state["static_kwargs"]


def test_weights_bytes_count_every_stored_value():
    states = official_writer.progan_states(dict(resolution=8, fmap_base=32, fmap_max=16))
    expected = sum(np.asarray(value).nbytes for network in states
                   for _, value in network.state["variables"])
    assert official_writer.weights_bytes(states) == expected
    # G_paper's defaults: 1 channel, latent nf(0) = 16; 16 maps at 4x4, 8 at 8x8, fused.
    # lod, dense 16 -> 16x4x4 + bias, 4x4 conv, toRGB, 8x8 Conv0_up, Conv1, toRGB.
    assert sum(np.asarray(value).size for _, value in states[0].state["variables"]) == (
        1 + 16 * 256 + 16 + (9 * 16 * 16 + 16) + (16 + 1) + (9 * 16 * 8 + 8) + (9 * 8 * 8 + 8)
        + (8 + 1))


def test_benchmark_loads_and_exports_a_narrow_progan_file(tmp_path):
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", "import_official.py"), "--architecture",
         "progan", "--resolution", "16", "--fmap_max", "16", "--work_dir", str(tmp_path),
         "--json"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["architecture"] == "progan" and result["load_sec"] > 0
    assert result["rss_after_load"] > result["rss_after_import"] > 0
    assert "official.load" in done.stdout and "targets:" in done.stdout
    with open(os.path.join(result["export"], "assets.extra", "serving_meta.json")) as file:
        meta = json.load(file)
    assert meta["source"]["file"] == "progan-16.pkl"
    assert meta["source"]["bytes"] == result["file_bytes"]
