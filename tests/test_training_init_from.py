"""--init_from: fine-tuning from an official NVIDIA pickle. Where the schedule starts for the
pickle's lod, the network flags it fixes (one warning line), the dataset checks that stop a run
before its directory exists, the weights G, D and the EMA generator start from, a few ticks of
fine-tuning whose export still renders close to the imported Gs, and a resume that reads the
run directory with the pickle gone.

The pickles are tests/fixtures/official/'s, written by NVIDIA's original code."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import training_common
from progan_tf import config, generators, official
from progan_tf import schedule as schedule_lib
from progan_tf.training import init_from, loop
from progan_tf.training.sources import InMemorySource
from progan_tf.training.steps import GanTrainer
from progan_tf.utils import safe_pickle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "official")
# The official CelebA-HQ layout (unfused, stddev groups of 16), 32x32 grayscale, 10 labels,
# latent 20, 12 maps at most; lod 0.
CONDITIONAL = os.path.join(FIXTURES, "progan_unfused_gray_labels.pkl")
# StyleGAN 32x32, a mid-growth snapshot at lod 1.3.
STYLEGAN_LOD_1_3 = os.path.join(FIXTURES, "stylegan_32_lod1_3.pkl")
FULLY_GROWN_NIMG = 96  # training_common's schedule: 16 + 16 images per resolution, 4 -> 32


def labelled_source(resolution=32, channels=1, num_labels=10, num=32):
    """Tiny images with one-hot labels cycling through `num_labels` classes (0: none)."""
    labels = None
    if num_labels:
        labels = np.eye(num_labels, dtype=np.float32)[np.arange(num) % num_labels]
    return InMemorySource(training_common.tiny_images(num, resolution, channels), labels=labels)


# ---------------------------------------------------------------------------------------------
# Pure parts: schedule, flags, data.


def test_schedule_starts_where_it_reaches_the_pickles_lod():
    schedule = schedule_lib.Schedule(resolution=16, training_kimg=0.6, transition_kimg=0.4)
    assert init_from.start_nimg(schedule, 0.0) == 2000  # fully grown, as resume_kimg does
    assert init_from.start_nimg(schedule, 1.0) == 1000  # 8x8 starts stabilising
    assert init_from.start_nimg(schedule, 2.0) == 0
    assert init_from.start_nimg(schedule, 1.5) == 800  # halfway through the fade to 8x8
    assert init_from.start_nimg(schedule, 0.25) == 1900
    for lod in (0.0, 1.0, 1.5, 0.25):
        assert schedule.lod_at(init_from.start_nimg(schedule, lod) / 1000) == pytest.approx(lod)
    rosinality = schedule_lib.RosinalitySchedule(resolution=16, training_kimg=0.6,
                                                 transition_kimg=0.4)
    start = init_from.start_nimg(rosinality, 0.0)
    assert rosinality.lod_at(start / 1000) == 0.0 < rosinality.lod_at((start - 1) / 1000)


@pytest.mark.parametrize("lod, changes, message", [
    (2.5, {}, "comes before the schedule's first resolution"),
    (0.5, dict(transition_kimg=0.0), "never reaches the pickle's lod 0.5"),
    (0.0, dict(total_kimg=1.5), "--total_kimg: 1.5 ends before"),
])
def test_a_lod_the_run_cannot_start_from_is_an_error(lod, changes, message):
    total_kimg = changes.pop("total_kimg", None)
    schedule = schedule_lib.Schedule(**dict(dict(resolution=16, training_kimg=0.6,
                                                 transition_kimg=0.4), **changes))
    with pytest.raises(ValueError, match=message):
        init_from.start_nimg(schedule, lod, total_kimg)


def stylegan_init():
    """An InitFrom as a StyleGAN pickle gives it (no file needed for the flag logic)."""
    generator = dict(name="generator", trainable=True, resolution=16, num_channels=3,
                     label_size=0, fmap_base=64, fmap_decay=1.0, fmap_max=16, latent_size=16,
                     dlatent_size=16, mapping_layers=2, mapping_fmaps=16, mapping_lrmul=0.01)
    discriminator = dict(name="discriminator", trainable=True, resolution=16, num_channels=3,
                         label_size=0, fmap_base=64, fmap_decay=1.0, fmap_max=16,
                         mbstd_group_size=4, mbstd_num_features=1, mbstd_grouping="strided",
                         blur_filter=[1, 2, 1])
    return init_from.InitFrom("ffhq.pkl", "stylegan", generator, discriminator)


def test_network_flags_come_from_the_pickle_and_differing_given_ones_make_one_warning():
    cfg = config.TrainConfig(data_dir="data", init_from="ffhq.pkl", fmap_base=128,
                             mbstd_group_size=16, mapping_layers=2, total_kimg=5.0)
    given = {"data_dir", "init_from", "fmap_base", "mbstd_group_size", "mapping_layers",
             "total_kimg"}
    configured, warning = init_from.configure(cfg, stylegan_init(), given)
    assert warning.count("\n") == 0 and warning.startswith("warning: --init_from:")
    assert "--fmap_base=128 (the pickle has 64)" in warning
    assert "--mbstd_group_size=16 (the pickle has 4)" in warning
    assert "mapping_layers" not in warning  # given, but the same as the pickle's
    assert "architecture" not in warning and "total_kimg" not in warning  # not given / no net
    assert (configured.architecture, configured.fmap_base, configured.mbstd_group_size,
            configured.mbstd_grouping, configured.latent_size) == ("stylegan", 64, 4, "strided",
                                                                   16)
    # Flags not given take the pickle's architecture's presets; given ones stay.
    assert (configured.loss, configured.lod_initial_resolution) == ("logistic_r1", 8)
    assert configured.total_kimg == 5.0
    _, warning = init_from.configure(cfg.replace(architecture="progan"), stylegan_init(),
                                     given | {"architecture"})
    assert "--architecture=progan (the pickle has stylegan)" in warning
    _, warning = init_from.configure(cfg.replace(fmap_base=64, mbstd_group_size=4),
                                     stylegan_init(), given)
    assert warning is None
    # --use_labels of an unconditional file: named, and off (the dataset's labels go unused).
    configured, warning = init_from.configure(cfg.replace(fmap_base=64, mbstd_group_size=4,
                                                          use_labels=True),
                                              stylegan_init(), given | {"use_labels"})
    assert warning.endswith("ignoring --use_labels=true (the pickle is unconditional)")
    assert configured.use_labels is False


@pytest.mark.parametrize("data, message", [
    ((8, 3, 0), "holds 16x16 networks; the dataset data is 8x8"),
    ((16, 1, 0), "holds networks of 3 image channel(s); the dataset data has 1"),
])
def test_data_that_does_not_fit_the_pickle_is_named(data, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        init_from.check_data(stylegan_init(), *data, "data")
    conditional = stylegan_init()
    conditional.generator_config["label_size"] = 10
    with pytest.raises(ValueError, match="conditional on 10 labels; the dataset data has no "):
        init_from.check_data(conditional, 16, 3, 0, "data")
    init_from.check_data(stylegan_init(), 16, 3, 5, "data")  # unconditional: labels unused


# ---------------------------------------------------------------------------------------------
# With the fixture pickles.


def weight_values(network):
    return {weight.path.split("/", 1)[1]: weight.numpy() for weight in network.weights}


@pytest.mark.parametrize("path, data", [(CONDITIONAL, (32, 1, 10)),
                                        (STYLEGAN_LOD_1_3, (32, 3, 0))])
def test_g_d_and_the_ema_generator_start_from_the_pickles_g_d_and_gs(path, data, tmp_path):
    resolution, channels, num_labels = data
    source = labelled_source(resolution, channels, num_labels)
    cfg = training_common.tiny_config(tmp_path, init_from=path, total_kimg=0.2)
    gan = GanTrainer(cfg, training_common.one_device(), resolution, channels,
                     source.label_size, source.labels)
    loaded = official.load(path)
    assert gan.arch.name == loaded.architecture and gan.label_size == num_labels
    for ours, theirs in ((gan.generator, loaded.G), (gan.discriminator, loaded.D),
                         (gan.generator_ema, loaded.Gs)):
        expected, actual = weight_values(theirs), weight_values(ours)
        assert actual.keys() == expected.keys()
        for name, value in expected.items():
            if not name.startswith("fade/"):  # alpha: the schedule's (next test)
                np.testing.assert_array_equal(actual[name], value, err_msg=name)
    assert gan.network_json()["generator"] == {**loaded.G.get_config(), "name": "generator"}


def test_the_weights_are_the_files_values_gs_for_the_ema_generator(tmp_path):
    g, d, gs = (dict(network.state["variables"])
                for network in safe_pickle.load_network_pickle(CONDITIONAL))
    cfg = training_common.tiny_config(tmp_path, init_from=CONDITIONAL, total_kimg=0.2)
    source = labelled_source()
    gan = GanTrainer(cfg, training_common.one_device(), 32, 1, 10, source.labels)
    # Where the layout needs no change: 1x1 convs and biases.
    np.testing.assert_array_equal(gan.generator.to_rgb_32x32.kernel.numpy(),
                                  g["ToRGB_lod0/weight"])
    np.testing.assert_array_equal(gan.generator_ema.to_rgb_32x32.kernel.numpy(),
                                  gs["ToRGB_lod0/weight"])
    assert not np.array_equal(g["ToRGB_lod0/weight"], gs["ToRGB_lod0/weight"])
    np.testing.assert_array_equal(gan.discriminator.from_rgb_32x32.conv.kernel.numpy(),
                                  d["FromRGB_lod0/weight"])
    np.testing.assert_array_equal(gan.discriminator.from_rgb_32x32.conv.bias.numpy(),
                                  d["FromRGB_lod0/bias"])
    assert gan.state.nimg.numpy() == FULLY_GROWN_NIMG == gan.state.tick_start_nimg.numpy()
    discriminator = gan.network_json()["discriminator"]
    assert (discriminator["mbstd_group_size"], discriminator["mbstd_grouping"],
            discriminator["fused_scale"]) == (16, "strided", False)


def test_a_mid_growth_pickle_continues_growing_from_its_lod(tmp_path):
    cfg = training_common.tiny_config(tmp_path, init_from=STYLEGAN_LOD_1_3, total_kimg=0.2)
    gan = GanTrainer(cfg, training_common.one_device(), 32, 3)
    phase = cfg.build_schedule(32).at(gan.state.nimg.numpy() / 1000)
    # lod 1.3: 70 % into the 16-image fade from 8x8 to 16x16 (images 48..64); one image moves
    # the lod by 1/16, and the first image at or past 1.3 is the 60th.
    assert gan.state.nimg.numpy() == 60
    assert phase.resolution == 16 and phase.lod == pytest.approx(1.25)
    assert gan.generator_ema.mapping_lrmul == 0.05 and gan.generator_ema.dlatent_size == 24


@pytest.mark.parametrize("data, message", [
    ((16, 1, 10), "holds 32x32 networks; the dataset memory is 16x16"),
    ((32, 3, 10), "holds networks of 1 image channel"),
    ((32, 1, 0), "is conditional on 10 labels; the dataset memory has no labels"),
    ((32, 1, 4), "is conditional on 10 labels; the dataset memory has 4 label columns"),
])
def test_a_dataset_that_does_not_fit_stops_before_any_run_directory(tmp_path, data, message):
    results = tmp_path / "results"
    cfg = training_common.tiny_config(results, init_from=CONDITIONAL, total_kimg=0.2)
    with pytest.raises(loop.TrainingError, match=message):
        loop.train(cfg, source=labelled_source(*data), strategy=training_common.one_device())
    assert not results.exists() or not os.listdir(results)


def test_command_line_warns_once_about_flag_file_flags_and_stops_on_the_dataset(tmp_path):
    data_dir = training_common.write_pyramid(tmp_path / "data16",
                                             training_common.tiny_images(resolution=16),
                                             labels=np.eye(10, dtype=np.float32)[
                                                 np.arange(32) % 10])
    flag_file = tmp_path / "net.flags"
    flag_file.write_text("--fmap_base=64\n--mbstd_group_size=4\n--fmap_max=12\n")
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "progan_tf.train", f"--flagfile={flag_file}",
         f"--init_from={CONDITIONAL}", f"--data_dir={data_dir}", f"--results_dir={results}",
         "--total_kimg=1"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("progan_tf.train:")]
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("progan_tf.train: warning: --init_from: the networks come from")
    assert "--fmap_base=64 (the pickle has 128)" in lines[0]
    assert "--mbstd_group_size=4 (the pickle has 16)" in lines[0]
    assert "fmap_max" not in lines[0]  # the same as the pickle's
    assert lines[1] == (f"progan_tf.train: error: --init_from: {CONDITIONAL} holds 32x32 "
                        f"networks; the dataset {data_dir} is 16x16")
    assert not results.exists() or not os.listdir(results)


def test_fine_tuning_resumes_from_the_run_directory_and_exports_close_to_the_import(tmp_path):
    path = tmp_path / "official.pkl"
    shutil.copyfile(CONDITIONAL, path)
    imported = generators.from_pickle(str(path))  # Gs at 32x32, as `generate --pickle`
    latents = generators.seed_latents(np.arange(10), 20)
    labels = np.eye(10, dtype=np.float32)
    before = np.clip(imported.images_float(latents, labels), -1, 1)
    imported_g = generators.from_pickle(str(path), network="G")
    g_to_gs = np.abs(np.clip(imported_g.images_float(latents, labels), -1, 1) - before).mean()
    cfg = training_common.tiny_config(tmp_path / "results", init_from=str(path),
                                      total_kimg=0.128)  # 2 ticks of 16 images after 96
    first = loop.train(cfg, source=labelled_source(), strategy=training_common.one_device())
    assert first.status == "done" and first.kimg == pytest.approx(0.128)
    os.rename(path, tmp_path / "gone.pkl")  # a resumed run must not need the pickle
    resumed = loop.train(cfg.replace(resume=first.run_dir, total_kimg=0.16, export=True),
                         source=labelled_source(), strategy=training_common.one_device())
    assert resumed.run_dir == first.run_dir and resumed.kimg == pytest.approx(0.16)
    log = open(os.path.join(first.run_dir, "log.txt"), encoding="utf-8").read()
    assert "Resuming" in log
    exported = generators.from_saved_model(resumed.export_dir)
    after = exported.images_float(latents, labels)
    # 8 D steps with EMA updates (beta 0.999) and 8 Adam steps on G (lr 0.001): the export
    # still renders the imported Gs's images closely. Measured on images in [-1, 1]: max
    # difference 0.065, mean 0.0017, where the file's own G and Gs differ by a mean of 0.14.
    difference = np.abs(after - before)
    assert difference.max() < 0.1 and difference.mean() < 0.005
    assert difference.mean() < g_to_gs / 20
    assert difference.max() > 0  # it did train
