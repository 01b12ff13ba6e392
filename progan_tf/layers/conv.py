"""The convolutions of the equalized layers: the stride-1 'same' convolution, with its gradients
as a forward convolution and matrix products (`gemm_gradients`, the fast way on CPUs), and the
resampling convolutions computed as one strided convolution (`upsample_conv`, `conv_downsample`).

On x86 CPUs oneDNN's weight-gradient kernel (TensorFlow's Conv2DBackpropFilter) runs at a half to
a third of its forward kernel's rate (`bench/conv_ceiling.py`), and a WGAN-GP iteration spends a
third of its convolution FLOPs there. Inside `gemm_gradients()` the convolution's gradients are
written with operations that are fast on CPU and differentiable again, so the gradient penalty's
second backward pass uses them too:

    y = conv(x, w)          [N, H, W, I] * [k, k, I, O] -> [N, H, W, O], k odd, 'same'
    dL/dx = conv(dy, w')    w' = w rotated by 180 degrees with I and O swapped: the same
                            convolution, so its own gradients are again these two
    dL/dw = im2col(x)^T dy  the k*k shifted copies of the zero-padded x side by side,
                            [N*H*W, k*k*I]^T [N*H*W, O] -> [k*k*I, O]: one GEMM, or k*k
                            smaller ones (one per copy) up to 256 input channels

The values are those of TensorFlow's gradients up to float rounding (the sums run in another
order). The shifted copies take k*k times the input's memory, so the products run over bands
of rows whose copies take at most `IM2COL_BYTES`. Below 128 channels the products are small and the
extra operations cost more than they save, so narrow convolutions keep TensorFlow's gradients
(the quickstart's networks: 14% slower otherwise). On GPUs cuDNN's own kernels are the fast
ones: by default (`--conv_gradients=auto`) the trainer uses this mode only when its devices are
CPUs, for convolutions of `GEMM_MIN_CHANNELS` or more; `gemm` takes every width (the tests'
tiny networks), `native` none.
"""

import contextlib
import contextvars

import numpy as np
from keras import ops

CONV_GRADIENTS = ("auto", "gemm", "native")
GEMM_MIN_CHANNELS = 128  # --conv_gradients=auto: narrower ones keep TensorFlow's (faster there)
SHIFTED_MAX_CHANNELS = 256  # up to this many input channels: one product per kernel tap
IM2COL_BYTES = 64 * 2**20  # the shifted copies of one band of rows, at most (bytes)

_gemm = contextvars.ContextVar("progan_tf_gemm_min_channels", default=None)


@contextlib.contextmanager
def gemm_gradients(min_channels=1):
    """Convolutions built (traced) inside this context, in this thread, with at least
    `min_channels` input and output channels differentiate as the module docstring says; the
    others, and all of them with min_channels=None or outside, use TensorFlow's gradients."""
    token = _gemm.set(min_channels)
    try:
        yield
    finally:
        _gemm.reset(token)


def gemm_min_channels(mode, device_names):
    """The `gemm_gradients` argument for --conv_gradients `mode`: gemm = every convolution,
    native = None (none), auto = those of `GEMM_MIN_CHANNELS` or more when every device in
    `device_names` is a CPU."""
    if mode not in CONV_GRADIENTS:
        raise ValueError(f"--conv_gradients must be one of {', '.join(CONV_GRADIENTS)}, "
                         f"got {mode!r}")
    if mode == "auto":
        on_cpu = all(":CPU:" in name.upper() for name in device_names)
        return GEMM_MIN_CHANNELS if on_cpu else None
    return 1 if mode == "gemm" else None


def same_conv(x, kernel):
    """Stride-1 'same' convolution of NHWC `x` with the HWIO `kernel` (odd square). Inside
    `gemm_gradients(min_channels)`, with at least that many input and output channels and a
    static height and width (the weight gradient is cut at trace time), its gradients are the
    GEMM ones."""
    min_channels = _gemm.get()
    if (min_channels is not None and min(kernel.shape[2], kernel.shape[3]) >= min_channels
            and x.shape[1] is not None and x.shape[2] is not None):
        return _conv_gemm(x, kernel)
    return ops.conv(x, kernel, strides=1, padding="same")


def _shift_sums(rotate, scale):
    """[16, 9] constant: row 4a + b sums (times `scale`) the 3x3 taps that the four one-pixel
    shifts of the kernel (zero-padded to 5x5) put at (a, b) of the 4x4 kernel; with `rotate`,
    of the kernel rotated by 180 degrees."""
    sums = np.zeros((4, 4, 3, 3), np.float32)
    for i in range(3):
        for j in range(3):
            for di in (0, 1):
                for dj in (0, 1):
                    tap = (2 - i, 2 - j) if rotate else (i, j)
                    sums[i + di, j + dj, tap[0], tap[1]] += scale
    return sums.reshape(16, 9)


_UP_SUMS = _shift_sums(rotate=True, scale=1.0)
_DOWN_SUMS = _shift_sums(rotate=False, scale=0.25)


