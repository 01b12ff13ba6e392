"""Runs the registered metrics (`METRICS`, collected from the metric modules; base.py says what
a metric registers) in shared passes over reals and fakes, and records the results
(`metrics.jsonl`, TensorBoard `Metrics/<name>`). This is the API the trainer calls every N kimg:

    results = compute_metrics(["fid", "swd"], generator=generator_from_network(Gs),
                              reals=RealImages(data_dir), num=10000)
    append_jsonl(os.path.join(run_dir, "metrics.jsonl"), results, kimg=kimg)
    write_tensorboard(summary_writer, results, step=int(kimg))
"""

import dataclasses
import json
import os
import sys
import time

import numpy as np

from progan_tf.metrics import fid, ms_ssim, ppl, swd
from progan_tf.metrics.base import MetricsError, Request
from progan_tf.utils.progress import Progress

# The registry: every metric module's Metric records, in the order the help text lists them.
METRICS = {metric.name: metric
           for module in (swd, ms_ssim, fid, ppl) for metric in module.METRICS}


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """Outcome of one metric.

    metric: its name ("swd"); values: result name -> float ({"SWDx1e3_64": ..., "SWDx1e3_avg":
    ...}); num: images (pairs for PPL) used; seconds: its own work plus the passes that produced
    its images (a pass shared by several metrics counts for each).
    """

    metric: str
    values: dict
    num: int
    seconds: float

    @property
    def value(self):
        """The headline number: the level average for SWD, else the single value."""
        for key, value in self.values.items():
            if key.endswith("_avg"):
                return value
        return next(iter(self.values.values()))


