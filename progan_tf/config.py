"""Training configuration: `TrainConfig`, one frozen dataclass whose fields are the options of
`python -m progan_tf.train` (flag name = field name, help text in the field's metadata), validated
when built, before any work. Library code never reads absl FLAGS."""

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from typing import Callable

from data_tools.sources.embedded import DIRECTORY_NAME as EMBEDDED_DATA_NAME
# The registries import TensorFlow (networks, losses): so does this module, and `--help`.
from progan_tf import architectures
from progan_tf import losses
from progan_tf.layers import conv as conv_lib
from progan_tf import schedule as schedule_lib

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
PRECISIONS = ("float32", "bfloat16", "float16")
MBSTD_GROUPINGS = ("consecutive", "strided")


class ConfigError(ValueError):
    """A bad flag value; the message names the flag and what is wrong."""


def _frozen(mapping):
    return types.MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True)
class Codec:
    """How a field that is not a plain bool, number or string is written as a flag (and in
    flags.json): the absl flag `kind` ("string" or "list"), `parse(flag_value, "--name")` ->
    field value (a ValueError naming the flag when malformed) and `format(field value)` ->
    flag value."""

    kind: str
    parse: Callable
    format: Callable


def _resolution_dict(value_type):
    """'resolution:value' pairs such as 4:128,8:64 (schedule.parse_resolution_dict)."""
    return Codec("string",
                 lambda text, flag: schedule_lib.parse_resolution_dict(text, flag, value_type),
                 schedule_lib.format_resolution_dict)


def _parse_grid_size(text, flag):
    if not text:
        return None
    width, sep, height = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return (int(width), int(height))
    except ValueError:
        raise ConfigError(f"{flag}: expected WIDTHxHEIGHT such as 8x4, got {text!r}") from None


_GRID_SIZE = Codec("string", _parse_grid_size, lambda size: f"{size[0]}x{size[1]}")
_NAME_LIST = Codec("list", lambda names, flag: tuple(names), list)


def _check(is_valid, requirement):
    """A field check: None when `is_valid(value)`, else '<requirement>, got <value>'."""
    return lambda value: None if is_valid(value) else f"{requirement}, got {value!r}"


def _is_resolution(value):
    return schedule_lib.is_power_of_two(value) and 4 <= value <= 1024


def _dataset_given(value):
    return None if value else "required (a dataset directory made by `python -m data_tools`)"


def _run_to_resume(value):
    if value in ("", "auto") or os.path.isdir(value):
        return None
    return f"{value!r} is neither 'auto' nor an existing run directory"


_RESOLUTION = _check(_is_resolution, "must be a power of two between 4 and 1024")
_AT_LEAST_ONE = _check(lambda value: value >= 1, "must be >= 1")
_NON_NEGATIVE = _check(lambda value: value >= 0, "must be >= 0")
_POSITIVE = _check(lambda value: value > 0, "must be positive")
_NON_NEGATIVE_NUMBER = _check(lambda value: math.isfinite(value) and value >= 0,
                              "must be a non-negative number")
_POSITIVE_NUMBER = _check(lambda value: math.isfinite(value) and value > 0,
                          "must be a positive number")
_PROBABILITY = _check(lambda value: 0.0 <= value <= 1.0, "must be in [0, 1]")
_DECAY = _check(lambda value: 0.0 <= value < 1.0, "must be in [0, 1)")
_METRICS_NUM = _check(lambda value: value == 0 or value >= 2,
                      "must be 0 (each metric's default) or >= 2")
_GRID = _check(lambda size: len(size) == 2 and min(size) >= 1,
               "expected WIDTHxHEIGHT with both >= 1")
_DIRECTORY_NAME = _check(lambda name: bool(name) and "/" not in name,
                         "must be a plain directory name")


