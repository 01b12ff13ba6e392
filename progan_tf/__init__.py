"""progan-tf: ProGAN and StyleGAN (v1) for TensorFlow 2 / Keras 3.

Importing the package turns on TensorFlow's oneDNN CPU kernels (TF_ENABLE_ONEDNN_OPTS=1) unless
the environment already sets that variable; it takes effect when TensorFlow is imported after
this package, as in every `python -m progan_tf.*` command. TensorFlow enables them by itself
only on CPUs with AVX-512 VNNI/BF16 or AMX; on an AVX2-only CPU they made a training step 1.5x
(paper widths) to 2.5x (narrow networks) faster (README, Performance).
TF_ENABLE_ONEDNN_OPTS=0 keeps TensorFlow's own (Eigen) kernels.
"""

import os

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
os.environ.setdefault(ONEDNN_VARIABLE, "1")
