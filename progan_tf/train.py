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
from progan_tf.training import loop  # noqa: E402

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
    names = [spec.name for spec in config.flag_specs()]
    values = {name: flag_values[name].value for name in names}
    given = {name for name in names if flag_values[name].present}
    return config.TrainConfig.from_flag_values(values, given)


def _fail(message):
    print(f"progan_tf.train: error: {message}", file=sys.stderr)
    sys.exit(1)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines would drown the progress
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]} (flags are written --name=value)")
    try:
        cfg = config_from_flags()
    except ValueError as error:
        _fail(error)
    try:
        result = loop.train(cfg)  # flags.json: cfg.to_json_dict()
    except (OSError, loop.TrainingError) as error:
        _fail(error)
    if result.status == "interrupted":
        sys.exit(128 + (result.signal or 0))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
