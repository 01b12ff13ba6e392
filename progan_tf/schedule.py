"""ProGAN's progressive schedule as pure functions of the images shown (SPEC 1.5, 2):
level of detail (lod), fade-in alpha, current resolution, minibatch, learning rate, tick length.

Follows [PG] train.py `TrainingSchedule`: with P = training_kimg + transition_kimg,

    phase = floor(kimg / P)
    lod   = log2(R) - log2(initial) - phase - max(kimg - phase * P - training_kimg, 0) / transition_kimg

clamped at 0. lod 0 is the final resolution R; the current resolution is R / 2^floor(lod) (during
a fade it is already the new one) and the fade-in alpha (weight of the new layers) is
1 - (lod - floor(lod)).
"""

import dataclasses
import math
import types

# [PG] config.py, preset v2-1gpu (the original's default) and its fp32 per-GPU caps.
DEFAULT_MINIBATCH_BASE = 4
DEFAULT_MINIBATCH_DICT = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4}
DEFAULT_MAX_MINIBATCH_PER_REPLICA = {256: 16, 512: 8, 1024: 4}
DEFAULT_LRATE_BASE = 0.001
DEFAULT_LRATE_DICT = {1024: 0.0015}
DEFAULT_TICK_KIMG_BASE = 160
DEFAULT_TICK_KIMG_DICT = {4: 160, 8: 140, 16: 120, 32: 100, 64: 80, 128: 60, 256: 40, 512: 20,
                          1024: 10}