def parse_metric_names(text):
    """"swd,fid" -> ["swd", "fid"]; MetricsError naming unknown entries."""
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise MetricsError(f"--metrics: unknown metric(s) {unknown or [text]}; known: "
                           f"{', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def _check(requests):
    """MetricsError for the first request that cannot run, before any work starts."""
    for name, request in requests.items():
        metric = METRICS[name]
        if metric.needs_reals and request.reals is None:
            raise MetricsError(f"{name} needs real images: give --data_dir")
        if metric.needs_generator and request.generator is None:
            raise MetricsError(f"{name} needs a generator: give --saved_model, --run_dir or "
                               f"--pickle")
        if metric.check is not None:
            metric.check(request)
        if request.num < 2:
            raise MetricsError(f"--num must be at least 2, got {request.num}")


def compute_metrics(names, generator=None, reals=None, num=None, batch_size=32, seed=0,
                    ppl_crop=True, fid_reals_cache=None, feature_fn=None, distance_fn=None,
                    progress_stream=sys.stderr):
    """Computes metrics; returns {metric: MetricResult} in the order of `names`.

    Args:
        names: metric names (keys of METRICS) or a comma-separated string.
        generator: progan_tf.generators.GeneratorFns (every metric but swd_reals,
            ms_ssim_reals needs one).
        reals: sources.RealImages (needed by swd, swd_reals, ms_ssim_reals, fid).
        num: images per metric (pairs for PPL); None = each metric's default (METRICS).
        batch_size: images per generator / Inception / LPIPS step.
        seed: seeds latents, labels, SWD patches and directions, PPL sampling.
        ppl_crop: crop PPL images to the face region (StyleGAN does; SPEC 5).
        fid_reals_cache: directory caching the reals' Inception statistics (None: the weights
            cache directory; False: no cache).
        feature_fn: images uint8 [n, H, W, C] -> [n, D] features for FID (default Inception-v3).
        distance_fn: (images0, images1) float [-1, 1] -> [n] for PPL (default LPIPS-VGG16).
        progress_stream: where progress lines go (None: silent).
    """
    names = parse_metric_names(names) if isinstance(names, str) else list(dict.fromkeys(names))
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise MetricsError(f"unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
    run = Request(generator, reals, 0, seed=seed, batch_size=batch_size,
                  progress_stream=progress_stream, ppl_crop=ppl_crop,
                  fid_reals_cache=fid_reals_cache, feature_fn=feature_fn,
                  distance_fn=distance_fn)
    requests = {name: dataclasses.replace(run, num=int(num or METRICS[name].default_num))
                for name in names}
    _check(requests)
    plans = {name: METRICS[name].plan(request) for name, request in requests.items()}

    # One pass over the reals and one over the fakes feed every metric's windows.
    real_windows = [window for plan in plans.values() for window in plan.reals]
    fake_windows = [window for plan in plans.values() for window in plan.fakes]
    pass_seconds = {
        "reals": _run_pass("reals", real_windows,
                           lambda total: reals.batches(total, batch_size=batch_size),
                           progress_stream),
        "fakes": _run_pass("fakes", fake_windows,
                           lambda total: _fake_batches(generator, reals, total, batch_size, seed),
                           progress_stream),
    }
    return {name: _finish(name, plans[name], requests[name].num, pass_seconds)
            for name in names}


def _finish(name, plan, num, pass_seconds):
    """MetricResult of a plan whose windows have been fed."""
    began = time.monotonic()
    values = {key: float(value) for key, value in plan.finish().items()}
    seconds = time.monotonic() - began + sum(w.seconds for w in plan.reals + plan.fakes)
    seconds += (pass_seconds["reals"] if plan.reals else 0.0) + (
        pass_seconds["fakes"] if plan.fakes else 0.0)
    return MetricResult(name, values, num, seconds)


def _run_pass(label, windows, batches, stream):
    """Takes images 0 .. max(window end) - 1 from the iterator factory `batches(total)` and
    offers each batch to every window. Returns the seconds spent producing images."""
    total = max((window.end for window in windows), default=0)
    if not total:
        return 0.0
    iterator = batches(total)
    produced, producing = 0, 0.0
    with Progress(label, total, stream=stream, enabled=stream is not None) as progress:
        while produced < total:
            began = time.monotonic()
            images = next(iterator)
            producing += time.monotonic() - began
            for window in windows:
                window.offer(images, produced)
            produced += len(images)
            progress.update(len(images))
    return producing


def _fake_batches(generator, reals, total, batch_size, seed):
    """Yields `total` generated uint8 images in batches; latents (and labels) from `seed`."""
    rng = np.random.default_rng([seed, 1])
    made = 0
    while made < total:
        n = min(batch_size, total - made)
        latents = rng.standard_normal((n, generator.latent_size)).astype(np.float32)
        labels = generator.sample_labels(n, rng, None if reals is None else reals.labels)
        images = np.asarray(generator.images(latents, labels))
        if images.ndim != 4 or images.dtype != np.uint8:
            raise MetricsError(f"{generator.description}: expected uint8 [N, H, W, C] images, "
                               f"got {images.dtype} {images.shape}")
        made += n
        yield images


def append_jsonl(path, results, kimg=None, extra=None):
    """Appends one JSON line per MetricResult to `path`:
    {"metric", "kimg", "value", <each result name>, "num", "time", "timestamp", **extra}.
    Each line goes out in a single write on an O_APPEND descriptor, so concurrent writers
    (the trainer) cannot interleave inside a line."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    lines = []
    for result in results.values():
        record = {"metric": result.metric, "kimg": kimg, "value": result.value, **result.values,
                  "num": result.num, "time": round(result.seconds, 3),
                  "timestamp": round(time.time(), 3), **(extra or {})}
        lines.append(json.dumps(record, sort_keys=False) + "\n")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for line in lines:
            os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def write_tensorboard(writer_or_logdir, results, step=0):
    """Writes every result value as a scalar `Metrics/<result name>` at `step`.

    writer_or_logdir: a tf.summary writer (the trainer's) or a log directory.
    """
    import tensorflow as tf

    writer = writer_or_logdir
    if isinstance(writer_or_logdir, (str, os.PathLike)):
        writer = tf.summary.create_file_writer(os.fspath(writer_or_logdir))
    with writer.as_default():
        for result in results.values():
            for key, value in result.values.items():
                tf.summary.scalar(f"Metrics/{key}", value, step=int(step))
    writer.flush()


def format_results(results):
    """Human-readable lines: "fid            12.3456   (50000 images, 5h 1m)"."""
    lines = []
    for result in results.values():
        unit = METRICS[result.metric].unit if result.metric in METRICS else "images"
        for key, value in result.values.items():
            lines.append(f"{key:<22} {value:12.4f}   ({result.num} {unit}, "
                         f"{result.seconds:.1f} s)")
    return lines
