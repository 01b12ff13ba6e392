"""python -m progan_tf.import_official: an official NVIDIA ProGAN / StyleGAN (v1) pickle as a
TF Serving SavedModel, read without running any of the file's code.

    python -m progan_tf.import_official karras2018iclr-celebahq-1024x1024.pkl --out_dir serving
    python -m progan_tf.import_official stylegan-ffhq-1024x1024.pkl --out_dir serving \\
        --model_name ffhq --network Gs

Writes `<out_dir>/<model_name>/<version>/` exactly as `python -m exports` does (same layout,
signatures and serving_meta.json; StyleGAN adds `mapping`, `synthesis` and the `truncation_psi`
input of `generate_seeds`), at the resolution of the network's stored lod. serving_meta.json
also records the source file's name and SHA-256, its static_kwargs and lod, and StyleGAN's stored
truncation psi and cutoff: `serving_default` and `mapping` stay untruncated, `generate_seeds`
truncates the layers below the stored cutoff by the psi it is given, and
`python -m progan_tf.generate` defaults to the stored psi. Prints the new version directory.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

PROG = "python -m progan_tf.import_official"


def define_flags(flag_values=flags.FLAGS):
    """The command's flags; defined when it runs, not on import, so importing this module
    beside another command line (`progan_tf.metrics` also has --network) defines nothing."""
    flags.DEFINE_string("out_dir", None, "Directory of models; the SavedModel goes to "
                        "<out_dir>/<model_name>/<version>/.", flag_values=flag_values)
    flags.DEFINE_string("model_name", "generator", "TF Serving model name (directory under "
                        "--out_dir).", flag_values=flag_values)
    flags.DEFINE_enum("network", "Gs", ["Gs", "G"], "Network of the pickle to export: Gs (the "
                      "moving average NVIDIA's scripts render) or G.", flag_values=flag_values)


def import_official(path, out_dir, model_name="generator", network="Gs", progress=None):
    """Loads official pickle `path` and exports `network` ("Gs" or "G") as the next version of
    `<out_dir>/<model_name>/`; returns the version directory. Raises
    official.OfficialFormatError for a file it cannot load, exports.ExportError or ValueError
    for a bad model name or out_dir. progress: as `official.load` (e.g. sys.stderr)."""
    import exports
    from progan_tf import official

    if network not in ("Gs", "G"):
        raise ValueError(f"--network must be Gs or G, received {network!r}")
    loaded = official.load(path, progress=progress)
    generator = loaded.network(network)
    return exports.export_generator(generator, out_dir, model_name, meta=loaded.meta(network),
                                    resolution=loaded.trained_resolution(network))


def main(argv, flag_values=flags.FLAGS):
    if len(argv) != 2:
        raise app.UsageError(f"expected one pickle file, received {len(argv) - 1} arguments "
                             f"(usage: {PROG} PKL --out_dir DIR)")
    if not flag_values.out_dir:
        raise app.UsageError("--out_dir is required")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines would drown the progress
    import exports
    from progan_tf import official

    try:
        path = import_official(argv[1], flag_values.out_dir, flag_values.model_name,
                               flag_values.network, progress=sys.stderr)
    except (official.OfficialFormatError, exports.ExportError, ValueError, OSError) as error:
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _one_line(error):
    text = " ".join(str(error).split())
    return text or type(error).__name__


if __name__ == "__main__":
    define_flags()
    app.run(main)
