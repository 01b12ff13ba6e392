"""Entry point: python -m progan_tf.train --flagfile=configs/quickstart.flags

Trains ProGAN progressively on a dataset made by `python -m data_tools`, writing
results/NNNNN-<desc>/ (log.txt, flags.json, network.json, checkpoints/, TensorBoard events,
reals.png, fakesKKKKKK.png, export/). Flag names follow the original's config in snake_case;
the `*_dict` flags take resolution:value pairs, e.g. --minibatch_dict=4:128,8:64.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from progan_tf import config  # noqa: E402
from progan_tf import schedule  # noqa: E402


def _dict_default(mapping):
    return schedule.format_resolution_dict(mapping)


# Paths and run.
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Dataset directory holding <name>-rXX.tfrecords (python -m data_tools).")
_CREATE_EMBEDDED_DATA = flags.DEFINE_boolean(
    "create_embedded_data", False, "If --data_dir does not exist, first build the Fashion-MNIST "
    "subset shipped with data_tools there (python -m data_tools create_embedded).")
_RESULTS_DIR = flags.DEFINE_string("results_dir", "results", "Parent of the run directories.")
_DESC = flags.DEFINE_string("desc", None, "Run description, the suffix of results/NNNNN-<desc>; "
                            "default: the dataset directory's name.")
_RESUME = flags.DEFINE_string(
    "resume", "", "'auto' = continue the newest unfinished run with the same --desc (or start "
    "one), or a run directory to continue; empty = new run.")
# Schedule.
_TOTAL_KIMG = flags.DEFINE_float("total_kimg", 12000, "Thousands of real images to show.")
_RESOLUTION = flags.DEFINE_integer(
    "resolution", None, "Final resolution; must match the dataset (default: the dataset's).")
_LOD_INITIAL_RESOLUTION = flags.DEFINE_integer("lod_initial_resolution", 4,
                                               "Resolution trained first.")
_LOD_TRAINING_KIMG = flags.DEFINE_float(
    "lod_training_kimg", 600, "Thousands of images to stabilise each resolution.")
_LOD_TRANSITION_KIMG = flags.DEFINE_float(
    "lod_transition_kimg", 600, "Thousands of images to fade in each new resolution.")
_MINIBATCH_BASE = flags.DEFINE_integer(
    "minibatch_base", schedule.DEFAULT_MINIBATCH_BASE,
    "Global minibatch for resolutions missing from --minibatch_dict.")
_MINIBATCH_DICT = flags.DEFINE_string(
    "minibatch_dict", _dict_default(schedule.DEFAULT_MINIBATCH_DICT),
    "Global minibatch per resolution, resolution:size pairs.")
_MAX_MINIBATCH_PER_REPLICA_DICT = flags.DEFINE_string(
    "max_minibatch_per_replica_dict", _dict_default(schedule.DEFAULT_MAX_MINIBATCH_PER_REPLICA),
    "Cap of the per-replica minibatch per resolution (float32 memory limits of the original).")
_LRATE_BASE = flags.DEFINE_float("lrate_base", schedule.DEFAULT_LRATE_BASE,
                                 "Learning rate of G and D.")
_LRATE_DICT = flags.DEFINE_string(
    "lrate_dict", _dict_default(schedule.DEFAULT_LRATE_DICT),
    "Learning rate per resolution, resolution:rate pairs (G and D).")
_TICK_KIMG_BASE = flags.DEFINE_float("tick_kimg_base", schedule.DEFAULT_TICK_KIMG_BASE,
                                     "Progress tick length in kimg.")
_TICK_KIMG_DICT = flags.DEFINE_string(
    "tick_kimg_dict", _dict_default(schedule.DEFAULT_TICK_KIMG_DICT),
    "Progress tick length per resolution, resolution:kimg pairs.")
_MINIBATCH_REPEATS = flags.DEFINE_integer(
    "minibatch_repeats", 4, "Training iterations between updates of lod, minibatch and rates.")
_D_REPEATS = flags.DEFINE_integer("d_repeats", 1, "Discriminator steps per generator step.")
# Networks.
_ARCHITECTURE = flags.DEFINE_enum(
    "architecture", "progan", list(config.ARCHITECTURES),
    "Generator architecture. stylegan changes the defaults of flags not given to StyleGAN's: "
    "--loss=logistic_r1 --ema_kimg=10 --lod_initial_resolution=8 --total_kimg=25000 "
    "--lrate_dict=128:0.0015,256:0.002,512:0.003,1024:0.003.")
_SCHEDULE = flags.DEFINE_enum(
    "schedule", "progan", ["progan", "rosinality"],
    "progan: stabilise each resolution, then fade in the next; rosinality: each resolution fades "
    "in over its first --lod_transition_kimg, then stabilises (and, for flags not given, "
    "rosinality's minibatch/learning-rate tables, 600 kimg phases, wgan_gp, EMA 0.999, no Adam "
    "resets).")
_DLATENT_SIZE = flags.DEFINE_integer("dlatent_size", None,
                                     "StyleGAN: size of w (default: the latent size).")
_MAPPING_LAYERS = flags.DEFINE_integer("mapping_layers", 8, "StyleGAN: mapping network depth.")
_MAPPING_FMAPS = flags.DEFINE_integer("mapping_fmaps", None,
                                      "StyleGAN: mapping layer width (default: --dlatent_size).")
_MAPPING_LRMUL = flags.DEFINE_float(
    "mapping_lrmul", 0.01, "StyleGAN: learning-rate multiplier of the mapping network's weights "
    "and biases (inside its layers; the optimizers use one rate).")
_STYLE_MIXING_PROB = flags.DEFINE_float(
    "style_mixing_prob", 0.9, "StyleGAN: probability of mixing two latents' styles per minibatch.")
_DLATENT_AVG_BETA = flags.DEFINE_float(
    "dlatent_avg_beta", 0.995, "StyleGAN: moving-average factor of w (the truncation centre).")
_LATENT_SIZE = flags.DEFINE_integer("latent_size", None, "Latent size (default: nf(0)).")
_FMAP_BASE = flags.DEFINE_integer("fmap_base", 8192, "Channel formula: min(base / 2^stage, max).")
_FMAP_DECAY = flags.DEFINE_float("fmap_decay", 1.0, "Channel formula decay per stage (log2).")
_FMAP_MAX = flags.DEFINE_integer("fmap_max", 512, "Most feature maps in any layer.")
_MBSTD_GROUP_SIZE = flags.DEFINE_integer("mbstd_group_size", 4,
                                         "Minibatch stddev group size; <= 1 disables it.")
_MBSTD_GROUPING = flags.DEFINE_enum(
    "mbstd_grouping", "consecutive", list(config.MBSTD_GROUPINGS),
    "Minibatch stddev groups: consecutive samples, or strided like the original's weights.")
_USE_LABELS = flags.DEFINE_boolean(
    "use_labels", False, "Condition G on the dataset's labels and train D's auxiliary "
    "classifier (AC-GAN), the original's max_label_size='full'.")
# Loss and optimizer.
_LOSS = flags.DEFINE_enum("loss", "wgan_gp", list(config.LOSSES),
                          "wgan_gp (ProGAN), lsgan, or logistic_r1 (StyleGAN).")
_GP_LAMBDA = flags.DEFINE_float("gp_lambda", 10.0, "WGAN-GP gradient penalty weight.")
_GP_TARGET = flags.DEFINE_float("gp_target", 1.0, "WGAN-GP target gradient norm (750 CIFAR-10).")
_DRIFT_WEIGHT = flags.DEFINE_float("drift_weight", 0.001, "Epsilon drift weight on D(real)^2.")
_R1_GAMMA = flags.DEFINE_float("r1_gamma", 10.0, "R1 weight gamma (logistic_r1 loss).")
_COND_WEIGHT = flags.DEFINE_float("cond_weight", 1.0, "AC-GAN label loss weight.")
_ADAM_BETA1 = flags.DEFINE_float("adam_beta1", 0.0, "Adam beta1.")
_ADAM_BETA2 = flags.DEFINE_float("adam_beta2", 0.99, "Adam beta2.")
_ADAM_EPSILON = flags.DEFINE_float("adam_epsilon", 1e-8, "Adam epsilon.")
_RESET_OPTIMIZER = flags.DEFINE_boolean(
    "reset_optimizer_on_lod_change", True,
    "Zero Adam's state whenever floor(lod) or ceil(lod) changes, as the original does.")
_EMA_BETA = flags.DEFINE_float("ema_beta", 0.999, "Generator EMA factor per D step.")
_EMA_KIMG = flags.DEFINE_float(
    "ema_kimg", 0.0, "If > 0, generator EMA half-life in kimg (StyleGAN: 10); replaces --ema_beta.")
_MIRROR_AUGMENT = flags.DEFINE_boolean("mirror_augment", False,
                                       "Random horizontal flips of the real images.")
# Execution.
_STRATEGY = flags.DEFINE_enum(
    "strategy", "auto", list(config.STRATEGIES),
    "auto = one_device for one device, mirrored over all GPUs (or logical CPUs) otherwise.")
_MIXED_PRECISION = flags.DEFINE_boolean("mixed_precision", False,
                                        "float16 compute (Keras mixed_float16) with loss scaling of G and D.")
_XLA = flags.DEFINE_boolean("xla", False, "jit-compile the training steps (one_device only).")
_SEED = flags.DEFINE_integer("seed", 1000, "Seed of weights, latents and the order of the reals.")
_MAX_NONFINITE_STEPS = flags.DEFINE_integer(
    "max_nonfinite_steps", 50, "Stop after this many consecutive steps with non-finite gradients.")
_WORKER_TIMEOUT_SEC = flags.DEFINE_float(
    "worker_timeout_sec", 300.0, "--strategy=multi_worker: seconds a collective waits for a peer "
    "worker before the run stops with an error (a dead worker cannot hang the others).")
# Output.
_IMAGE_SNAPSHOT_TICKS = flags.DEFINE_integer("image_snapshot_ticks", 1,
                                             "Write fakesKKKKKK.png every N ticks.")
_CHECKPOINT_TICKS = flags.DEFINE_integer("checkpoint_ticks", 1, "Checkpoint every N ticks.")
_KEEP_CHECKPOINTS = flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints to keep.")
_GRID_SIZE = flags.DEFINE_string(
    "grid_size", "", "Sample grid as WIDTHxHEIGHT images; empty = fill a 1080p screen.")
_METRICS = flags.DEFINE_list(
    "metrics", [], "Metrics of progan_tf.metrics (e.g. swd,fid) computed on the EMA generator every "
    "--metrics_ticks ticks once fully grown and at the end; written to metrics.jsonl and "
    "TensorBoard Metrics/<name>.")
_METRICS_NUM = flags.DEFINE_integer("metrics_num", 0,
                                    "Images per metric; 0 = each metric's default (fid: 50,000).")
_METRICS_TICKS = flags.DEFINE_integer("metrics_ticks", 10, "Compute --metrics every N ticks.")
_EXPORT = flags.DEFINE_boolean("export", True,
                              "Export the EMA generator as a SavedModel at the end of training.")
_EXPORT_MODEL_NAME = flags.DEFINE_string(
    "export_model_name", "generator", "SavedModel name under <run dir>/export/ at the end.")

def _parse_grid_size(text):
    if not text:
        return None
    width, sep, height = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return (int(width), int(height))
    except ValueError:
        raise config.ConfigError(f"--grid_size: expected WIDTHxHEIGHT such as 8x4, got "
                                 f"{text!r}") from None


def build_config(values):
    """TrainConfig from parsed flag values (a dict flag name -> value); raises ValueError."""
    return config.TrainConfig(
        data_dir=values["data_dir"], create_embedded_data=values["create_embedded_data"],
        results_dir=values["results_dir"], desc=values["desc"],
        resume=values["resume"], total_kimg=values["total_kimg"], resolution=values["resolution"],
        lod_initial_resolution=values["lod_initial_resolution"],
        lod_training_kimg=values["lod_training_kimg"],
        lod_transition_kimg=values["lod_transition_kimg"],
        minibatch_base=values["minibatch_base"],
        minibatch_dict=schedule.parse_resolution_dict(values["minibatch_dict"],
                                                      "--minibatch_dict"),
        max_minibatch_per_replica=schedule.parse_resolution_dict(
            values["max_minibatch_per_replica_dict"], "--max_minibatch_per_replica_dict"),
        lrate_base=values["lrate_base"],
        lrate_dict=schedule.parse_resolution_dict(values["lrate_dict"], "--lrate_dict", float),
        tick_kimg_base=values["tick_kimg_base"],
        tick_kimg_dict=schedule.parse_resolution_dict(values["tick_kimg_dict"],
                                                      "--tick_kimg_dict", float),
        minibatch_repeats=values["minibatch_repeats"], d_repeats=values["d_repeats"],
        architecture=values["architecture"], latent_size=values["latent_size"],
        schedule_name=values.get("schedule", "progan"), dlatent_size=values.get("dlatent_size"),
        mapping_layers=values.get("mapping_layers", 8),
        mapping_fmaps=values.get("mapping_fmaps"),
        mapping_lrmul=values.get("mapping_lrmul", 0.01),
        style_mixing_prob=values.get("style_mixing_prob", 0.9),
        dlatent_avg_beta=values.get("dlatent_avg_beta", 0.995),
        fmap_base=values["fmap_base"], fmap_decay=values["fmap_decay"],
        fmap_max=values["fmap_max"], mbstd_group_size=values["mbstd_group_size"],
        mbstd_grouping=values["mbstd_grouping"], use_labels=values["use_labels"],
        loss=values["loss"], gp_lambda=values["gp_lambda"], gp_target=values["gp_target"],
        drift_weight=values["drift_weight"], r1_gamma=values["r1_gamma"],
        cond_weight=values["cond_weight"], adam_beta1=values["adam_beta1"],
        adam_beta2=values["adam_beta2"], adam_epsilon=values["adam_epsilon"],
        reset_optimizer_on_lod_change=values["reset_optimizer_on_lod_change"],
        ema_beta=values["ema_beta"], ema_kimg=values["ema_kimg"],
        mirror_augment=values["mirror_augment"], strategy=values["strategy"],
        mixed_precision=values["mixed_precision"], xla=values["xla"], seed=values["seed"],
        max_nonfinite_steps=values["max_nonfinite_steps"],
        worker_timeout_sec=values["worker_timeout_sec"],
        image_snapshot_ticks=values["image_snapshot_ticks"],
        checkpoint_ticks=values["checkpoint_ticks"], keep_checkpoints=values["keep_checkpoints"],
        grid_size=_parse_grid_size(values["grid_size"]), metrics=tuple(values["metrics"]),
        metrics_num=values["metrics_num"], metrics_ticks=values["metrics_ticks"],
        export=values["export"], export_model_name=values["export_model_name"])


def apply_preset_defaults(values, given):
    """`values` with config.preset_defaults(--architecture, --schedule) for every flag not in
    `given` (the flags set on the command line or in a flag file)."""
    values = dict(values)
    presets = config.preset_defaults(values["architecture"], values.get("schedule", "progan"))
    for name, value in presets.items():
        if name not in given:
            values[name] = (schedule.format_resolution_dict(value) if isinstance(value, dict)
                            else value)
    return values


def _flag_values():
    """{name: value} of the flags defined in this module."""
    holders = [h for h in globals().values() if isinstance(h, flags.FlagHolder)]
    return {holder.name: holder.value for holder in sorted(holders, key=lambda h: h.name)}


def _fail(message):
    print(f"progan_tf.train: error: {message}", file=sys.stderr)
    sys.exit(1)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines would drown the progress
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]} (flags are written --name=value)")
    values = _flag_values()
    values = apply_preset_defaults(
        values, {name for name in values if flags.FLAGS[name].present})
    try:
        cfg = build_config(values)
    except ValueError as error:
        _fail(error)
    from progan_tf import trainer  # imports TensorFlow
    try:
        result = trainer.train(cfg, flags=values)
    except (OSError, trainer.TrainingError) as error:
        _fail(error)
    if result.status == "interrupted":
        sys.exit(128 + (result.signal or 0))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
