"""python -m exports: export a run's generator as the next SavedModel version for TF Serving.

    python -m exports --checkpoint results/00000-quickstart
    python -m exports --checkpoint results/00000-quickstart/checkpoints/ckpt-12 \
        --out_dir serving --model_name faces --raw
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    parser = _Parser(
        prog="python -m exports",
        description="Export the generator of a training run as "
                    "<out_dir>/<model_name>/<version>/ (SavedModel for TF Serving).")
    parser.add_argument("--checkpoint", required=True,
                        help="run directory (latest checkpoint), its checkpoints/ directory, or a "
                             "checkpoint prefix such as <run dir>/checkpoints/ckpt-12")
    parser.add_argument("--out_dir", default=None,
                        help="directory of models; default <run dir>/export")
    parser.add_argument("--model_name", default="generator",
                        help="TF Serving model name (directory under --out_dir)")
    parser.add_argument("--raw", action="store_true",
                        help="export the trained generator instead of its moving average (EMA)")
    parser.add_argument("--resolution", type=int, default=None,
                        help="resolution to export; default the generator's final resolution")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    import exports  # TensorFlow is imported only once the arguments parse

    try:
        path = exports.export_checkpoint(args.checkpoint, args.out_dir, args.model_name,
                                         raw=args.raw, resolution=args.resolution)
    except (exports.ExportError, ValueError) as error:
        print(f"python -m exports: error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
