"""Small Keras 3 layers that ProGAN and StyleGAN are built from (NHWC everywhere), importable
from here: `from progan_tf import layers; layers.WeightScaledConv2D(...)`.

Equalized learning rate (ProGAN sec. 4.1) keeps every kernel N(0, 1) and multiplies it by
`gain / sqrt(fan_in)` at run time; biases are stored and used as they are (SPEC 1.4). Numerics that
float16 cannot carry (the He scaling of the kernel, pixel norm's epsilon, the minibatch stddev,
instance normalisation) run in float32 under a `mixed_float16` policy and are cast back.

    common.py         constants, lrelu, derive_seed (per-weight seeds), register, checks
    equalized.py      WeightScaledDense, WeightScaledConv2D, UpsampleConv2D, ConvDownsample2D,
                      AddBias
    conv.py           same_conv and gemm_gradients(): convolution gradients as GEMMs (CPU training);
                      upsample_conv, conv_downsample: resampling convs as one strided conv
    normalization.py  PixelNormalization, MinibatchStdev, AdaIN
    resampling.py     upsample2d, downsample2d, Upsample2D, Downsample2D, Blur2D, FadeIn
    noise.py          NoiseInjection (noise mode per call: None, "random" or "const")
"""

from progan_tf.layers.common import LRELU_SLOPE, SQRT2, derive_seed, lrelu, register
from progan_tf.layers.equalized import (AddBias, ConvDownsample2D, UpsampleConv2D,
                                        WeightScaledConv2D, WeightScaledDense)
from progan_tf.layers.noise import NOISE_MODES, NoiseInjection
from progan_tf.layers.normalization import (AdaIN, MinibatchStdev, PixelNormalization,
                                            minibatch_group_size)
from progan_tf.layers.resampling import (Blur2D, Downsample2D, FadeIn, Upsample2D, downsample2d,
                                         upsample2d)

__all__ = [
    "AdaIN", "AddBias", "Blur2D", "ConvDownsample2D", "Downsample2D", "FadeIn", "LRELU_SLOPE",
    "MinibatchStdev", "NOISE_MODES", "NoiseInjection", "PixelNormalization", "SQRT2",
    "Upsample2D", "UpsampleConv2D", "WeightScaledConv2D", "WeightScaledDense", "derive_seed",
    "downsample2d", "lrelu", "minibatch_group_size", "register", "upsample2d",
]
