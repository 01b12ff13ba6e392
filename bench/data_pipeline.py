"""Throughput of the input pipeline and of `create_from_images` on this machine.

    python bench/data_pipeline.py [--seconds 10] [--batch 64] [--num_images 2048] [--num_jpegs 300]

Builds a synthetic 3x128x128 pyramid (random pixels; records are uncompressed, so content does not
matter) in a temporary directory, times `make_dataset` at 32, 64 and 128 (mirror on, one device),
then writes synthetic 256x256 JPEGs and times `create_from_images` on them. Prints images/s.
Targets (issue 4): >= 2,000 img/s at 64x64 on 2 cores; create_from_images >= 300 img/s.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def synthetic_pyramid(tfrecord_dir, num_images, resolution=128, channels=3, seed=0):
    from data_tools.pyramid import PyramidWriter

    rng = np.random.default_rng(seed)
    with PyramidWriter(tfrecord_dir) as writer:
        for start in range(0, num_images, 256):
            count = min(256, num_images - start)
            writer.add(rng.integers(0, 256, (count, channels, resolution, resolution), dtype=np.uint8))
        writer.set_labels(np.eye(10, dtype=np.float32)[rng.integers(0, 10, num_images)])
        writer.commit({"command": "bench"})


def time_pipeline(pyramid, resolution, batch, seconds):
    from progan_tf import data

    dataset = data.make_dataset(pyramid, resolution, global_batch_size=batch, seed=0, mirror=True)
    iterator = iter(dataset)
    for _ in range(5):  # warm-up: graph building, autotuning
        next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images, _ = next(iterator)
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def synthetic_jpegs(image_dir, num_images, size=256, seed=0):
    import PIL.Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    for i in range(num_images):
        # Smooth content (upsampled noise) so the JPEGs have photo-like sizes, shifted per image.
        small = np.roll(base, shift=i, axis=0)
        image = PIL.Image.fromarray(small).resize((size, size), PIL.Image.BILINEAR)
        image.save(os.path.join(image_dir, f"img{i:05d}.jpg"), quality=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="timing window per resolution")
    parser.add_argument("--batch", type=int, default=64, help="global batch size")
    parser.add_argument("--num_images", type=int, default=2048, help="images in the synthetic pyramid")
    parser.add_argument("--num_jpegs", type=int, default=300, help="JPEGs for create_from_images")
    args = parser.parse_args()

    from data_tools.pyramid import open_pyramid
    from data_tools.sources.images import create_from_images

    with tempfile.TemporaryDirectory() as tmp:
        pyramid_dir = os.path.join(tmp, "synthetic-128")
        synthetic_pyramid(pyramid_dir, args.num_images)
        pyramid = open_pyramid(pyramid_dir)
        print(f"make_dataset, global batch {args.batch}, mirror on, {os.cpu_count()} CPUs:")
        for resolution in (32, 64, 128):
            rate = time_pipeline(pyramid, resolution, args.batch, args.seconds)
            print(f"  {resolution:>3}x{resolution:<3} {rate:10,.0f} img/s", flush=True)

        image_dir = os.path.join(tmp, "jpegs")
        os.makedirs(image_dir)
        synthetic_jpegs(image_dir, args.num_jpegs)
        start = time.perf_counter()
        manifest = create_from_images(os.path.join(tmp, "from-jpegs"), image_dir)
        elapsed = time.perf_counter() - start
        print(f"create_from_images, {manifest['num_images']} JPEGs 256x256 -> 7 levels: "
              f"{manifest['num_images'] / elapsed:,.0f} img/s ({elapsed:.1f} s)")


if __name__ == "__main__":
    main()
