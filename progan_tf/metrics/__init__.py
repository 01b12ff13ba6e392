"""Metrics of the ProGAN and StyleGAN papers, offline: SWD, MS-SSIM, FID, PPL.

`python -m progan_tf.metrics --help` runs them on a dataset pyramid and a generator;
`compute_metrics` is the Python entry point (the trainer's). One module per metric: swd.py,
ms_ssim.py, fid.py (+ inception.py), ppl.py (+ lpips.py); weights.py fetches the networks'
weights (`python -m progan_tf.metrics.weights fetch`, which does not import TensorFlow).
"""

import importlib

_EXPORTS = {
    "METRICS": "evaluate", "MetricResult": "evaluate", "MetricsError": "evaluate",
    "append_jsonl": "evaluate", "compute_metrics": "evaluate", "format_results": "evaluate",
    "parse_metric_names": "evaluate", "write_tensorboard": "evaluate",
    "GeneratorFns": "sources", "RealImages": "sources", "SourceError": "sources",
    "generator_from_network": "sources", "generator_from_run_dir": "sources",
    "generator_from_saved_model": "sources",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    # Lazy, so `python -m progan_tf.metrics.weights` does not pay for importing TensorFlow.
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"progan_tf.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'progan_tf.metrics' has no attribute {name!r}")