def _four_by_four(kernel, sums):
    """The 4x4 kernel [4, 4, I, O] from the 3x3 HWIO `kernel`: one product with a [16, 9]
    constant (cheaper to differentiate, twice in the penalty, than pads, slices and flips)."""
    channels_in, channels_out = kernel.shape[2], kernel.shape[3]
    flat = ops.reshape(kernel, (9, channels_in * channels_out))
    return ops.reshape(ops.matmul(ops.cast(sums, kernel.dtype), flat),
                       (4, 4, channels_in, channels_out))


def fused_up_kernel(kernel):
    """The 4x4 kernel of `upsample_conv` as a transposed convolution's, [4, 4, O, I], from the
    'same' convolution's HWIO 3x3 `kernel`: rotated by 180 degrees, then the sum of its four
    shifted copies (the original's `upscale2d_conv2d` does the same without the rotation, which
    its stored kernels carry instead)."""
    return ops.transpose(_four_by_four(kernel, _UP_SUMS), (0, 1, 3, 2))


def upsample_conv(x, kernel):
    """Nearest 2x upsampling, then the 'same' convolution with the HWIO 3x3 `kernel`, [N, H, W,
    I] -> [N, 2H, 2W, O], computed as one stride-2 transposed convolution with a 4x4 kernel over
    the small input: 4 instead of 9 multiply-adds per output pixel and channel pair (2.25x fewer
    FLOPs), the same values up to float rounding."""
    return ops.conv_transpose(x, fused_up_kernel(kernel), strides=2, padding="same")


def fused_down_kernel(kernel):
    """The 4x4 stride-2 kernel of `conv_downsample`, HWIO, from the 3x3 `kernel`: the mean of its
    four shifted copies (the original's `conv2d_downscale2d`)."""
    return _four_by_four(kernel, _DOWN_SUMS)


def conv_downsample(x, kernel):
    """The 'same' convolution with the HWIO 3x3 `kernel`, then 2x2 average pooling, [N, H, W, I]
    -> [N, H/2, W/2, O] (H, W even), computed as one stride-2 convolution with a 4x4 kernel over
    the input padded by 1: 4 instead of 9 multiply-adds per input pixel and channel pair, the same
    values up to float rounding. (The padding is an op of its own: TensorFlow's oneDNN kernels
    take no explicit padding in their gradients, and its own are 2 to 3 times slower.)"""
    padded = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return ops.conv(padded, fused_down_kernel(kernel), strides=2, padding="valid")


def _tf():
    import tensorflow as tf  # the layers import keras only; this mode is TensorFlow's
    return tf


def _conv_gemm(x, kernel):
    tf = _tf()

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            return _conv_gemm(dy, rotate_kernel(kernel)), kernel_gradient(x, dy, kernel.shape)
        return tf.nn.conv2d(x, kernel, 1, "SAME"), grad

    return conv(x, kernel)


def rotate_kernel(kernel):
    """The kernel of a 'same' convolution's input gradient: HWIO `kernel` rotated by 180
    degrees, input and output channels swapped."""
    return ops.transpose(ops.flip(ops.flip(kernel, axis=0), axis=1), (0, 1, 3, 2))


def kernel_gradient(x, dy, kernel_shape):
    """dL/dkernel of a stride-1 'same' convolution from its input `x` [N, H, W, I] and output
    gradient `dy` [N, H, W, O]: im2col(x)^T dy, summed over bands of rows whose k*k shifted
    copies take at most `IM2COL_BYTES`. Up to `SHIFTED_MAX_CHANNELS` input channels a band is
    k*k products, one per copy ([I, n] [n, O] each); wider, one product over the copies side by
    side ([k*k*I, n] [n, O]). (Each is the faster one there on an AVX2 EPYC:
    `bench/conv_ceiling.py`.)"""
    tf = _tf()
    k, _, channels_in, channels_out = (int(d) for d in kernel_shape)
    pad = k // 2
    height, width = x.shape[1], x.shape[2]
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    batch = x.shape[0] or 16  # an unknown batch size: band as for the paper's minibatch
    row_bytes = batch * width * k * k * channels_in * x.dtype.size
    bands = min(height, -(-height * row_bytes // IM2COL_BYTES))  # ceil, at most a row each
    rows = -(-height // max(bands, 1))  # rows per band, as even as they come
    total = None
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        copies = [padded[:, top + i:bottom + i, j:j + width, :]
                  for i in range(k) for j in range(k)]
        band_dy = tf.reshape(dy[:, top:bottom], [-1, channels_out])
        if channels_in <= SHIFTED_MAX_CHANNELS:
            part = tf.stack([tf.matmul(tf.reshape(copy, [-1, channels_in]), band_dy,
                                       transpose_a=True) for copy in copies])
        else:
            part = tf.matmul(tf.reshape(tf.concat(copies, axis=-1), [-1, k * k * channels_in]),
                             band_dy, transpose_a=True)
        part = tf.reshape(part, [k, k, channels_in, channels_out])
        total = part if total is None else total + part
    return total
