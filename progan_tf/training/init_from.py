"""Fine-tuning from an official NVIDIA pickle (`--init_from=PKL`): what the run takes from the
file (architecture, network configuration, G/D/Gs weights, the lod to continue from), the checks
against the dataset and the flags, and where on the schedule training starts.

    init = prepare(cfg)                    # the pickle, or the run directory when resuming
    cfg, warning = configure(cfg, init, given)   # network flags come from the pickle
    check_data(init, resolution, num_channels, label_size, data_dir)
    nimg = start_nimg(schedule, init.lod)  # the original's resume_kimg: lod 0 = fully grown

Once a run has a checkpoint, resuming it reads `network.json` of its run directory (which holds
the pickle's configuration), never the pickle again, so the file may be gone by then.
"""

import dataclasses
import json
import math
import os

import numpy as np

from progan_tf.training import run_dir as run_dir_lib

# Keys of a network config that are not constructor arguments.
_NOT_KWARGS = ("name", "trainable", "dtype", "seed")
# Checked against the data instead (an error, not a warning).
_DATA_KEYS = ("resolution", "num_channels", "label_size")


@dataclasses.dataclass
class InitFrom:
    """What a run initialised from a pickle is built from.

    path: the pickle (--init_from). architecture: "progan" | "stylegan".
    generator_config, discriminator_config: the networks' `get_config()` (network.json's).
    lod: G's stored lod (where the schedule starts). networks: the `official.load` result
    whose G, D and Gs give the initial weights; None when resuming (`run_dir` is then the run
    directory whose network.json was read, and the checkpoint gives the weights).
    """

    path: str
    architecture: str
    generator_config: dict
    discriminator_config: dict
    lod: float = 0.0
    networks: object = None
    run_dir: str | None = None

    @property
    def resolution(self):
        return int(self.generator_config["resolution"])

    @property
    def num_channels(self):
        return int(self.generator_config["num_channels"])

    @property
    def label_size(self):
        return int(self.generator_config.get("label_size", 0))

    def network_kwargs(self):
        """(g_kwargs, d_kwargs): constructor arguments of the two networks."""
        return (_kwargs(self.generator_config), _kwargs(self.discriminator_config))

    def source(self):
        """For messages: the pickle, or the run directory it was read from."""
        if self.run_dir:
            return os.path.join(self.run_dir, run_dir_lib.NETWORK_JSON)
        return self.path


def _kwargs(network_config):
    return {key: value for key, value in network_config.items() if key not in _NOT_KWARGS}


def _config(network):
    return json.loads(json.dumps(network.get_config()))  # plain lists, as network.json holds


def prepare(cfg, progress=None):
    """InitFrom of `cfg.init_from`: from the run directory's network.json when `cfg.resume`
    names a run to continue, else from the pickle (`progan_tf.official.load`, which never runs
    the file's code). Raises ValueError naming the file when it cannot be used."""
    resume_dir = run_dir_lib.resolve_resume(cfg)
    if resume_dir:
        return from_run_dir(cfg.init_from, resume_dir)
    return from_pickle(cfg.init_from, progress=progress)


def from_pickle(path, progress=None):
    """InitFrom of an official pickle (all three networks loaded)."""
    from progan_tf import official

    if not os.path.isfile(path):
        raise ValueError(f"--init_from: {path} is not a file")
    try:
        loaded = official.load(path, progress=progress)
    except official.OfficialFormatError as error:
        raise ValueError(f"--init_from: {_first_line(error)}") from None
    except OSError as error:
        raise ValueError(f"--init_from: {path}: {_first_line(error)}") from None
    return InitFrom(path=os.fspath(path), architecture=loaded.architecture,
                    generator_config=_config(loaded.G), discriminator_config=_config(loaded.D),
                    lod=float(loaded.lod), networks=loaded)


def from_run_dir(path, run_dir):
    """InitFrom of a run started from `path`, as its network.json describes it (no weights:
    the checkpoint has them)."""
    network_json = os.path.join(run_dir, run_dir_lib.NETWORK_JSON)
    try:
        with open(network_json, encoding="utf-8") as file:
            network = json.load(file)
        return InitFrom(path=path, architecture=network["architecture"],
                        generator_config=network["generator"],
                        discriminator_config=network["discriminator"], run_dir=run_dir)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"--resume: cannot read {network_json}: {_first_line(error)}") from None


def _first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# ---------------------------------------------------------------------------------------------
# Flags and data.


def network_settings(init, cfg):
    """{field of `cfg` (a TrainConfig): value} that the pickle fixes: --architecture and every
    network flag named like a key of the networks' configs (the generator's value where both
    have it)."""
    fields = {field.name for field in dataclasses.fields(cfg)}
    settings = {"architecture": init.architecture}
    if not init.label_size:
        # An unconditional file ignores the dataset's labels. (A conditional one trains with
        # labels whatever --use_labels says; `check_data` names a dataset without them.)
        settings["use_labels"] = False
    for network_config in (init.discriminator_config, init.generator_config):
        settings.update({key: value for key, value in network_config.items()
                         if key in fields and key not in _DATA_KEYS})
    return settings


