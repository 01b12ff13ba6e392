"""Runs several metrics in shared passes over reals and fakes, and records the results
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

from progan_tf.metrics import fid as fid_lib
from progan_tf.metrics import ms_ssim as ms_ssim_lib
from progan_tf.metrics import ppl as ppl_lib
from progan_tf.metrics import swd as swd_lib
from progan_tf.metrics import weights as weights_lib
from progan_tf.metrics.progress import Progress


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    default_num: int  # images (pairs for PPL) in the papers' protocol
    needs_reals: bool
    needs_generator: bool
    description: str


METRICS = {
    "swd": MetricInfo(16384, True, True, "SWD x1e3 per level, reals vs fakes (ProGAN)"),
    "swd_reals": MetricInfo(16384, True, False,
                            "SWD noise floor: reals 0..N-1 vs reals N..2N-1"),
    "ms_ssim": MetricInfo(20000, False, True, "MS-SSIM of N/2 pairs of fakes (ProGAN)"),
    "ms_ssim_reals": MetricInfo(20000, True, False, "MS-SSIM of N/2 pairs of reals"),
    "fid": MetricInfo(50000, True, True, "FID, Inception-v3 pool3 (StyleGAN fid50k)"),
    "ppl_zfull": MetricInfo(100000, False, True, "PPL in Z, t ~ U(0, 1) (StyleGAN)"),
    "ppl_zend": MetricInfo(100000, False, True, "PPL in Z, t = 0"),
    "ppl_wfull": MetricInfo(100000, False, True, "PPL in W, t ~ U(0, 1); StyleGAN only"),
    "ppl_wend": MetricInfo(100000, False, True, "PPL in W, t = 0; StyleGAN only"),
}


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


class MetricsError(ValueError):
    """A metric request that cannot be run; the message names the metric and the missing input."""


def parse_metric_names(text):
    """"swd,fid" -> ["swd", "fid"]; MetricsError naming unknown entries."""
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise MetricsError(f"--metrics: unknown metric(s) {unknown or [text]}; known: "
                           f"{', '.join(METRICS)}")
    return list(dict.fromkeys(names))


class _Window:
    """Feeds images [start, start + count) of a stream to `sink(images)`, timing the sink.

    metric: the metric whose time the sink counts towards.
    """

    def __init__(self, metric, start, count, sink):
        self.metric, self.start, self.count, self.sink = metric, start, count, sink
        self.seconds = 0.0

    def offer(self, images, first_index):
        lo = max(self.start, first_index)
        hi = min(self.start + self.count, first_index + len(images))
        if hi > lo:
            began = time.monotonic()
            self.sink(images[lo - first_index:hi - first_index])
            self.seconds += time.monotonic() - began


def _run_pass(label, windows, batches, stream):
    """Takes images 0 .. max(window end) - 1 from the iterator factory `batches(total)` and
    offers each batch to every window. Returns the seconds spent producing images."""
    total = max((w.start + w.count for w in windows), default=0)
    if not total:
        return 0.0
    progress = Progress(total, label, stream=stream)
    iterator = batches(total)
    produced, producing = 0, 0.0
    while produced < total:
        began = time.monotonic()
        images = next(iterator)
        producing += time.monotonic() - began
        for window in windows:
            window.offer(images, produced)
        produced += len(images)
        progress.update(len(images))
    progress.close()
    return producing


def _rgb(images):
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def _check_request(names, generator, reals):
    for name in names:
        info = METRICS.get(name)
        if info is None:
            raise MetricsError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
        if info.needs_reals and reals is None:
            raise MetricsError(f"{name} needs real images: give --data_dir")
        if info.needs_generator and generator is None:
            raise MetricsError(f"{name} needs a generator: give --saved_model or --run_dir")
        if name.startswith("ppl_") and generator.label_size:
            raise MetricsError(f"{name}: PPL is defined for unconditional generators only")
        if name.startswith("ppl_w") and (generator.mapping is None or generator.synthesis is None):
            raise MetricsError(f"{name} needs a StyleGAN generator (mapping and synthesis); "
                               f"{generator.description} has neither")
    if ("swd" in names or "swd_reals" in names):
        swd_lib.level_resolutions(reals.resolution)  # images under 16x16 fail here


def compute_metrics(names, generator=None, reals=None, num=None, batch_size=32, seed=0,
                    ppl_crop=True, fid_reals_cache=None, feature_fn=None, distance_fn=None,
                    progress_stream=sys.stderr):
    """Computes metrics; returns {metric: MetricResult} in the order of `names`.

    Args:
        names: metric names (keys of METRICS) or a comma-separated string.
        generator: sources.GeneratorFns (needed by every metric but swd_reals, ms_ssim_reals).
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
    _check_request(names, generator, reals)
    counts = {name: int(num or METRICS[name].default_num) for name in names}
    if min(counts.values()) < 2:
        raise MetricsError(f"--num must be at least 2, got {num}")
    real_windows, fake_windows, finishers = [], [], []  # finishers: (metric, () -> values)

    # SWD: one descriptor set per distinct window of reals, one for the fakes. All draw their
    # patch positions from the same seed (common random numbers: a set compared with itself
    # gives exactly 0, and reals and fakes are sampled alike).
    real_sets = {}

    def real_descriptor_set(metric, start, count):
        if (start, count) not in real_sets:
            descriptors = swd_lib.DescriptorSet(reals.resolution, seed=seed + 11)
            real_sets[(start, count)] = descriptors
            real_windows.append(_Window(metric, start, count,
                                        lambda x: descriptors.feed(_rgb(x))))
        return real_sets[(start, count)]

    for name in ("swd", "swd_reals"):
        if name not in names:
            continue
        count = counts[name]
        set_a = real_descriptor_set(name, 0, count)
        if name == "swd":
            set_b = swd_lib.DescriptorSet(reals.resolution, seed=seed + 11)
            fake_windows.append(_Window(name, 0, count, lambda x, s=set_b: s.feed(_rgb(x))))
        else:
            set_b = real_descriptor_set(name, count, count)
        prefix = "SWDx1e3" if name == "swd" else "SWDx1e3_reals"
        finishers.append((name, lambda a=set_a, b=set_b, p=prefix: swd_lib.swd_from_descriptors(
            a.finalize(), b.finalize(), a.resolutions, seed=seed + 3, prefix=p)))

    for name, windows in (("ms_ssim", fake_windows), ("ms_ssim_reals", real_windows)):
        if name in names:
            accumulator = ms_ssim_lib.MSSSIMAccumulator()
            windows.append(_Window(name, 0, counts[name], accumulator.feed))
            finishers.append((name, lambda a=accumulator, n=name: {n: a.result()}))

    if "fid" in names:
        count = counts["fid"]
        cache_path = cached = None
        if feature_fn is None:
            from progan_tf.metrics.inception import InceptionV3Features

            feature_fn = InceptionV3Features(batch_size=batch_size)
            if fid_reals_cache is not False:  # only Inception statistics are cached
                cache_path = fid_lib.reals_cache_path(fid_reals_cache or weights_lib.cache_dir(),
                                                      reals.path, count, reals.mirror)
                cached = fid_lib.load_statistics(cache_path)
        fake_stats, real_stats = fid_lib.FeatureStatistics(), fid_lib.FeatureStatistics()
        fake_windows.append(_Window("fid", 0, count, lambda x: fake_stats.feed(feature_fn(x))))
        if cached is None:
            real_windows.append(_Window("fid", 0, count, lambda x: real_stats.feed(feature_fn(x))))

        def finish_fid():
            real = cached
            if real is None:
                real = real_stats.statistics()
                if cache_path is not None:
                    fid_lib.save_statistics(cache_path, *real)
            return {"fid": fid_lib.frechet_distance(*fake_stats.statistics(), *real)}

        finishers.append(("fid", finish_fid))

    # One pass over the reals and one over the fakes feed every metric.
    pass_seconds = {"reals": 0.0, "fakes": 0.0}
    if real_windows:
        pass_seconds["reals"] = _run_pass(
            "reals", real_windows, lambda total: reals.batches(total, batch_size=batch_size),
            progress_stream)
    if fake_windows:
        pass_seconds["fakes"] = _run_pass(
            "fakes", fake_windows, lambda total: _fake_batches(generator, reals, total, batch_size,
                                                               seed, check_swd="swd" in names),
            progress_stream)

    results, seconds = {}, {}
    for name, finish in finishers:
        began = time.monotonic()
        results[name] = {key: float(value) for key, value in finish().items()}
        windows = [w for w in real_windows + fake_windows if w.metric == name]
        seconds[name] = (time.monotonic() - began + sum(w.seconds for w in windows)
                         + (pass_seconds["reals"] if any(w in real_windows for w in windows) else 0)
                         + (pass_seconds["fakes"] if any(w in fake_windows for w in windows) else 0))

    for name in names:
        if not name.startswith("ppl_"):
            continue
        if distance_fn is None:
            from progan_tf.metrics.lpips import LPIPS

            distance_fn = LPIPS()
        progress = Progress(counts[name], name, unit="pairs", stream=progress_stream)
        began = time.monotonic()
        distances = ppl_lib.path_distances(
            space=name[4], sampling=name[5:], latent_size=generator.latent_size,
            num_samples=counts[name], distance_fn=distance_fn,
            generate=lambda z: generator.images_float(z, None), mapping=generator.mapping,
            synthesis=generator.synthesis, batch_size=batch_size, seed=seed + 5, crop=ppl_crop,
            progress=progress.update)
        progress.close()
        results[name] = {name: ppl_lib.filtered_mean(distances)}
        seconds[name] = time.monotonic() - began

    return {name: MetricResult(name, results[name], counts[name], seconds[name])
            for name in names}


def _fake_batches(generator, reals, total, batch_size, seed, check_swd):
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
        if check_swd and images.shape[1:3] != (reals.resolution, reals.resolution):
            raise MetricsError(f"swd: {generator.description} makes {images.shape[1]}x"
                               f"{images.shape[2]} images but {reals.path} holds "
                               f"{reals.resolution}x{reals.resolution}")
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
        unit = "pairs" if result.metric.startswith("ppl_") else "images"
        for key, value in result.values.items():
            lines.append(f"{key:<22} {value:12.4f}   ({result.num} {unit}, "
                         f"{result.seconds:.1f} s)")
    return lines
