"""Training configuration: one frozen dataclass built once from the flags and validated here,
before any work (library code never reads absl FLAGS)."""

import dataclasses
import math
import os
import types

from progan_tf import schedule as schedule_lib

LOSSES = ("wgan_gp", "lsgan", "logistic_r1")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
ARCHITECTURES = ("progan", "stylegan")
MBSTD_GROUPINGS = ("consecutive", "strided")


class ConfigError(ValueError):
    """A bad flag value; the message names the flag and what is wrong."""


def _frozen(mapping):
    return types.MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, named after the original's config in snake_case.

    Paths
      data_dir: dataset directory with the `<name>-rXX.tfrecords` level files.
      create_embedded_data: when data_dir does not exist, build the Fashion-MNIST subset shipped
        with data_tools there first (the quickstart's data).
      results_dir: parent of the run directories `NNNNN-<desc>`.
      desc: run description (directory suffix); None = basename of data_dir.
      resume: "" = new run, "auto" = newest unfinished run with the same desc (a new run when
        there is none), else the run directory to continue.
    Schedule (SPEC 2)
      total_kimg: thousands of real images to show in total.
      resolution: expected final resolution; None = the dataset's.
      lod_initial_resolution, lod_training_kimg, lod_transition_kimg: progressive growing.
      minibatch_base, minibatch_dict, max_minibatch_per_replica: global minibatch per resolution.
      lrate_base, lrate_dict: learning rate of G and D per resolution.
      tick_kimg_base, tick_kimg_dict: progress tick length per resolution.
      minibatch_repeats: minibatches between schedule updates (4 in the original).
      d_repeats: discriminator steps per generator step.
    Networks (SPEC 1)
      architecture: "progan" or "stylegan" (progan_tf.stylegan.StyleGenerator and its
        discriminator; see `preset_defaults` for the defaults the command line switches to).
      schedule_name: --schedule, "progan" (stabilise, then fade) or "rosinality" (fade, then
        stabilise; schedule.RosinalitySchedule).
      dlatent_size, mapping_layers, mapping_fmaps, mapping_lrmul: StyleGAN mapping network
        (None = the latent size); style_mixing_prob: probability of a second latent per
        minibatch from a random style layer on; dlatent_avg_beta: moving average of w.
      latent_size: None = nf(0); fmap_base, fmap_decay, fmap_max: channel formula.
      mbstd_group_size, mbstd_grouping: minibatch stddev layer of D.
      use_labels: condition on the dataset's labels (AC-GAN); the original's max_label_size.
    Loss and optimizer
      loss: "wgan_gp" (ProGAN), "lsgan" or "logistic_r1" (StyleGAN).
      gp_lambda, gp_target, drift_weight: WGAN-GP terms; r1_gamma: R1 weight;
      cond_weight: AC-GAN label loss weight.
      adam_beta1, adam_beta2, adam_epsilon: Adam hyper-parameters of both networks.
      reset_optimizer_on_lod_change: zero Adam's state when floor(lod) or ceil(lod) changes.
      ema_beta: generator EMA per D step; ema_kimg > 0 replaces it by a half-life in kimg.
      mirror_augment: random horizontal flips of the reals.
    Execution
      strategy: "auto" | "one_device" | "mirrored" | "multi_worker".
      mixed_precision: float16 compute (mixed_float16) with loss scaling of both networks;
        xla: jit-compile the steps (one_device only).
      seed: seeds weights, latents, penalties and the order of the reals.
      max_nonfinite_steps: consecutive skipped (non-finite) steps that stop the run.
      worker_timeout_sec: multi_worker: a collective that waits longer than this for a peer
        fails, so a dead worker stops the others instead of hanging them.
    Output
      image_snapshot_ticks: fake-image grid every N ticks; checkpoint_ticks: checkpoint every N
      ticks; keep_checkpoints: checkpoints kept; grid_size: (width, height) of the sample grid
      in images, None = fill a 1080p screen as the original does; metrics: names of
      progan_tf.metrics run on the EMA generator every metrics_ticks ticks once fully grown and
      at the end, metrics_num images each (0 = each metric's default); export: write the EMA
      generator as a SavedModel at the end, named export_model_name under `<run dir>/export`.
    """

    data_dir: str
    create_embedded_data: bool = False
    results_dir: str = "results"
    desc: str | None = None
    resume: str = ""
    total_kimg: float = 12000.0
    resolution: int | None = None
    lod_initial_resolution: int = 4
    lod_training_kimg: float = 600.0
    lod_transition_kimg: float = 600.0
    minibatch_base: int = schedule_lib.DEFAULT_MINIBATCH_BASE
    minibatch_dict: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: _frozen(schedule_lib.DEFAULT_MINIBATCH_DICT))
    max_minibatch_per_replica: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: _frozen(schedule_lib.DEFAULT_MAX_MINIBATCH_PER_REPLICA))
    lrate_base: float = schedule_lib.DEFAULT_LRATE_BASE
    lrate_dict: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: _frozen(schedule_lib.DEFAULT_LRATE_DICT))
    tick_kimg_base: float = schedule_lib.DEFAULT_TICK_KIMG_BASE
    tick_kimg_dict: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: _frozen(schedule_lib.DEFAULT_TICK_KIMG_DICT))
    minibatch_repeats: int = 4
    d_repeats: int = 1
    architecture: str = "progan"
    latent_size: int | None = None
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    schedule_name: str = "progan"
    dlatent_size: int | None = None
    mapping_layers: int = 8
    mapping_fmaps: int | None = None
    mapping_lrmul: float = 0.01
    style_mixing_prob: float = 0.9
    dlatent_avg_beta: float = 0.995
    mbstd_group_size: int = 4
    mbstd_grouping: str = "consecutive"
    use_labels: bool = False
    loss: str = "wgan_gp"
    gp_lambda: float = 10.0
    gp_target: float = 1.0
    drift_weight: float = 0.001
    r1_gamma: float = 10.0
    cond_weight: float = 1.0
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    reset_optimizer_on_lod_change: bool = True
    ema_beta: float = 0.999
    ema_kimg: float = 0.0
    mirror_augment: bool = False
    strategy: str = "auto"
    mixed_precision: bool = False
    xla: bool = False
    seed: int = 1000
    max_nonfinite_steps: int = 50
    worker_timeout_sec: float = 300.0
    image_snapshot_ticks: int = 1
    checkpoint_ticks: int = 1
    keep_checkpoints: int = 3
    grid_size: tuple | None = None
    metrics: tuple = ()
    metrics_num: int = 0
    metrics_ticks: int = 10
    export: bool = True
    export_model_name: str = "generator"

    def __post_init__(self):
        for name in ("minibatch_dict", "max_minibatch_per_replica", "lrate_dict",
                     "tick_kimg_dict"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if self.grid_size is not None:
            object.__setattr__(self, "grid_size", tuple(self.grid_size))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        self._validate()

    def _validate(self):
        def fail(message):
            raise ConfigError(message)

        if not self.data_dir:
            fail("--data_dir: required (a dataset directory made by `python -m data_tools`)")
        if self.resume not in ("", "auto") and not os.path.isdir(self.resume):
            fail(f"--resume: {self.resume!r} is neither 'auto' nor an existing run directory")
        if not math.isfinite(self.total_kimg) or self.total_kimg < 0:
            fail(f"--total_kimg: must be a non-negative number, got {self.total_kimg!r}")
        if self.resolution is not None and not _is_resolution(self.resolution):
            fail(f"--resolution: must be a power of two between 4 and 1024, got "
                 f"{self.resolution!r}")
        if not _is_resolution(self.lod_initial_resolution):
            fail(f"--lod_initial_resolution: must be a power of two between 4 and 1024, got "
                 f"{self.lod_initial_resolution!r}")
        if self.resolution is not None and self.lod_initial_resolution > self.resolution:
            fail(f"--lod_initial_resolution: {self.lod_initial_resolution} is larger than "
                 f"--resolution {self.resolution}")
        for flag in ("lod_training_kimg", "lod_transition_kimg"):
            value = getattr(self, flag)
            if not math.isfinite(value) or value < 0:
                fail(f"--{flag}: must be a non-negative number, got {value!r}")
        if self.minibatch_base < 1:
            fail(f"--minibatch_base: must be >= 1, got {self.minibatch_base!r}")
        for flag in ("lrate_base", "tick_kimg_base", "adam_epsilon"):
            value = getattr(self, flag)
            if not math.isfinite(value) or value <= 0:
                fail(f"--{flag}: must be a positive number, got {value!r}")
        for flag in ("minibatch_repeats", "d_repeats", "image_snapshot_ticks", "checkpoint_ticks",
                     "keep_checkpoints", "max_nonfinite_steps", "metrics_ticks"):
            if getattr(self, flag) < 1:
                fail(f"--{flag}: must be >= 1, got {getattr(self, flag)!r}")
        if self.architecture not in ARCHITECTURES:
            fail(f"--architecture: must be one of {', '.join(ARCHITECTURES)}, got "
                 f"{self.architecture!r}")
        if self.schedule_name not in schedule_lib.SCHEDULES:
            fail(f"--schedule: must be one of {', '.join(schedule_lib.SCHEDULES)}, got "
                 f"{self.schedule_name!r}")
        for flag in ("dlatent_size", "mapping_fmaps"):
            if getattr(self, flag) is not None and getattr(self, flag) < 1:
                fail(f"--{flag}: must be >= 1, got {getattr(self, flag)!r}")
        if self.mapping_layers < 1:
            fail(f"--mapping_layers: must be >= 1, got {self.mapping_layers!r}")
        if not math.isfinite(self.mapping_lrmul) or self.mapping_lrmul <= 0:
            fail(f"--mapping_lrmul: must be a positive number, got {self.mapping_lrmul!r}")
        for flag in ("style_mixing_prob", "dlatent_avg_beta"):
            if not 0.0 <= getattr(self, flag) <= 1.0:
                fail(f"--{flag}: must be in [0, 1], got {getattr(self, flag)!r}")
        if self.latent_size is not None and self.latent_size < 1:
            fail(f"--latent_size: must be >= 1, got {self.latent_size!r}")
        if self.fmap_base < 1 or self.fmap_max < 1:
            fail(f"--fmap_base/--fmap_max: must be >= 1, got {self.fmap_base!r}/"
                 f"{self.fmap_max!r}")
        if self.mbstd_grouping not in MBSTD_GROUPINGS:
            fail(f"--mbstd_grouping: must be one of {', '.join(MBSTD_GROUPINGS)}, got "
                 f"{self.mbstd_grouping!r}")
        if self.loss not in LOSSES:
            fail(f"--loss: must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.gp_target <= 0:
            fail(f"--gp_target: must be positive, got {self.gp_target!r}")
        for flag in ("gp_lambda", "drift_weight", "r1_gamma", "cond_weight", "ema_kimg"):
            if getattr(self, flag) < 0:
                fail(f"--{flag}: must be >= 0, got {getattr(self, flag)!r}")
        for flag in ("adam_beta1", "adam_beta2", "ema_beta"):
            value = getattr(self, flag)
            if not 0.0 <= value < 1.0:
                fail(f"--{flag}: must be in [0, 1), got {value!r}")
        if self.strategy not in STRATEGIES:
            fail(f"--strategy: must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.xla and self.strategy in ("mirrored", "multi_worker"):
            fail(f"--xla: jit compilation fails inside MirroredStrategy.run on this TensorFlow; "
                 f"use it with --strategy=one_device, not {self.strategy}")
        if not math.isfinite(self.worker_timeout_sec) or self.worker_timeout_sec <= 0:
            fail(f"--worker_timeout_sec: must be a positive number, got "
                 f"{self.worker_timeout_sec!r}")
        if self.metrics_num < 0 or self.metrics_num == 1:
            fail(f"--metrics_num: must be 0 (each metric's default) or >= 2, got "
                 f"{self.metrics_num!r}")
        if self.grid_size is not None and (len(self.grid_size) != 2
                                           or min(self.grid_size) < 1):
            fail(f"--grid_size: expected WIDTHxHEIGHT with both >= 1, got {self.grid_size!r}")
        if not self.export_model_name or "/" in self.export_model_name:
            fail(f"--export_model_name: must be a plain directory name, got "
                 f"{self.export_model_name!r}")

    @property
    def run_desc(self):
        """Description used in the run directory name."""
        if self.desc:
            return self.desc
        return os.path.basename(os.path.normpath(self.data_dir)) or "run"

    def schedule(self, resolution, num_replicas=1):
        """The `schedule.Schedule` of this config for final `resolution` and replica count."""
        schedule_class = schedule_lib.schedule_class(self.schedule_name)
        return schedule_class(
            resolution=resolution, initial_resolution=self.lod_initial_resolution,
            training_kimg=self.lod_training_kimg, transition_kimg=self.lod_transition_kimg,
            minibatch_base=self.minibatch_base, minibatch_dict=self.minibatch_dict,
            max_minibatch_per_replica=self.max_minibatch_per_replica, num_replicas=num_replicas,
            g_lrate_base=self.lrate_base, g_lrate_dict=self.lrate_dict,
            d_lrate_base=self.lrate_base, d_lrate_dict=self.lrate_dict,
            tick_kimg_base=self.tick_kimg_base, tick_kimg_dict=self.tick_kimg_dict)

    def to_json_dict(self):
        """JSON-able dict of every field (resolution dicts as 'res:value' strings)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, types.MappingProxyType):
                value = schedule_lib.format_resolution_dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def preset_defaults(architecture, schedule_name="progan"):
    """Field values that differ from the dataclass defaults (ProGAN's) for `architecture` and
    `schedule_name`; the command line uses them for every flag not given.

    stylegan: non-saturating logistic loss + R1 (gamma 10), EMA half-life 10 kimg, 8x8 start,
    25,000 kimg and NVIDIA's learning-rate table (SPEC 3). rosinality: its minibatch and
    learning-rate tables, 600 kimg phases, WGAN-GP, EMA 0.999 and no Adam resets ([ROS]).
    """
    values = {}
    if architecture == "stylegan":
        values.update(loss="logistic_r1", ema_kimg=10.0,
                      lod_initial_resolution=schedule_lib.STYLEGAN_INITIAL_RESOLUTION,
                      total_kimg=schedule_lib.STYLEGAN_TOTAL_KIMG,
                      lrate_dict=dict(schedule_lib.STYLEGAN_LRATE_DICT))
    if schedule_name == "rosinality":
        values.update(minibatch_base=schedule_lib.ROSINALITY_MINIBATCH_BASE,
                      minibatch_dict=dict(schedule_lib.ROSINALITY_MINIBATCH_DICT),
                      lrate_dict=dict(schedule_lib.ROSINALITY_LRATE_DICT),
                      lod_training_kimg=schedule_lib.ROSINALITY_PHASE_KIMG,
                      lod_transition_kimg=schedule_lib.ROSINALITY_PHASE_KIMG,
                      loss="wgan_gp", ema_kimg=0.0, ema_beta=0.999,
                      reset_optimizer_on_lod_change=False)
    return values


def _is_resolution(value):
    return schedule_lib.is_power_of_two(value) and 4 <= value <= 1024
