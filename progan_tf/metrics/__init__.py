"""Metrics of the ProGAN and StyleGAN papers, offline: SWD, MS-SSIM, FID, PPL.

`python -m progan_tf.metrics --help` runs them on a dataset pyramid and a generator;
`compute_metrics` is the Python entry point (the trainer's). One module per metric, each
registering its `Metric` records (base.py): swd.py, ms_ssim.py, fid.py (+ inception.py), ppl.py
(+ lpips.py); evaluate.py runs them; sources.py reads the reals; weights.py fetches the
networks' weights (`python -m progan_tf.metrics.weights fetch`, which does not import
TensorFlow). Generators come from progan_tf.generators.
"""

import importlib

_EXPORTS = {
    "METRICS": "metrics.evaluate", "MetricResult": "metrics.evaluate",
    "MetricsError": "metrics.base", "append_jsonl": "metrics.evaluate",
    "compute_metrics": "metrics.evaluate", "format_results": "metrics.evaluate",
    "parse_metric_names": "metrics.evaluate", "write_tensorboard": "metrics.evaluate",
    "RealImages": "metrics.sources", "SourceError": "metrics.sources",
    "generator_from_network": "metrics.sources", "generator_from_run_dir": "metrics.sources",
    "GeneratorFns": "generators", "GeneratorError": "generators",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    # Lazy, so `python -m progan_tf.metrics.weights` does not pay for importing TensorFlow.
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"progan_tf.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'progan_tf.metrics' has no attribute {name!r}")
