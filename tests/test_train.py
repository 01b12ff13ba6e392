"""Command line and configuration: flag files, defaults, and one clear line per bad flag."""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from progan_tf import config
from progan_tf import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(*args):
    """TrainConfig from command-line arguments, through absl like `python -m progan_tf.train`."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["progan_tf.train", *args])
        return train.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()


def test_defaults_are_the_originals_v2_preset():
    cfg = parse("--data_dir=datasets/x")
    assert cfg.total_kimg == 12000 and cfg.lod_training_kimg == cfg.lod_transition_kimg == 600
    assert dict(cfg.minibatch_dict) == {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16,
                                        256: 8, 512: 4}
    assert cfg.minibatch_base == 4 and dict(cfg.lrate_dict) == {1024: 0.0015}
    assert (cfg.adam_beta1, cfg.adam_beta2, cfg.adam_epsilon) == (0.0, 0.99, 1e-8)
    assert (cfg.gp_lambda, cfg.gp_target, cfg.drift_weight, cfg.ema_beta) == (10, 1, 0.001, 0.999)
    assert cfg.loss == "wgan_gp" and cfg.d_repeats == 1 and cfg.minibatch_repeats == 4
    assert cfg.seed == 1000 and cfg.run_desc == "x"
    assert cfg.build_schedule(1024).at(0.0).tick_kimg == 160


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "*.flags"))))
def test_every_flag_file_parses_into_a_valid_config(path):
    cfg = parse(f"--flagfile={path}")
    assert cfg.resolution in (32, 256, 1024)
    assert cfg.data_dir.startswith("datasets/")
    cfg.build_schedule(cfg.resolution).check_minibatches()


def test_paper_flag_files_hold_the_papers_settings():
    celebahq = parse(f"--flagfile={REPO}/configs/celebahq-1024.flags")
    assert (celebahq.lod_training_kimg, celebahq.total_kimg, celebahq.mirror_augment) == (
        800, 19000, True)
    assert dict(celebahq.minibatch_dict) == {256: 14, 512: 6, 1024: 3}
    assert celebahq.mbstd_group_size == 16 and dict(celebahq.lrate_dict) == {}
    cifar = parse(f"--flagfile={REPO}/configs/cifar10.flags")
    assert (cifar.lod_training_kimg, cifar.fmap_base, cifar.fmap_max, cifar.latent_size,
            cifar.gp_target) == (400, 4096, 128, 128, 750)
    quickstart = parse(f"--flagfile={REPO}/configs/quickstart.flags")
    assert quickstart.data_dir == "datasets/fashion-mnist-32"
    assert quickstart.build_schedule(32).at(quickstart.total_kimg).resolution == 32


def test_later_flags_override_the_flag_file():
    cfg = parse(f"--flagfile={REPO}/configs/quickstart.flags", "--total_kimg=1",
                "--minibatch_dict=4:16", "--grid_size=3x2")
    assert cfg.total_kimg == 1 and dict(cfg.minibatch_dict) == {4: 16}
    assert cfg.grid_size == (3, 2)


@pytest.mark.parametrize("args, message", [
    (["--total_kimg=-1"], r"^--total_kimg: must be a non-negative number, got -1\.0$"),
    (["--resolution=48"], r"^--resolution: must be a power of two between 4 and 1024, got 48$"),
    (["--lod_initial_resolution=6"], r"^--lod_initial_resolution: must be a power of two"),
    (["--resolution=8", "--lod_initial_resolution=16"], r"16 is larger than --resolution 8"),
    (["--minibatch_dict=4-128"], r"^--minibatch_dict: expected comma-separated"),
    (["--lrate_dict=4:fast"], r"^--lrate_dict: expected .* '4:fast'"),
    (["--tick_kimg_dict=6:10"], r"^--tick_kimg_dict: resolution must be a power of two"),
    (["--minibatch_base=0"], r"^--minibatch_base: must be >= 1, got 0$"),
    (["--d_repeats=0"], r"^--d_repeats: must be >= 1"),
    (["--lod_transition_kimg=-5"], r"^--lod_transition_kimg: must be a non-negative number"),
    (["--ema_beta=1.5"], r"^--ema_beta: must be in \[0, 1\), got 1\.5$"),
    (["--gp_target=0"], r"^--gp_target: must be positive"),
    (["--grid_size=8"], r"^--grid_size: expected WIDTHxHEIGHT such as 8x4, got '8'$"),
    (["--xla", "--strategy=mirrored"], r"^--xla: .*one_device"),
    (["--worker_timeout_sec=0"], r"^--worker_timeout_sec: must be a positive number"),
    (["--resume=/does/not/exist"], r"^--resume: '/does/not/exist' is neither 'auto' nor"),
])
def test_bad_flag_values_give_one_clear_message(args, message):
    with pytest.raises(ValueError, match=message):
        parse("--data_dir=datasets/x", *args)


def test_missing_data_dir_is_reported():
    with pytest.raises(config.ConfigError, match=r"^--data_dir: required"):
        parse()


def test_config_is_frozen_and_serialises_to_json():
    cfg = parse("--data_dir=datasets/x", "--minibatch_dict=4:64,8:32")
    with pytest.raises(Exception):
        cfg.total_kimg = 5
    with pytest.raises(TypeError):
        cfg.minibatch_dict[4] = 1
    as_json = cfg.to_json_dict()
    assert as_json["minibatch_dict"] == "4:64,8:32" and as_json["grid_size"] is None
    assert config.TrainConfig(**{**cfg.__dict__}) == cfg


def run_cli(*args, timeout=120):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "progan_tf.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def tiny_pyramid(path):
    from data_tools.pyramid import PyramidWriter
    writer = PyramidWriter(str(path))
    writer.add(np.random.default_rng(0).integers(0, 256, (8, 1, 16, 16), dtype=np.uint8))
    writer.commit()
    return str(path)


def test_command_line_errors_are_one_line_without_traceback(tmp_path):
    data_dir = tiny_pyramid(tmp_path / "tiny-16")
    cases = [
        (["--data_dir=" + data_dir, "--total_kimg=-1"],
         "progan_tf.train: error: --total_kimg: must be a non-negative number, got -1.0"),
        (["--data_dir=" + str(tmp_path / "nowhere")],
         f"progan_tf.train: error: --data_dir: {tmp_path / 'nowhere'} is not a directory"),
        (["--data_dir=" + data_dir, "--resolution=32", f"--results_dir={tmp_path}/results"],
         f"progan_tf.train: error: --resolution: 32 does not match the dataset {data_dir} "
         f"(16x16)"),
        (["--data_dir=" + data_dir, "stray"], "progan_tf.train: error: unexpected arguments "
         "['stray'] (flags are written --name=value)"),
    ]
    for args, expected in cases:
        proc = run_cli(*args)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == expected
    assert not os.path.exists(tmp_path / "results")  # nothing was started


def test_unknown_flag_is_refused_by_absl():
    proc = run_cli("--data_dir=x", "--totl_kimg=3")
    assert proc.returncode == 1
    assert "Unknown command line flag 'totl_kimg'" in proc.stderr
    assert "Did you mean: total_kimg" in proc.stderr


def test_quickstart_builds_its_dataset_when_the_directory_is_missing(tmp_path):
    data_dir = tmp_path / "fashion-mnist-32"
    proc = run_cli(f"--flagfile={REPO}/configs/quickstart.flags", f"--data_dir={data_dir}",
                   f"--results_dir={tmp_path / 'results'}", "--total_kimg=0", "--noexport",
                   "--grid_size=2x2", timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Building the embedded Fashion-MNIST dataset in {data_dir}" in proc.stdout
    assert sorted(name for name in os.listdir(data_dir) if name.endswith(".tfrecords")) == [
        f"fashion-mnist-32-r0{k}.tfrecords" for k in (2, 3, 4, 5)]
    run_dir = tmp_path / "results" / "00000-quickstart"
    assert (run_dir / "fakes000000.png").exists() and (run_dir / "reals.png").exists()
