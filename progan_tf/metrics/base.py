"""What a metric module registers and what `evaluate.compute_metrics` runs: a `Metric` record
whose factory turns a `Request` into a `Plan` (windows of the reals and fakes streams fed to its
sinks, then a finish step that returns the results).

    def _plan(request):                                  # in a metric module
        accumulator = Accumulator()
        return Plan(fakes=[Window(0, request.num, accumulator.feed)],
                    finish=lambda: {"my_metric": accumulator.result()})

    METRICS = (Metric("my_metric", 10000, "what it measures", _plan, needs_generator=True),)

Every sink sees its window of one shared pass over the reals and one over the fakes, so several
metrics cost one pass each; a factory that needs neither (PPL) does all its work in `finish`.
"""

import dataclasses
import time
from typing import Callable, Optional


class MetricsError(ValueError):
    """A metric request that cannot be run; the message names the metric and the missing input."""


@dataclasses.dataclass(frozen=True)
class Request:
    """What a factory gets: the sources, its image count and the options of one run.

    generator: progan_tf.generators.GeneratorFns or None. reals: sources.RealImages or None.
    num: images (pairs for PPL) for this metric. seed: seeds latents, patches, directions.
    batch_size: images per generator / Inception / LPIPS step.
    progress_stream: where progress lines go (None: silent).
    ppl_crop: crop PPL images to the face region.
    fid_reals_cache: directory caching the reals' Inception statistics (None: the weights cache
        directory; False: no cache).
    feature_fn: images uint8 [n, H, W, C] -> [n, D] features for FID (None: Inception-v3).
    distance_fn: (images0, images1) float [-1, 1] -> [n] for PPL (None: LPIPS-VGG16).
    shared: one dict per run for sinks and networks that several metrics share (`shared_value`).
    """

    generator: object
    reals: object
    num: int
    seed: int = 0
    batch_size: int = 32
    progress_stream: object = None
    ppl_crop: bool = True
    fid_reals_cache: object = None
    feature_fn: Optional[Callable] = None
    distance_fn: Optional[Callable] = None
    shared: dict = dataclasses.field(default_factory=dict)

    def shared_value(self, key, make):
        """shared[key], made by `make()` the first time a metric of this run asks for it."""
        if key not in self.shared:
            self.shared[key] = make()
        return self.shared[key]


class Window:
    """Feeds images [start, start + count) of a stream to `sink(images)`, timing the sink."""

    def __init__(self, start, count, sink):
        self.start, self.count, self.sink = start, count, sink
        self.seconds = 0.0

    @property
    def end(self):
        return self.start + self.count

    def offer(self, images, first_index):
        """`images` are the stream's images first_index, first_index + 1, ..."""
        lo = max(self.start, first_index)
        hi = min(self.end, first_index + len(images))
        if hi > lo:
            began = time.monotonic()
            self.sink(images[lo - first_index:hi - first_index])
            self.seconds += time.monotonic() - began


@dataclasses.dataclass
class Plan:
    """One metric's part of a run.

    reals, fakes: Windows over the real and generated image streams.
    finish: () -> {result name: value}, called after both passes.
    """

    reals: list = dataclasses.field(default_factory=list)
    fakes: list = dataclasses.field(default_factory=list)
    finish: Optional[Callable[[], dict]] = None


@dataclasses.dataclass(frozen=True)
class Metric:
    """One registered metric.

    name: as given to --metrics. default_num: images (pairs for PPL) in the papers' protocol.
    description: one line for the help text. plan: the factory, Request -> Plan.
    needs_reals, needs_generator: inputs compute_metrics checks before any work.
    check: optional Request -> None raising MetricsError for an unusable request (run for every
        requested metric before any factory).
    unit: what `num` counts, for reports.
    """

    name: str
    default_num: int
    description: str
    plan: Callable[[Request], Plan]
    needs_reals: bool = False
    needs_generator: bool = False
    check: Optional[Callable[[Request], None]] = None
    unit: str = "images"
