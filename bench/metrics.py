"""Throughput of the metric building blocks on this machine, and the time of the papers' full
protocols extrapolated from timed runs.

    python bench/metrics.py --resolution 64 --inception_images 256 --swd_images 2048

Times (median of --repeats after a warm-up where it matters):
    Inception pool3      images/s, uint8 [N, R, R, 3] -> [N, 2048] (legacy resize to 299 included)
    Frechet distance     seconds for one 2048-d distance (scipy sqrtm)
    SWD descriptors      images/s, Laplacian pyramid + 128 patches per level
    SWD distance         seconds for the sliced Wasserstein distances of --swd_images per set
    MS-SSIM              pairs/s
    LPIPS-VGG16          pairs/s on the PPL crop (R/2 x R/2)
and extrapolates FID-50k (50k fakes + 50k reals; with the reals' statistics cached only the
fakes), SWD-16k (16,384 reals + 16,384 fakes), MS-SSIM-10k pairs and PPL-100k (generator time
not included). The sort inside SWD grows as M log M; the extrapolation uses that.
Inception and LPIPS need `python -m progan_tf.metrics.weights fetch`; they are skipped otherwise.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from progan_tf.metrics import fid, ms_ssim, swd  # noqa: E402
from progan_tf.metrics import weights as weights_lib  # noqa: E402


def smooth_images(count, size, seed):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, size // 4, size // 4, 3))
    images = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)
    images += rng.normal(0, 8, images.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def timed(fn, repeats=1):
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return float(np.median(times))


def hms(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m {seconds % 60:02d}s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--inception_images", type=int, default=256)
    parser.add_argument("--swd_images", type=int, default=2048,
                        help="images per set for the timed SWD run (16384 = the full protocol)")
    parser.add_argument("--ms_ssim_pairs", type=int, default=200)
    parser.add_argument("--lpips_pairs", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    res = args.resolution
    rows = []

    if weights_lib.available(weights_lib.INCEPTION):
        from progan_tf.metrics.inception import InceptionV3Features

        network = InceptionV3Features(batch_size=args.batch)
        network(smooth_images(args.batch, res, 0))  # trace
        images = smooth_images(args.inception_images, res, 1)
        seconds = timed(lambda: network(images))
        rate = args.inception_images / seconds
        features = np.random.default_rng(2).normal(size=(4096, 2048))
        stats = fid.feature_statistics(features)
        other = fid.feature_statistics(features + 0.1)
        frechet = timed(lambda: fid.frechet_distance(*stats, *other), 1)
        rows.append(("Inception pool3", f"{rate:.2f} img/s ({1 / rate:.3f} s/img, batch "
                     f"{args.batch}, {args.inception_images} images timed)"))
        rows.append(("Frechet distance", f"{frechet:.1f} s (2048-d sqrtm)"))
        rows.append(("=> FID-50k", f"{hms(100000 / rate + frechet)} (50k fakes + 50k reals); "
                     f"{hms(50000 / rate + frechet)} with cached reals"))
    else:
        rows.append(("Inception pool3", "skipped: run python -m progan_tf.metrics.weights fetch"))

    n = args.swd_images
    images_a, images_b = smooth_images(n, res, 3), smooth_images(n, res, 4)
    sets = []

    def describe():
        sets.clear()
        for seed, images in ((0, images_a), (1, images_b)):
            descriptor_set = swd.DescriptorSet(res, seed=seed)
            for start in range(0, n, 64):
                descriptor_set.feed(images[start:start + 64])
            sets.append(descriptor_set.finalize())

    describe_seconds = timed(describe)
    desc_rate = 2 * n / describe_seconds
    distance_seconds = timed(lambda: swd.swd_from_descriptors(sets[0], sets[1],
                                                              swd.level_resolutions(res)))
    m, m_full = n * 128, 16384 * 128
    distance_full = distance_seconds * (m_full * np.log(m_full)) / (m * np.log(m))
    rows.append(("SWD descriptors", f"{desc_rate:.0f} img/s ({res}x{res}, "
                 f"{len(swd.level_resolutions(res))} levels)"))
    rows.append(("SWD distance", f"{distance_seconds:.1f} s for {n} + {n} images "
                 f"({m:,} descriptors per level and set)"))
    rows.append(("=> SWD-16k", f"{hms(2 * 16384 / desc_rate + distance_full)} "
                 f"(descriptors {hms(2 * 16384 / desc_rate)} + distance ~{hms(distance_full)}; "
                 f"{'measured' if n == 16384 else 'extrapolated from ' + str(n)}); "
                 f"memory ~{2 * m_full * 147 * 4 * len(swd.level_resolutions(res)) / 2**30:.1f}"
                 f" GiB of descriptors"))

    pairs = smooth_images(2 * args.ms_ssim_pairs, res, 5)
    seconds = timed(lambda: ms_ssim.ms_ssim_per_pair(pairs[0::2], pairs[1::2]))
    rows.append(("MS-SSIM", f"{args.ms_ssim_pairs / seconds:.0f} pairs/s => 10k pairs "
                 f"{hms(10000 * seconds / args.ms_ssim_pairs)}"))

    if weights_lib.available(weights_lib.LPIPS_VGG16) and res >= 32:
        from progan_tf.metrics.lpips import LPIPS
        from progan_tf.metrics.ppl import crop_and_resize

        distance = LPIPS()
        crops = crop_and_resize(smooth_images(2 * args.lpips_pairs, res, 6).astype(np.float32)
                                / 127.5 - 1, crop=True)
        distance(crops[:2], crops[2:4])  # trace
        seconds = timed(lambda: [distance(crops[i:i + 2 * args.batch:2],
                                          crops[i + 1:i + 2 * args.batch:2])
                                 for i in range(0, len(crops), 2 * args.batch)])
        rate = args.lpips_pairs / seconds
        rows.append(("LPIPS-VGG16", f"{rate:.1f} pairs/s on {crops.shape[1]}x{crops.shape[2]} "
                     f"crops => PPL-100k {hms(100000 / rate)} per variant (+ generator)"))

    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
