"""Command line: python -m progan_tf.metrics --metrics NAMES [sources] [--num N].

    # FID and SWD of an exported generator against its dataset (the papers' 50k / 16k images)
    python -m progan_tf.metrics --metrics fid,swd --data_dir datasets/fashion_mnist \\
        --saved_model results/00000-quickstart/export/generator
    # a run's latest checkpoint, 1,000 images each; appends to the run's metrics.jsonl and
    # writes TensorBoard scalars Metrics/<name> into the run directory
    python -m progan_tf.metrics --metrics swd,ms_ssim,fid --num 1000 \\
        --data_dir datasets/fashion_mnist --run_dir results/00000-quickstart
    # the reals' own numbers: SWD noise floor and MS-SSIM of the dataset
    python -m progan_tf.metrics --metrics swd_reals,ms_ssim_reals --data_dir datasets/emoji
    # perceptual path length (ppl_w* need a StyleGAN generator)
    python -m progan_tf.metrics --metrics ppl_zfull,ppl_wend --saved_model EXPORT --num 2000
    # an official NVIDIA pickle's Gs (read without running its code), untruncated
    python -m progan_tf.metrics --metrics fid --pickle karras2018iclr-celebahq-1024x1024.pkl \\
        --data_dir datasets/celebahq

Metrics: swd, swd_reals, ms_ssim, ms_ssim_reals, fid, ppl_zfull, ppl_zend, ppl_wfull, ppl_wend.
FID and PPL need the offline weights once: python -m progan_tf.metrics.weights fetch.
A StyleGAN generator from --run_dir or --pickle draws fresh noise for every fake (StyleGAN's
FID protocol) and renders the stored noise for PPL; an export (--saved_model) always renders its
stored noise. Fakes are untruncated unless --trunc is given (--pickle only).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_METRICS = flags.DEFINE_string(
    "metrics", None, "Comma-separated metric names: swd, swd_reals, ms_ssim, ms_ssim_reals, fid, "
    "ppl_zfull, ppl_zend, ppl_wfull, ppl_wend.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset pyramid (<name>-rXX.tfrecords); "
                                "its top level gives the reals.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Exported generator: a SavedModel "
                                   "directory or a model directory of numbered versions.")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "Training run directory (or checkpoint prefix): "
                               "the generator comes from its latest checkpoint unless "
                               "--saved_model is given; results go to its metrics.jsonl.")
_PICKLE = flags.DEFINE_string("pickle", None, "Official NVIDIA ProGAN/StyleGAN pickle (e.g. "
                              "karras2018iclr-celebahq-1024x1024.pkl), read without running its "
                              "code; excludes --saved_model.")
_NETWORK = flags.DEFINE_enum("network", None, ["Gs", "G"], "With --pickle: the network to "
                             "measure (default Gs, the moving average).")
_TRUNC = flags.DEFINE_float("trunc", None, "With a StyleGAN --pickle: truncation psi of the "
                            "fakes of swd, ms_ssim and fid (default: none, whatever psi the "
                            "pickle stores).")
_RAW = flags.DEFINE_boolean("raw", False, "With --run_dir: the trained generator instead of its "
                            "moving average.")
_NUM = flags.DEFINE_integer("num", None, "Images per metric (pairs for ppl_*). Default: the "
                            "papers' (swd 16384, ms_ssim 20000 = 10k pairs, fid 50000, "
                            "ppl 100000).", lower_bound=2)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per step.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of latents, SWD patches and PPL sampling.")
_MIRROR_REALS = flags.DEFINE_boolean("mirror_reals", False, "Flip a random half of the reals "
                                     "(for runs trained with mirror augmentation).")
_PPL_CROP = flags.DEFINE_boolean("ppl_crop", True, "PPL: crop to StyleGAN's face region "
                                 "(rows 3/8..7/8, cols 2/8..6/8).")
_FID_CACHE = flags.DEFINE_boolean("fid_reals_cache", True, "Cache the reals' Inception "
                                  "statistics in the cache directory.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Weights and statistics cache (default "
                                 "$PROGAN_TF_CACHE or ~/.cache/progan_tf).")
_RESULTS_FILE = flags.DEFINE_string("results_file", None, "Append results here (JSON lines); "
                                    "default <run_dir>/metrics.jsonl with --run_dir.")
_TENSORBOARD_DIR = flags.DEFINE_string("tensorboard_dir", None, "Directory for TensorBoard "
                                       "scalars Metrics/<name>; default the run directory "
                                       "with --run_dir.")
_KIMG = flags.DEFINE_float("kimg", None, "Training progress to record (default: read from the "
                           "checkpoint with --run_dir).")
_QUIET = flags.DEFINE_boolean("quiet", False, "No progress lines.")


def _generator(names, kimg):
    """(GeneratorFns or None, kimg, run directory or None) from --saved_model / --pickle /
    --run_dir."""
    from exports import run_dir as run_dir_lib
    from progan_tf import generators
    from progan_tf.metrics import evaluate, sources

    if _SAVED_MODEL.value and _PICKLE.value:
        raise generators.GeneratorError("--saved_model and --pickle exclude each other: give "
                                        "one generator")
    if _NETWORK.value and not _PICKLE.value:
        raise generators.GeneratorError("--network applies to --pickle only")
    if _TRUNC.value is not None and not _PICKLE.value:
        raise generators.GeneratorError("--trunc applies to --pickle only (exports and runs "
                                        "are measured untruncated)")
    run_dir = None
    if _RUN_DIR.value:
        try:
            run_dir = run_dir_lib.locate_checkpoint(_RUN_DIR.value, warn=False).run_dir
        except run_dir_lib.ExportError as error:
            raise generators.GeneratorError(f"--run_dir: {error}") from None
    if not any(evaluate.METRICS[name].needs_generator for name in names):
        return None, kimg, run_dir
    if _SAVED_MODEL.value:
        try:
            return generators.from_saved_model(_SAVED_MODEL.value), kimg, run_dir
        except generators.GeneratorError as error:
            raise generators.GeneratorError(f"--saved_model: {error}") from None
    if _PICKLE.value:
        try:
            generator = generators.from_pickle(_PICKLE.value, network=_NETWORK.value or "Gs",
                                               noise="random", truncation_psi=_TRUNC.value,
                                               progress=None if _QUIET.value else sys.stderr)
        except generators.GeneratorError as error:
            raise generators.GeneratorError(f"--pickle: {error}") from None
        return generator, kimg, run_dir
    if _RUN_DIR.value:
        generator, checkpoint_kimg = sources.generator_from_run_dir(_RUN_DIR.value,
                                                                    raw=_RAW.value)
        return generator, checkpoint_kimg if kimg is None else kimg, run_dir
    return None, kimg, run_dir


def _record(results, generator, kimg, run_dir):
    """Appends to the results file and writes TensorBoard scalars, printing where."""
    from progan_tf.metrics import evaluate
    from progan_tf.training.run_dir import METRICS_JSONL

    results_file = _RESULTS_FILE.value or (os.path.join(run_dir, METRICS_JSONL) if run_dir
                                           else None)
    extra = {"generator": None if generator is None else generator.description,
             "data_dir": _DATA_DIR.value}
    if results_file:
        evaluate.append_jsonl(results_file, results, kimg=kimg, extra=extra)
        print(f"appended to {results_file}")
    log_dir = _TENSORBOARD_DIR.value or run_dir
    if log_dir:
        evaluate.write_tensorboard(log_dir, results, step=int(round(kimg or 0)))
        print(f"TensorBoard scalars Metrics/<name> in {log_dir}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from data_tools.errors import DataError
    from progan_tf.generators import GeneratorError
    from progan_tf.metrics import evaluate, sources, weights

    if _CACHE_DIR.value:
        os.environ["PROGAN_TF_CACHE"] = os.path.abspath(os.path.expanduser(_CACHE_DIR.value))
    try:
        names = evaluate.parse_metric_names(_METRICS.value)
        reals = None
        if _DATA_DIR.value:
            reals = sources.RealImages(_DATA_DIR.value, mirror=_MIRROR_REALS.value, seed=_SEED.value)
        generator, kimg, run_dir = _generator(names, _KIMG.value)
        results = evaluate.compute_metrics(
            names, generator=generator, reals=reals, num=_NUM.value, batch_size=_BATCH_SIZE.value,
            seed=_SEED.value, ppl_crop=_PPL_CROP.value,
            fid_reals_cache=None if _FID_CACHE.value else False,
            progress_stream=None if _QUIET.value else sys.stderr)
    except (evaluate.MetricsError, sources.SourceError, GeneratorError, weights.WeightsError,
            DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for line in evaluate.format_results(results):
        print(line)
    _record(results, generator, kimg, run_dir)
    return 0


if __name__ == "__main__":
    app.run(main)
