"""Benchmark: what this CPU's TensorFlow convolutions alone reach (not a test).

A 3x3 'same' convolution's three kernels (forward, input gradient, weight gradient), each timed
alone on random tensors, as TensorFlow computes them (native) and as --conv_gradients=gemm does
(the input gradient a forward convolution with the rotated kernel, the weight gradient matrix
products over the input's shifted copies: `progan_tf.layers.conv.kernel_gradient`), in float32
(and bfloat16 on request), at the shapes that dominate a ProGAN iteration: the ceiling that
`bench/train_step.py`'s GFLOP/s compares with.

    python bench/conv_ceiling.py                           # 512 ch at 16x16 ... 64 at 128x128
    python bench/conv_ceiling.py --dtypes float32,bfloat16
    TF_ENABLE_ONEDNN_OPTS=0 python bench/conv_ceiling.py   # TensorFlow's own (Eigen) kernels

Prints ms and GFLOP/s per kernel, shape and dtype, and the three together (a multiply-add is
2 FLOPs; median of --repeats timed runs after a warm-up).
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import progan_tf  # noqa: E402,F401  (before TensorFlow: oneDNN on unless the environment says)
from progan_tf.training.precision import onednn_setting  # noqa: E402  (imports no TensorFlow)

# (resolution, channels in = out): the paper's widths at 16, 32, 64 and 128.
SHAPES = ((16, 512), (32, 256), (64, 128), (128, 64))


def kernels(tf, batch, resolution, channels):
    """{mode: {name: function of (x, w, dy)}}: the three kernels of one convolution under
    TensorFlow's own gradients (native) and under --conv_gradients=gemm."""
    from progan_tf.layers import conv
    strides, sizes = [1, 1, 1, 1], [batch, resolution, resolution, channels]
    forward = lambda x, w, dy: tf.nn.conv2d(x, w, 1, "SAME")  # noqa: E731
    return {
        "native": {
            "forward": forward,
            "input gradient": lambda x, w, dy: tf.raw_ops.Conv2DBackpropInput(
                input_sizes=sizes, filter=w, out_backprop=dy, strides=strides, padding="SAME"),
            "weight gradient": lambda x, w, dy: tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=[3, 3, channels, channels], out_backprop=dy,
                strides=strides, padding="SAME"),
        },
        "gemm": {
            "forward": forward,
            "input gradient": lambda x, w, dy: tf.nn.conv2d(dy, conv.rotate_kernel(w), 1, "SAME"),
            "weight gradient": lambda x, w, dy: conv.kernel_gradient(x, dy, w.shape),
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", default="float32",
                        help="comma-separated, e.g. float32,bfloat16")
    parser.add_argument("--shapes", default=",".join(f"{r}:{c}" for r, c in SHAPES),
                        help="comma-separated resolution:channels pairs")
    parser.add_argument("--modes", default="native,gemm",
                        help="comma-separated gradient modes: native (TensorFlow's "
                             "Conv2DBackprop kernels), gemm (--conv_gradients=gemm)")
    args = parser.parse_args(argv)
    import tensorflow as tf
    print(f"oneDNN {onednn_setting()}, TensorFlow {tf.__version__}, batch {args.batch}")
    shapes = [tuple(int(v) for v in pair.split(":")) for pair in args.shapes.split(",")]
    for resolution, channels in shapes:
        flops = 2 * args.batch * resolution * resolution * 9 * channels * channels
        for dtype in args.dtypes.split(","):
            shape = [args.batch, resolution, resolution, channels]
            x, dy = tf.random.normal(shape, dtype=dtype), tf.random.normal(shape, dtype=dtype)
            w = tf.random.normal([3, 3, channels, channels], dtype=dtype)
            for mode, named in kernels(tf, args.batch, resolution, channels).items():
                if mode not in args.modes.split(","):
                    continue
                total = 0.0
                for name, kernel in named.items():
                    fn = tf.function(kernel)
                    fn(x, w, dy).numpy()
                    times = []
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        fn(x, w, dy).numpy()
                        times.append(time.perf_counter() - start)
                    seconds = statistics.median(times)
                    total += seconds
                    print(f"  {channels}->{channels} at {resolution}x{resolution} {dtype:9s} "
                          f"{mode:6s} {name:16s} {seconds * 1000:8.1f} ms  "
                          f"{flops / seconds / 1e9:7.1f} GFLOP/s", flush=True)
                print(f"  {channels}->{channels} at {resolution}x{resolution} {dtype:9s} "
                      f"{mode:6s} {'all three':16s} {total * 1000:8.1f} ms  "
                      f"{3 * flops / total / 1e9:7.1f} GFLOP/s", flush=True)


if __name__ == "__main__":
    main()