def is_power_of_two(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0 and (
        value & (value - 1)) == 0


def parse_resolution_dict(text, flag="--minibatch_dict", value_type=int):
    """Parses 'resolution:value' pairs such as '4:128,8:128,16:64' into {4: 128, 8: 128, 16: 64}.

    An empty string gives {}. Raises ValueError naming `flag` on a malformed pair, a resolution
    that is not a power of two >= 4, a repeated resolution or a value that is not positive.
    """
    result = {}
    text = (text or "").strip()
    if not text:
        return result
    for item in text.split(","):
        item = item.strip()
        key, sep, value = item.partition(":")
        try:
            if not sep:
                raise ValueError
            resolution = int(key)
            number = value_type(value)
        except ValueError:
            raise ValueError(f"{flag}: expected comma-separated resolution:value pairs such as "
                             f"4:128,8:64, got {item!r}") from None
        if not is_power_of_two(resolution) or resolution < 4:
            raise ValueError(f"{flag}: resolution must be a power of two >= 4, got {resolution} "
                             f"in {item!r}")
        if resolution in result:
            raise ValueError(f"{flag}: resolution {resolution} given twice")
        if not number > 0 or not math.isfinite(number):
            raise ValueError(f"{flag}: value must be positive, got {value!r} for resolution "
                             f"{resolution}")
        result[resolution] = number
    return result


def format_resolution_dict(mapping):
    """Inverse of `parse_resolution_dict`: {4: 128, 8: 64} -> '4:128,8:64' (a whole float is
    written as an integer: {4: 160.0} -> '4:160')."""
    return ",".join(f"{res}:{format_number(value)}" for res, value in sorted(mapping.items()))


def format_number(value):
    """A number as a flag value: a whole float without its '.0' (160.0 -> '160')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def lod_at(kimg, resolution, initial_resolution=4, training_kimg=600.0, transition_kimg=600.0):
    """Level of detail after `kimg` thousand real images ([PG] TrainingSchedule).

    resolution: final resolution R; initial_resolution: the first one trained (4 in ProGAN,
    8 in StyleGAN). Returns a float in [0, log2(R) - log2(initial)].
    """
    phase_kimg_total = training_kimg + transition_kimg
    phase = int(math.floor(kimg / phase_kimg_total)) if phase_kimg_total > 0 else 0
    phase_kimg = kimg - phase * phase_kimg_total
    lod = math.log2(resolution) - math.floor(math.log2(initial_resolution)) - phase
    if transition_kimg > 0:
        lod -= max(phase_kimg - training_kimg, 0.0) / transition_kimg
    return max(lod, 0.0)


def resolution_at_lod(lod, resolution):
    """Resolution being trained at `lod`: R / 2^floor(lod) (already the new one in a fade)."""
    return resolution >> int(math.floor(lod))


def fade_alpha_at_lod(lod):
    """Weight of the newest layers: 1 - (lod - floor(lod)); 1 when no fade is running."""
    return 1.0 - (lod - math.floor(lod))


def lod_changed(lod, previous_lod):
    """True when floor(lod) or ceil(lod) differs: the original resets Adam's state then."""
    if previous_lod is None:
        return True
    return (math.floor(lod) != math.floor(previous_lod)
            or math.ceil(lod) != math.ceil(previous_lod))


@dataclasses.dataclass(frozen=True)
class Phase:
    """Training parameters at one moment of the schedule.

    kimg: thousands of real images shown so far.
    lod: level of detail (0 = final resolution).
    resolution: resolution being trained, R / 2^floor(lod).
    fade_alpha: weight of the newest layers (1 - frac(lod)).
    minibatch: global minibatch size.
    g_lrate, d_lrate: learning rates of the generator and discriminator.
    tick_kimg: length of a progress tick at this resolution.
    """

    kimg: float
    lod: float
    resolution: int
    fade_alpha: float
    minibatch: int
    g_lrate: float
    d_lrate: float
    tick_kimg: float


def _frozen(mapping):
    return types.MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The original's `TrainingSchedule` parameters; `at(kimg)` evaluates them.

    resolution: final resolution R (power of two).
    initial_resolution: first resolution trained (lod_initial_resolution).
    training_kimg: thousands of images to stabilise each resolution (lod_training_kimg).
    transition_kimg: thousands of images to fade in the next one (lod_transition_kimg).
    minibatch_base / minibatch_dict: global minibatch, with per-resolution overrides.
    max_minibatch_per_replica: per-resolution cap of the per-replica minibatch.
    num_replicas: replicas the global minibatch is split over.
    g_lrate_base / g_lrate_dict, d_lrate_base / d_lrate_dict: learning rates.
    tick_kimg_base / tick_kimg_dict: progress tick length.
    """

    resolution: int
    initial_resolution: int = 4
    training_kimg: float = 600.0
    transition_kimg: float = 600.0
    minibatch_base: int = DEFAULT_MINIBATCH_BASE
    minibatch_dict: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: _frozen(DEFAULT_MINIBATCH_DICT))
    max_minibatch_per_replica: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: _frozen(DEFAULT_MAX_MINIBATCH_PER_REPLICA))
    num_replicas: int = 1
    g_lrate_base: float = DEFAULT_LRATE_BASE
    g_lrate_dict: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: _frozen(DEFAULT_LRATE_DICT))
    d_lrate_base: float = DEFAULT_LRATE_BASE
    d_lrate_dict: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: _frozen(DEFAULT_LRATE_DICT))
    tick_kimg_base: float = DEFAULT_TICK_KIMG_BASE
    tick_kimg_dict: types.MappingProxyType = dataclasses.field(
        default_factory=lambda: _frozen(DEFAULT_TICK_KIMG_DICT))

    def __post_init__(self):
        for name in ("minibatch_dict", "max_minibatch_per_replica", "g_lrate_dict",
                     "d_lrate_dict", "tick_kimg_dict"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if not is_power_of_two(self.resolution) or self.resolution < 4:
            raise ValueError(f"resolution must be a power of two >= 4, got {self.resolution!r}")
        if (not is_power_of_two(self.initial_resolution) or self.initial_resolution < 4
                or self.initial_resolution > self.resolution):
            raise ValueError(f"lod_initial_resolution must be a power of two between 4 and the "
                             f"resolution {self.resolution}, got {self.initial_resolution!r}")
        if self.training_kimg < 0 or self.transition_kimg < 0:
            raise ValueError(f"lod_training_kimg and lod_transition_kimg must be >= 0, got "
                             f"{self.training_kimg!r} and {self.transition_kimg!r}")
        if self.num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, got {self.num_replicas!r}")
        if self.minibatch_base < 1:
            raise ValueError(f"minibatch_base must be >= 1, got {self.minibatch_base!r}")

    @property
    def resolutions(self):
        """Resolutions the schedule visits: initial, 2 * initial, ..., R."""
        res, out = self.initial_resolution, []
        while res <= self.resolution:
            out.append(res)
            res *= 2
        return tuple(out)

    def minibatch_at(self, resolution):
        """Global minibatch at `resolution`, capped by max_minibatch_per_replica * replicas."""
        minibatch = int(self.minibatch_dict.get(resolution, self.minibatch_base))
        if resolution in self.max_minibatch_per_replica:
            minibatch = min(minibatch,
                            int(self.max_minibatch_per_replica[resolution]) * self.num_replicas)
        return minibatch

    def check_minibatches(self):
        """Raises ValueError when a minibatch the schedule will use is not divisible by the
        number of replicas (each replica must get the same share)."""
        for res in self.resolutions:
            minibatch = self.minibatch_at(res)
            if minibatch % self.num_replicas:
                raise ValueError(
                    f"--minibatch_dict/--minibatch_base: the minibatch {minibatch} at resolution "
                    f"{res} is not divisible by the {self.num_replicas} replicas")

    def lod_at(self, kimg):
        return lod_at(kimg, self.resolution, self.initial_resolution, self.training_kimg,
                      self.transition_kimg)

    def at(self, kimg):
        """The `Phase` after `kimg` thousand real images."""
        lod = self.lod_at(kimg)
        resolution = resolution_at_lod(lod, self.resolution)
        return Phase(
            kimg=kimg, lod=lod, resolution=resolution, fade_alpha=fade_alpha_at_lod(lod),
            minibatch=self.minibatch_at(resolution),
            g_lrate=float(self.g_lrate_dict.get(resolution, self.g_lrate_base)),
            d_lrate=float(self.d_lrate_dict.get(resolution, self.d_lrate_base)),
            tick_kimg=float(self.tick_kimg_dict.get(resolution, self.tick_kimg_base)))

    def kimg_fully_grown(self):
        """kimg at which lod first reaches 0 (e.g. 9,600 for 4 -> 1024 with 600 + 600)."""
        stages = int(math.log2(self.resolution) - math.log2(self.initial_resolution))
        return stages * (self.training_kimg + self.transition_kimg)


# StyleGAN ([SG] train.py, SPEC 3): start at 8x8, 600 + 600 kimg per resolution, 25,000 kimg,
# the learning rates of its 8-GPU table at every GPU count; minibatches as ProGAN's v2 presets.
STYLEGAN_LRATE_DICT = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}
STYLEGAN_TOTAL_KIMG = 25000.0
STYLEGAN_INITIAL_RESOLUTION = 8

# rosinality/style-based-gan-pytorch train.py --sched (SPEC 3 [ROS]).
ROSINALITY_MINIBATCH_BASE = 32
ROSINALITY_MINIBATCH_DICT = {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 32, 256: 32}
ROSINALITY_LRATE_DICT = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}
ROSINALITY_PHASE_KIMG = 600.0


@dataclasses.dataclass(frozen=True)
class RosinalitySchedule(Schedule):
    """rosinality's StyleGAN schedule: each resolution after the first FADES IN over its first
    `transition_kimg`, then stabilises for `training_kimg` (the reverse of ProGAN); the first
    resolution trains 2 x 600 kimg at alpha 1; after the last resolution's phase alpha stays 1.

    With P = training_kimg + transition_kimg, stage s = floor(kimg / P) (resolution
    initial * 2^s, capped at R) and u = images shown in the stage,
    alpha = min(1, (u + 1) / (transition_kimg * 1000)) ([ROS] `1 / phase * (used_sample + 1)`),
    lod = log2(R / resolution) + 1 - alpha. Takes the same arguments as `Schedule`.
    """

    def _stage(self, kimg):
        per_stage = self.training_kimg + self.transition_kimg
        last = len(self.resolutions) - 1
        stage = int(math.floor(kimg / per_stage)) if per_stage > 0 else last
        if stage > last:
            return last, None  # past the final resolution's phase: alpha 1 from here on
        return stage, kimg - stage * per_stage

    def fade_alpha_at(self, kimg):
        stage, stage_kimg = self._stage(kimg)
        if stage == 0 or stage_kimg is None or self.transition_kimg <= 0:
            return 1.0
        return min(1.0, (stage_kimg * 1000.0 + 1.0) / (self.transition_kimg * 1000.0))

    def resolution_at(self, kimg):
        return self.resolutions[self._stage(kimg)[0]]

    def lod_at(self, kimg):
        stages_left = math.log2(self.resolution) - math.log2(self.resolution_at(kimg))
        return stages_left + 1.0 - self.fade_alpha_at(kimg)

    def at(self, kimg):
        resolution = self.resolution_at(kimg)
        return Phase(
            kimg=kimg, lod=self.lod_at(kimg), resolution=resolution,
            fade_alpha=self.fade_alpha_at(kimg), minibatch=self.minibatch_at(resolution),
            g_lrate=float(self.g_lrate_dict.get(resolution, self.g_lrate_base)),
            d_lrate=float(self.d_lrate_dict.get(resolution, self.d_lrate_base)),
            tick_kimg=float(self.tick_kimg_dict.get(resolution, self.tick_kimg_base)))

    def kimg_fully_grown(self):
        """kimg at which the final resolution is faded in completely."""
        stages = len(self.resolutions) - 1
        if stages == 0:
            return 0.0
        return stages * (self.training_kimg + self.transition_kimg) + self.transition_kimg


_CLASSES = {"progan": Schedule, "rosinality": RosinalitySchedule}
SCHEDULES = tuple(_CLASSES)

# TrainConfig field values each --schedule brings for the flags not given (after the
# architecture's presets, so these win): rosinality's minibatch and learning-rate tables,
# 600 kimg phases, WGAN-GP, EMA 0.999 per step and no Adam resets ([ROS]).
PRESETS = {
    "progan": types.MappingProxyType({}),
    "rosinality": types.MappingProxyType(dict(
        minibatch_base=ROSINALITY_MINIBATCH_BASE, minibatch_dict=dict(ROSINALITY_MINIBATCH_DICT),
        lrate_dict=dict(ROSINALITY_LRATE_DICT), lod_training_kimg=ROSINALITY_PHASE_KIMG,
        lod_transition_kimg=ROSINALITY_PHASE_KIMG, loss="wgan_gp", ema_kimg=0.0, ema_beta=0.999,
        reset_optimizer_on_lod_change=False)),
}


def schedule_class(name):
    """Schedule class for --schedule: "progan" (stabilise, then fade) or "rosinality"."""
    if name not in _CLASSES:
        raise ValueError(f"--schedule: must be one of {', '.join(SCHEDULES)}, got {name!r}")
    return _CLASSES[name]
