"""SavedModel export of a trained generator for TF Serving, `saved_model_cli` and
`tf.saved_model.load` (no project code needed to use the result).

    python -m exports --checkpoint results/00000-quickstart --out_dir results/00000-quickstart/export

Library use (the trainer, at the end of a run):

    from exports import export_generator
    version_dir = export_generator(generator_ema, os.path.join(run_dir, "export"),
                                   meta={"training_kimg": kimg, "flags": flags})
"""

import os

from exports.run_dir import ExportError, load_generator, locate_checkpoint, run_meta
from exports.saved_model import (META_DIR, META_FILENAME, existing_versions, export_generator,
                                 latest_version_dir)
from progan_tf.serving import SEED_LIMIT, Endpoint, image_outputs, seeds_to_latents
from progan_tf.training.run_dir import EXPORT_DIR

__all__ = [
    "Endpoint", "ExportError", "META_DIR", "META_FILENAME", "SEED_LIMIT",
    "existing_versions", "export_checkpoint", "export_generator",
    "image_outputs", "latest_version_dir", "load_generator", "locate_checkpoint", "run_meta",
    "seeds_to_latents",
]


def export_checkpoint(checkpoint, out_dir=None, model_name="generator", raw=False,
                      resolution=None):
    """Restore a run's generator (EMA unless `raw`) and export it; returns the version path.

    checkpoint: run directory, its checkpoints/ directory, or a checkpoint prefix.
    out_dir: default `<run dir>/export`.
    """
    generator, location = load_generator(checkpoint, raw=raw)
    out_dir = out_dir or os.path.join(location.run_dir, EXPORT_DIR)
    return export_generator(generator, out_dir, model_name, meta=run_meta(location, raw=raw),
                            resolution=resolution)
