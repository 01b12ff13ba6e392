"""Entry point: python -m progan_tf.train --flagfile=configs/quickstart.flags

Trains ProGAN progressively on a dataset made by `python -m data_tools`, writing
results/NNNNN-<desc>/ (log.txt, flags.json, network.json, checkpoints/, TensorBoard events,
reals.png, fakesKKKKKK.png, export/). The flags are generated from the fields of
`progan_tf.config.TrainConfig` (same names and help, after the original's config in snake_case);
the `*_dict` flags take resolution:value pairs, e.g. --minibatch_dict=4:128,8:64.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

# Both import TensorFlow (the networks), so `--help` loads it too.
from progan_tf import config  # noqa: E402
from progan_tf.training import distribute  # noqa: E402
from progan_tf.training import init_from  # noqa: E402
from progan_tf.training import loop  # noqa: E402
from progan_tf.training import precision  # noqa: E402

_DEFINE = {"boolean": flags.DEFINE_boolean, "integer": flags.DEFINE_integer,
           "float": flags.DEFINE_float, "string": flags.DEFINE_string, "list": flags.DEFINE_list}


def define_flags(flag_values=flags.FLAGS):
    """Defines one absl flag per TrainConfig field (config.flag_specs): same name, default and
    help."""
    for spec in config.flag_specs():
        if spec.kind == "enum":
            flags.DEFINE_enum(spec.name, spec.default, list(spec.choices), spec.help,
                              flag_values=flag_values)
        else:
            _DEFINE[spec.kind](spec.name, spec.default, spec.help, flag_values=flag_values)


define_flags()


def config_from_flags(flag_values=flags.FLAGS):
    """TrainConfig from parsed flags: presets of --architecture/--schedule for the flags not
    given on the command line or in a flag file; raises ValueError naming a bad flag."""
    return config.TrainConfig.from_flag_values(*_values_and_given(flag_values))


def _values_and_given(flag_values):
    names = [spec.name for spec in config.flag_specs()]
    values = {name: flag_values[name].value for name in names}
    given = {name for name in names if flag_values[name].present}
    return values, given


def init_from_flags(cfg, flag_values=flags.FLAGS, stream=sys.stderr):
    """(cfg, InitFrom, strategy or None) for --init_from: the pickle (or, resuming, the run
    directory) fixes the architecture and network flags, and the network flags given that
    differ are named in one warning line on `stream`. A multi_worker strategy is made first:
    it must exist before any TensorFlow op, and loading the pickle builds networks."""
    strategy = None
    if cfg.strategy == "multi_worker":
        strategy = distribute.make_strategy(cfg.strategy, cfg.worker_timeout_sec)
    init = init_from.prepare(cfg, progress=stream)
    cfg, warning = init_from.configure(cfg, init, _values_and_given(flag_values)[1])
    if warning:
        print(f"progan_tf.train: {warning}", file=stream, flush=True)
    return cfg, init, strategy


def precision_warning(cfg, stream=sys.stderr):
    """Prints one warning line on `stream` when cfg.precision will be slow on this machine
    (bfloat16 on a CPU without bfloat16 arithmetic or with oneDNN off; precision.py)."""
    import tensorflow as tf  # loaded already (by config); listing devices runs no op
    on_accelerator = bool(tf.config.list_physical_devices("GPU")
                          or tf.config.list_physical_devices("TPU"))
    warning = precision.bfloat16_warning(cfg.precision, on_accelerator)
    if warning:
        print(f"progan_tf.train: {warning}", file=stream, flush=True)
    return warning


def _fail(message):
    print(f"progan_tf.train: error: {message}", file=sys.stderr)
    sys.exit(1)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines would drown the progress
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]} (flags are written --name=value)")
    init, strategy = None, None
    try:
        cfg = config_from_flags()
        if cfg.init_from:
            cfg, init, strategy = init_from_flags(cfg)
    except (ValueError, loop.TrainingError) as error:
        _fail(error)
    precision_warning(cfg)
    try:
        result = loop.train(cfg, strategy=strategy, init=init)  # flags.json: cfg.to_json_dict()
    except (OSError, loop.TrainingError) as error:
        _fail(error)
    if result.status == "interrupted":
        sys.exit(128 + (result.signal or 0))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