def _option(default, help_text, check=None, choices=None, codec=None):
    """A TrainConfig field and its flag. help_text: the flag's help; check: `(value) -> what is
    wrong with it or None` (not called for None when None is the default); choices: the allowed
    values (an enum flag); codec: a `Codec` for values that are not bool, number or string."""
    metadata = dict(help=help_text, check=check, choices=choices, codec=codec)
    if isinstance(default, Mapping):
        return dataclasses.field(default_factory=lambda: _frozen(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _presets_help():
    """'<name> changes the defaults of flags not given: --flag=value ...' per architecture with
    presets, from the registry."""
    parts = []
    for name in architectures.NAMES:
        presets = architectures.get(name).presets
        if presets:
            pairs = " ".join(f"--{flag}={_preset_text(value)}" for flag, value in presets.items())
            parts.append(f"{name} changes the defaults of flags not given: {pairs}.")
    return " ".join(parts)


def _preset_text(value):
    if isinstance(value, Mapping):
        return schedule_lib.format_resolution_dict(value)
    return schedule_lib.format_number(value)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, named after the original's config in snake_case; one
    field per flag of `python -m progan_tf.train` (its help: `field.metadata["help"]`). Resolution
    dicts are read-only mappings {resolution: value}; `grid_size` is (width, height) or None."""

    # Paths and run.
    data_dir: str = _option(
        dataclasses.MISSING,
        "Dataset directory holding <name>-rXX.tfrecords (python -m data_tools).",
        check=_dataset_given)
    create_embedded_data: bool = _option(
        False, f"If --data_dir does not exist and its last part is {EMBEDDED_DATA_NAME}, first "
        f"build the Fashion-MNIST subset shipped with data_tools there (python -m data_tools "
        f"create_embedded); any other missing --data_dir stays an error.")
    results_dir: str = _option("results", "Parent of the run directories.")
    desc: str | None = _option(None, "Run description, the suffix of results/NNNNN-<desc>; "
                               "default: the dataset directory's name.")
    resume: str = _option(
        "", "'auto' = continue the newest unfinished run with the same --desc (or start one), "
        "or a run directory to continue; empty = new run.", check=_run_to_resume)
    init_from: str = _option(
        "", "Official NVIDIA ProGAN/StyleGAN pickle to fine-tune (read without running its "
        "code): G, D and the EMA generator start from its G, D and Gs, at its resolution and "
        "stored lod (lod 0 = fully grown: training starts at the kimg where the schedule is "
        "fully grown, as the original's resume_kimg, so --total_kimg must lie beyond it), with "
        "fresh optimizer state. The architecture and network configuration come from the "
        "pickle; network flags that differ are reported in one warning line, not applied. "
        "Resuming such a run reads its run directory, not the pickle.")
    # Schedule (SPEC 2).
    total_kimg: float = _option(12000.0, "Thousands of real images to show.",
                                check=_NON_NEGATIVE_NUMBER)
    resolution: int | None = _option(
        None, "Final resolution; must match the dataset (default: the dataset's).",
        check=_RESOLUTION)
    lod_initial_resolution: int = _option(4, "Resolution trained first.", check=_RESOLUTION)
    lod_training_kimg: float = _option(
        600.0, "Thousands of images to stabilise each resolution.", check=_NON_NEGATIVE_NUMBER)
    lod_transition_kimg: float = _option(
        600.0, "Thousands of images to fade in each new resolution.", check=_NON_NEGATIVE_NUMBER)
    minibatch_base: int = _option(
        schedule_lib.DEFAULT_MINIBATCH_BASE,
        "Global minibatch for resolutions missing from --minibatch_dict.", check=_AT_LEAST_ONE)
    minibatch_dict: types.MappingProxyType = _option(
        schedule_lib.DEFAULT_MINIBATCH_DICT,
        "Global minibatch per resolution, resolution:size pairs.", codec=_resolution_dict(int))
    max_minibatch_per_replica_dict: types.MappingProxyType = _option(
        schedule_lib.DEFAULT_MAX_MINIBATCH_PER_REPLICA,
        "Cap of the per-replica minibatch per resolution (float32 memory limits of the "
        "original).", codec=_resolution_dict(int))
    lrate_base: float = _option(schedule_lib.DEFAULT_LRATE_BASE, "Learning rate of G and D.",
                                check=_POSITIVE_NUMBER)
    lrate_dict: types.MappingProxyType = _option(
        schedule_lib.DEFAULT_LRATE_DICT,
        "Learning rate per resolution, resolution:rate pairs (G and D).",
        codec=_resolution_dict(float))
    tick_kimg_base: float = _option(float(schedule_lib.DEFAULT_TICK_KIMG_BASE),
                                    "Progress tick length in kimg.", check=_POSITIVE_NUMBER)
    tick_kimg_dict: types.MappingProxyType = _option(
        schedule_lib.DEFAULT_TICK_KIMG_DICT,
        "Progress tick length per resolution, resolution:kimg pairs.",
        codec=_resolution_dict(float))
    minibatch_repeats: int = _option(
        4, "Training iterations between updates of lod, minibatch and rates.",
        check=_AT_LEAST_ONE)
    d_repeats: int = _option(1, "Discriminator steps per generator step.", check=_AT_LEAST_ONE)
    steps_per_call: int = _option(
        0, "Minibatches (d_repeats D steps + 1 G step each) run inside one tf.function call, "
        "so the per-call dispatch is paid once (Keras' steps_per_execution; small networks "
        "train faster); 0 = the whole --minibatch_repeats group; must divide "
        "--minibatch_repeats. The result is the same for every value.", check=_NON_NEGATIVE)
    # Networks (SPEC 1, 3).
    architecture: str = _option(
        "progan", "Generator architecture. " + _presets_help(), choices=architectures.NAMES)
    schedule: str = _option(
        "progan", "progan: stabilise each resolution, then fade in the next; rosinality: each "
        "resolution fades in over its first --lod_transition_kimg, then stabilises (and, for "
        "flags not given, rosinality's minibatch/learning-rate tables, 600 kimg phases, "
        "wgan_gp, EMA 0.999, no Adam resets).", choices=schedule_lib.SCHEDULES)
    dlatent_size: int | None = _option(None, "StyleGAN: size of w (default: the latent size).",
                                       check=_AT_LEAST_ONE)
    mapping_layers: int = _option(8, "StyleGAN: mapping network depth.", check=_AT_LEAST_ONE)
    mapping_fmaps: int | None = _option(
        None, "StyleGAN: mapping layer width (default: --dlatent_size).", check=_AT_LEAST_ONE)
    mapping_lrmul: float = _option(
        0.01, "StyleGAN: learning-rate multiplier of the mapping network's weights and biases "
        "(inside its layers; the optimizers use one rate).", check=_POSITIVE_NUMBER)
    style_mixing_prob: float = _option(
        0.9, "StyleGAN: probability of mixing two latents' styles per minibatch.",
        check=_PROBABILITY)
    dlatent_avg_beta: float = _option(
        0.995, "StyleGAN: moving-average factor of w (the truncation centre).",
        check=_PROBABILITY)
    latent_size: int | None = _option(None, "Latent size (default: nf(0)).", check=_AT_LEAST_ONE)
    fmap_base: int = _option(8192, "Channel formula: min(base / 2^stage, max).")
    fmap_decay: float = _option(1.0, "Channel formula decay per stage (log2).")
    fmap_max: int = _option(512, "Most feature maps in any layer.")
    mbstd_group_size: int = _option(4, "Minibatch stddev group size; <= 1 disables it.")
    mbstd_grouping: str = _option(
        "consecutive", "Minibatch stddev groups: consecutive samples, or strided like the "
        "original's weights.", choices=MBSTD_GROUPINGS)
    use_labels: bool = _option(
        False, "Condition G on the dataset's labels and train D's auxiliary classifier "
        "(AC-GAN), the original's max_label_size='full'.")
    # Loss and optimizer.
    loss: str = _option("wgan_gp", "wgan_gp (ProGAN), lsgan, or logistic_r1 (StyleGAN).",
                        choices=tuple(losses.LOSSES))
    gp_lambda: float = _option(10.0, "WGAN-GP gradient penalty weight.", check=_NON_NEGATIVE)
    gp_target: float = _option(1.0, "WGAN-GP target gradient norm (750 CIFAR-10).",
                               check=_POSITIVE)
    drift_weight: float = _option(0.001, "Epsilon drift weight on D(real)^2.",
                                  check=_NON_NEGATIVE)
    r1_gamma: float = _option(10.0, "R1 weight gamma (logistic_r1 loss).", check=_NON_NEGATIVE)
    cond_weight: float = _option(1.0, "AC-GAN label loss weight.", check=_NON_NEGATIVE)
    adam_beta1: float = _option(0.0, "Adam beta1.", check=_DECAY)
    adam_beta2: float = _option(0.99, "Adam beta2.", check=_DECAY)
    adam_epsilon: float = _option(1e-8, "Adam epsilon.", check=_POSITIVE_NUMBER)
    reset_optimizer_on_lod_change: bool = _option(
        True, "Zero Adam's state whenever floor(lod) or ceil(lod) changes, as the original does.")
    ema_beta: float = _option(0.999, "Generator EMA factor per D step.", check=_DECAY)
    ema_kimg: float = _option(
        0.0, "If > 0, generator EMA half-life in kimg (StyleGAN: 10); replaces --ema_beta.",
        check=_NON_NEGATIVE)
    mirror_augment: bool = _option(False, "Random horizontal flips of the real images.")
    # Execution.
    strategy: str = _option(
        "auto", "auto = one_device for one device, mirrored over all GPUs (or logical CPUs) "
        "otherwise.", choices=STRATEGIES)
    precision: str = _option(
        "float32", "Compute precision of G and D: float32; bfloat16 (Keras mixed_bfloat16: "
        "bfloat16 compute, float32 weights, no loss scaling; for TPUs, Ampere and later GPUs "
        "and CPUs with AVX512-BF16 or AMX); float16 (Keras mixed_float16 with loss scaling of "
        "G and D; for GPUs with fast float16 but no bfloat16). Normalisations, the penalty's "
        "gradient norm, losses and the EMA stay float32; checkpoints and exports are float32 "
        "whatever it is, so a run may resume with another precision.", choices=PRECISIONS)
    mixed_precision: bool = _option(
        False, "Alias of --precision=float16 (for older flag files); flags.json records it as "
        "--precision=float16.")
    xla: bool = _option(False, "jit-compile the training steps (one_device only).")
    conv_gradients: str = _option(
        "auto", "How the convolutions' gradients are computed in training: gemm (the input "
        "gradient as a forward convolution, the weight gradient as matrix products over the "
        "input's shifted copies; 1.3-1.8x faster weight gradients on CPUs), native "
        "(TensorFlow's Conv2DBackprop kernels; cuDNN on GPUs); auto = gemm for convolutions "
        "of 128 or more channels in and out when every device is a CPU, native otherwise. "
        "The same function up to float rounding.", choices=conv_lib.CONV_GRADIENTS)
    seed: int = _option(1000, "Seed of weights, latents, penalties and the order of the reals.")
    max_nonfinite_steps: int = _option(
        50, "Stop after this many consecutive steps with non-finite gradients.",
        check=_AT_LEAST_ONE)
    worker_timeout_sec: float = _option(
        300.0, "--strategy=multi_worker: seconds a collective waits for a peer worker before the "
        "run stops with an error (a dead worker cannot hang the others).",
        check=_POSITIVE_NUMBER)
    # Output.
    image_snapshot_ticks: int = _option(1, "Write fakesKKKKKK.png every N ticks.",
                                        check=_AT_LEAST_ONE)
    checkpoint_ticks: int = _option(1, "Checkpoint every N ticks.", check=_AT_LEAST_ONE)
    keep_checkpoints: int = _option(3, "Checkpoints to keep.", check=_AT_LEAST_ONE)
    grid_size: tuple | None = _option(
        None, "Sample grid as WIDTHxHEIGHT images; empty = fill a 1080p screen.", check=_GRID,
        codec=_GRID_SIZE)
    metrics: tuple = _option(
        (), "Metrics of progan_tf.metrics (e.g. swd,fid) computed on the EMA generator every "
        "--metrics_ticks ticks once fully grown and at the end; written to metrics.jsonl and "
        "TensorBoard Metrics/<name>.", codec=_NAME_LIST)
    metrics_num: int = _option(
        0, "Images per metric; 0 = each metric's default (fid: 50,000).", check=_METRICS_NUM)
    metrics_ticks: int = _option(10, "Compute --metrics every N ticks.", check=_AT_LEAST_ONE)
    export: bool = _option(True, "Export the EMA generator as a SavedModel at the end of "
                           "training.")
    export_model_name: str = _option(
        "generator", "SavedModel name under <run dir>/export/ at the end.",
        check=_DIRECTORY_NAME)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Mapping):
                object.__setattr__(self, field.name, _frozen(value))
            elif isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))
        self._validate()
        if self.mixed_precision:  # the alias, folded in: `precision` is the one source of truth
            object.__setattr__(self, "precision", "float16")
            object.__setattr__(self, "mixed_precision", False)

    def _validate(self):
        """Raises ConfigError naming the first bad flag: each field's own check, then the
        checks that involve several fields."""
        for field in dataclasses.fields(self):
            problem = _field_problem(field, getattr(self, field.name))
            if problem:
                raise ConfigError(f"--{field.name}: {problem}")
        problem = _combination_problem(self)
        if problem:
            raise ConfigError(problem)

    @classmethod
    def from_flag_values(cls, values, given=()):
        """TrainConfig from command-line values {flag name: value as absl parsed it}; flags not
        in `given` (set on the command line or in a flag file) take the presets of
        --architecture and --schedule (`preset_defaults`). Raises ValueError."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        settings = {name: _from_flag(fields[name], value) for name, value in values.items()}
        if ({"mixed_precision", "precision"} <= set(given) and settings.get("mixed_precision")
                and settings.get("precision") != "float16"):
            raise ConfigError(_precision_conflict(settings.get("precision")))
        chosen = {name: settings.get(name, fields[name].default)
                  for name in ("architecture", "schedule")}
        presets = preset_defaults(chosen["architecture"], chosen["schedule"])
        settings.update({name: value for name, value in presets.items() if name not in given})
        return cls(**settings)

    @property
    def run_desc(self):
        """Description used in the run directory name."""
        if self.desc:
            return self.desc
        return os.path.basename(os.path.normpath(self.data_dir)) or "run"

    def build_schedule(self, resolution, num_replicas=1):
        """The `schedule.Schedule` of this config for final `resolution` and replica count."""
        schedule_class = schedule_lib.schedule_class(self.schedule)
        return schedule_class(
            resolution=resolution, initial_resolution=self.lod_initial_resolution,
            training_kimg=self.lod_training_kimg, transition_kimg=self.lod_transition_kimg,
            minibatch_base=self.minibatch_base, minibatch_dict=self.minibatch_dict,
            max_minibatch_per_replica=self.max_minibatch_per_replica_dict,
            num_replicas=num_replicas, g_lrate_base=self.lrate_base, g_lrate_dict=self.lrate_dict,
            d_lrate_base=self.lrate_base, d_lrate_dict=self.lrate_dict,
            tick_kimg_base=self.tick_kimg_base, tick_kimg_dict=self.tick_kimg_dict)

    def to_json_dict(self):
        """{flag name: flag value} of every field, what flags.json holds: resolution dicts as
        'res:value' strings, grid_size as 'WIDTHxHEIGHT', metrics as a list, None as null."""
        return {field.name: _to_flag(field, getattr(self, field.name))
                for field in dataclasses.fields(self)}

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _field_problem(field, value):
    """What is wrong with `value` for `field` by itself, or None."""
    if value is None and field.default is None:
        return None  # optional and not set
    choices = field.metadata["choices"]
    if choices is not None and value not in choices:
        return f"must be one of {', '.join(choices)}, got {value!r}"
    check = field.metadata["check"]
    return check(value) if check else None


def _combination_problem(cfg):
    """What is wrong with `cfg` across fields (the full message), or None."""
    if cfg.resolution is not None and cfg.lod_initial_resolution > cfg.resolution:
        return (f"--lod_initial_resolution: {cfg.lod_initial_resolution} is larger than "
                f"--resolution {cfg.resolution}")
    if cfg.fmap_base < 1 or cfg.fmap_max < 1:
        return f"--fmap_base/--fmap_max: must be >= 1, got {cfg.fmap_base!r}/{cfg.fmap_max!r}"
    if cfg.mixed_precision and cfg.precision not in ("float32", "float16"):
        return _precision_conflict(cfg.precision)
    if cfg.steps_per_call and cfg.minibatch_repeats % cfg.steps_per_call:
        return (f"--steps_per_call: {cfg.steps_per_call} does not divide --minibatch_repeats "
                f"{cfg.minibatch_repeats} (the schedule is updated between groups)")
    if cfg.xla and cfg.strategy in ("mirrored", "multi_worker"):
        return (f"--xla: jit compilation fails inside MirroredStrategy.run on this TensorFlow; "
                f"use it with --strategy=one_device, not {cfg.strategy}")
    return None


def _precision_conflict(precision):
    return (f"--mixed_precision and --precision={precision} conflict: --mixed_precision is an "
            f"alias of --precision=float16; give only one of them")


def _from_flag(field, value):
    codec = field.metadata["codec"]
    return codec.parse(value, f"--{field.name}") if codec else value


def _to_flag(field, value):
    codec = field.metadata["codec"]
    return codec.format(value) if codec and value is not None else value


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """The absl flag of one TrainConfig field. kind: "boolean", "integer", "float", "string",
    "enum" (with `choices`) or "list", i.e. absl's DEFINE_<kind>; default: as a flag value."""

    name: str
    kind: str
    default: object
    help: str
    choices: tuple | None = None


_SCALAR_FLAG_KINDS = {bool: "boolean", int: "integer", float: "float", str: "string"}


def flag_specs():
    """One FlagSpec per TrainConfig field, in field order."""
    specs = []
    for field in dataclasses.fields(TrainConfig):
        codec, choices = field.metadata["codec"], field.metadata["choices"]
        if codec is not None:
            kind = codec.kind
        elif choices is not None:
            kind = "enum"
        else:
            kind = _SCALAR_FLAG_KINDS[_non_optional(field.type)]
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None if field.default is dataclasses.MISSING else field.default
        specs.append(FlagSpec(field.name, kind, _to_flag(field, default), field.metadata["help"],
                              choices))
    return tuple(specs)


def _non_optional(annotation):
    """int for `int | None`, the annotation itself otherwise."""
    types_given = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return types_given[0] if types_given else annotation


def preset_defaults(architecture, schedule="progan"):
    """Field values that differ from the dataclass defaults (ProGAN's) for `architecture` (its
    registry record's presets) and then `schedule` (schedule.PRESETS, which win); the command
    line uses them for every flag not given. Unknown names bring none (validation names them)."""
    values = {}
    if architecture in architectures.NAMES:
        values.update(architectures.get(architecture).presets)
    values.update(schedule_lib.PRESETS.get(schedule, {}))
    return {name: dict(value) if isinstance(value, Mapping) else value
            for name, value in values.items()}
