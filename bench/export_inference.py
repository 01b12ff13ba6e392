"""Inference speed of the exported SavedModel against the Keras model, and its cold load time.

    python bench/export_inference.py --resolution 64 --batches 1,64

Builds a ProGAN generator (paper widths by default: fmap_base 8192, fmap_max 512), exports it
with `exports.export_generator` into a temporary directory, loads it back with
`tf.saved_model.load` in this process, and times, alternating between them so a busy machine
slows all alike (median over --repeats calls after one warm-up call each):

    keras eager      model(latents), the Keras functional model called directly
    keras tf.function tf.function(model)(latents), the same graph without the uint8 conversion
    serving_default  the SavedModel signature (latents -> images uint8 + images_float)
    generate_seeds   the SavedModel signature (seeds -> philox latents -> images)

Cold load: a fresh Python process imports TensorFlow, loads the SavedModel and makes its first
batch-1 call; each step is timed separately (median over --cold_runs processes).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import exports  # noqa: E402
from progan_tf.networks import Generator  # noqa: E402

COLD_LOAD = """
import os, sys, time, json
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
start = time.perf_counter()
import tensorflow as tf
imported = time.perf_counter()
model = tf.saved_model.load(sys.argv[1])
loaded = time.perf_counter()
model.signatures["serving_default"](latents=tf.zeros([1, int(sys.argv[2])]))["images"].numpy()
called = time.perf_counter()
print(json.dumps({"import": imported - start, "load": loaded - imported,
                  "first_call": called - loaded}))
"""


def median_times(functions, repeats):
    """{name: median seconds} over `repeats` rounds, each round calling every function once."""
    for function in functions.values():
        function()  # trace / warm up
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def cold_load(version_dir, latent_size, runs):
    results = []
    for _ in range(runs):
        output = subprocess.run([sys.executable, "-c", COLD_LOAD, version_dir, str(latent_size)],
                                capture_output=True, text=True, check=True, timeout=600)
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(result[key] for result in results) for key in results[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--fmap_base", type=int, default=8192)
    parser.add_argument("--fmap_max", type=int, default=512)
    parser.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per batch size")
    parser.add_argument("--cold_runs", type=int, default=3, help="fresh processes for cold load")
    args = parser.parse_args()

    generator = Generator(args.resolution, fmap_base=args.fmap_base, fmap_max=args.fmap_max)
    model = generator.model_for(args.resolution)
    parameters = sum(int(np.prod(w.shape)) for w in generator.trainable_weights)
    print(f"generator {args.resolution}x{args.resolution}, fmap_base {args.fmap_base}, "
          f"fmap_max {args.fmap_max}, latent {generator.latent_size}, {parameters:,} parameters; "
          f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        version_dir = exports.export_generator(generator, out_dir)
        print(f"export (ExportArchive.write_out + meta): {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        loaded = tf.saved_model.load(version_dir)
        print(f"tf.saved_model.load in this process (warm files): "
              f"{time.perf_counter() - start:.2f} s")
        serving_default = loaded.signatures["serving_default"]
        generate_seeds = loaded.signatures["generate_seeds"]
        keras_graph = tf.function(model)

        print(f"{'batch':>6}{'keras eager':>16}{'keras tf.function':>20}{'serving_default':>18}"
              f"{'generate_seeds':>17}{'overhead':>10}   (images/s; overhead = serving_default "
              f"vs keras tf.function)")
        for batch in (int(value) for value in args.batches.split(",")):
            latents = tf.constant(np.random.default_rng(0).normal(
                size=(batch, generator.latent_size)).astype(np.float32))
            seeds = tf.range(batch, dtype=tf.int64)
            times = median_times({
                "keras eager": lambda: model(latents).numpy(),
                "keras tf.function": lambda: keras_graph(latents).numpy(),
                "serving_default": lambda: serving_default(latents=latents)["images"].numpy(),
                "generate_seeds": lambda: generate_seeds(seeds=seeds)["images"].numpy(),
            }, args.repeats)
            rates = {name: batch / seconds for name, seconds in times.items()}
            overhead = times["serving_default"] / times["keras tf.function"] - 1.0
            print(f"{batch:>6}{rates['keras eager']:>16.2f}{rates['keras tf.function']:>20.2f}"
                  f"{rates['serving_default']:>18.2f}{rates['generate_seeds']:>17.2f}"
                  f"{overhead:>+10.1%}")

        cold = cold_load(version_dir, generator.latent_size, args.cold_runs)
        print(f"cold start in a fresh process (median of {args.cold_runs}): import tensorflow "
              f"{cold['import']:.2f} s, tf.saved_model.load {cold['load']:.2f} s, first batch-1 "
              f"call {cold['first_call']:.2f} s")


if __name__ == "__main__":
    main()