def configure(cfg, init, given=None):
    """(TrainConfig, warning line or None): `cfg` with the network flags set to the pickle's
    values (and, for flags not in `given`, the presets of the pickle's architecture: StyleGAN's
    loss, EMA, schedule), plus one line naming every given network flag whose value differs
    from the pickle's; those values are not applied. given: the flags set on the command line
    or in a flag file; None = a config built in code (no presets, no warning)."""
    settings = network_settings(init, cfg)
    if given is None:
        return cfg.replace(**settings), None
    differing = [f"--{name}={_flag_text(getattr(cfg, name))} (the pickle has "
                 f"{_flag_text(value)})"
                 for name, value in settings.items()
                 if name in given and name != "use_labels"
                 and _differs(getattr(cfg, name), value)]
    if "use_labels" in given and cfg.use_labels != bool(init.label_size):
        differing.append(f"--use_labels={_flag_text(cfg.use_labels)} (the pickle is "
                         f"{'conditional' if init.label_size else 'unconditional'})")
    values = cfg.to_json_dict()
    values.update(settings)
    configured = type(cfg).from_flag_values(values, set(given) | set(settings))
    warning = None
    if differing:
        warning = (f"warning: --init_from: the networks come from {init.source()}; ignoring "
                   f"{', '.join(differing)}")
    return configured, warning


def _differs(flag_value, value):
    if isinstance(value, float) or isinstance(flag_value, float):
        return flag_value is None or not math.isclose(float(flag_value), float(value))
    return flag_value != value


def _flag_text(value):
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def check_data(init, resolution, num_channels, label_size, data_dir):
    """Raises ValueError when the dataset cannot train the pickle's networks: another
    resolution or channel count, or labels of another size for a conditional model (an
    unconditional model ignores the dataset's labels)."""
    where = f"--init_from: {init.source()}"
    if resolution != init.resolution:
        raise ValueError(f"{where} holds {init.resolution}x{init.resolution} networks; the "
                         f"dataset {data_dir} is {resolution}x{resolution}")
    if num_channels != init.num_channels:
        raise ValueError(f"{where} holds networks of {init.num_channels} image channel(s); "
                         f"the dataset {data_dir} has {num_channels}")
    if init.label_size and label_size != init.label_size:
        have = f"{label_size} label columns" if label_size else "no labels"
        raise ValueError(f"{where} is conditional on {init.label_size} labels; the dataset "
                         f"{data_dir} has {have}")


# ---------------------------------------------------------------------------------------------
# Schedule and weights.


def start_nimg(schedule, lod, total_kimg=None):
    """The first image count at which `schedule` reaches `lod` (the schedule's lod never grows
    with the images shown): the fully grown point for lod 0, the start of that resolution's
    stabilising phase for a whole lod, the point of the fade for a fractional one (to within the
    lod one image changes). Raises ValueError when the schedule never reaches `lod`, or (with
    `total_kimg`) only after the run would end."""
    first_lod = schedule.lod_at(0.0)
    if lod > first_lod + 1e-6:
        raise ValueError(f"--init_from: the pickle's lod {lod:g} "
                         f"({schedule.resolution >> int(math.floor(lod))}x"
                         f"{schedule.resolution >> int(math.floor(lod))}) comes before the "
                         f"schedule's first resolution --lod_initial_resolution="
                         f"{schedule.initial_resolution}")
    if lod != math.floor(lod) and schedule.transition_kimg <= 0:
        raise ValueError(f"--init_from: the schedule never reaches the pickle's lod {lod:g}, "
                         f"a point of a fade (--lod_transition_kimg is 0)")
    low, high = 0, int(math.ceil(schedule.kimg_fully_grown() * 1000)) + 1
    while low < high:  # the first image count whose lod is at most `lod`
        middle = (low + high) // 2
        if schedule.lod_at(middle / 1000.0) <= lod + 1e-9:
            high = middle
        else:
            low = middle + 1
    if total_kimg is not None and low >= round(total_kimg * 1000):
        raise ValueError(f"--total_kimg: {total_kimg:g} ends before the schedule reaches the "
                         f"pickle's lod {lod:g} at kimg {low / 1000:g} (as the original's "
                         f"resume_kimg, training continues from there: give a larger "
                         f"--total_kimg)")
    return low


def copy_weights(source, target, what):
    """Assigns every weight of `source` to the same weight of `target` (two networks built
    from one config: the same weights in the same order). Raises ValueError on a mismatch."""
    pairs = list(zip(source.weights, target.weights))
    if len(source.weights) != len(target.weights):
        raise ValueError(f"--init_from: {what} has {len(source.weights)} weights, the network "
                         f"to train {len(target.weights)}")
    for from_weight, to_weight in pairs:
        if (_local_path(from_weight) != _local_path(to_weight)
                or tuple(from_weight.shape) != tuple(to_weight.shape)):
            raise ValueError(f"--init_from: {what} weight {from_weight.path} "
                             f"{tuple(from_weight.shape)} does not match {to_weight.path} "
                             f"{tuple(to_weight.shape)}")
        to_weight.assign(np.asarray(from_weight.numpy(), to_weight.dtype))


def _local_path(weight):
    """A weight's path without its network's name ("generator/block_4x4/conv/kernel" ->
    "block_4x4/conv/kernel")."""
    return weight.path.split("/", 1)[-1]
