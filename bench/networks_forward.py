"""Times one forward pass of the paper-width ProGAN generator and discriminator.

    python bench/networks_forward.py --resolution 32 --batch 16

Builds G and D at full width (fmap_base 8192, fmap_max 512), takes the models grown to
--resolution in the middle of a fade-in (alpha 0.5), and prints the median wall time of a
`tf.function` forward pass over --repeats runs after one warm-up call (which traces).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from progan_tf.networks import Discriminator, Generator  # noqa: E402


def timed(fn, arg, repeats):
    fn(arg)  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(arg).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    generator = Generator(args.resolution)
    discriminator = Discriminator(args.resolution)
    generator.set_alpha(0.5)
    discriminator.set_alpha(0.5)
    g_model = generator.model_for(args.resolution)
    d_model = discriminator.model_for(args.resolution)
    latents = tf.constant(np.random.default_rng(0).normal(
        size=(args.batch, generator.latent_size)).astype("float32"))
    images = g_model(latents)
    g_time = timed(tf.function(g_model), latents, args.repeats)
    d_time = timed(tf.function(d_model), images, args.repeats)
    print(f"threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}, "
          f"CPUs {os.cpu_count()}")
    print(f"G forward {args.resolution}x{args.resolution}, batch {args.batch}: "
          f"{g_time * 1000:.1f} ms ({args.batch / g_time:.1f} img/s)")
    print(f"D forward {args.resolution}x{args.resolution}, batch {args.batch}: "
          f"{d_time * 1000:.1f} ms ({args.batch / d_time:.1f} img/s)")


if __name__ == "__main__":
    main()
