"""Frechet Inception Distance (Heusel et al. 2017; SPEC 5): the Frechet distance between
Gaussians fitted to Inception-v3 pool3 features of two image sets,

    FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

The distance code takes any features, so it is tested without Inception; `inception.py` supplies
the standard features.

Registered metric (`METRICS`): `fid`, fakes vs reals (StyleGAN's fid50k at the default count);
the reals' Inception statistics are cached per data file, count and mirroring.
"""

import hashlib
import json
import os

import numpy as np
import scipy.linalg

from progan_tf.metrics import weights as weights_lib
from progan_tf.metrics.base import Metric, Plan, Window


def feature_statistics(features):
    """[N, D] features -> (mean [D], covariance [D, D]) in float64 (np.cov, N - 1 normalised)."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need [N >= 2, D] features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); a float >= 0 up to rounding.

    The matrix square root is scipy's sqrtm, as in the reference implementations; its tiny
    imaginary parts from rounding are dropped (np.real), as NVIDIA's code does.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"inconsistent statistics shapes: {mu1.shape}, {sigma1.shape}, "
                         f"{mu2.shape}, {sigma2.shape}")
    mean_term = float(np.square(mu1 - mu2).sum())
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(root)):
        # A singular product (fewer samples than dimensions): regularise as pytorch-fid does.
        offset = np.eye(sigma1.shape[0]) * 1e-6
        root = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    trace_term = float(np.real(np.trace(sigma1 + sigma2 - 2.0 * root)))
    return mean_term + trace_term


class FeatureStatistics:
    """Streams [n, D] feature batches into running sums; `statistics()` -> (mean, covariance)
    equal to feature_statistics of all rows (float64 sums, so 50k x 2048 needs no big buffer)."""

    def __init__(self):
        self.count = 0
        self._sum = None
        self._outer = None

    def feed(self, features):
        features = np.asarray(features, np.float64)
        if self._sum is None:
            self._sum = np.zeros(features.shape[1])
            self._outer = np.zeros((features.shape[1], features.shape[1]))
        self._sum += features.sum(axis=0)
        self._outer += features.T @ features
        self.count += len(features)

    def statistics(self):
        if self.count < 2:
            raise ValueError("FID: need at least two images per set")
        mean = self._sum / self.count
        covariance = (self._outer - self.count * np.outer(mean, mean)) / (self.count - 1)
        return mean, covariance


def reals_cache_path(cache_dir, data_file, num, mirror):
    """Where the Inception statistics of the first `num` reals of `data_file` are cached; the key
    covers the file's absolute path, size and mtime, `num` and mirroring."""
    stat = os.stat(data_file)
    key = json.dumps([os.path.abspath(data_file), stat.st_size, int(stat.st_mtime), num,
                      bool(mirror)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(cache_dir, "fid_reals", f"{digest}.npz")


def save_statistics(path, mean, covariance):
    """Writes (mean, covariance) to `path` (.npz) via a temporary file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, mean=mean, covariance=covariance)
    os.replace(tmp, path)


def load_statistics(path):
    """(mean, covariance) from a file written by save_statistics, or None when absent."""
    if not os.path.isfile(path):
        return None
    with np.load(path, allow_pickle=False) as npz:
        return npz["mean"], npz["covariance"]


def _plan(request):
    reals, feature_fn = request.reals, request.feature_fn
    cache_path = cached = None
    if feature_fn is None:
        from progan_tf.metrics.inception import InceptionV3Features

        feature_fn = InceptionV3Features(batch_size=request.batch_size)
        if request.fid_reals_cache is not False:  # only Inception statistics are cached
            cache_path = reals_cache_path(request.fid_reals_cache or weights_lib.cache_dir(),
                                          reals.path, request.num, reals.mirror)
            cached = load_statistics(cache_path)
    fake_stats, real_stats = FeatureStatistics(), FeatureStatistics()
    plan = Plan(fakes=[Window(0, request.num, lambda x: fake_stats.feed(feature_fn(x)))])
    if cached is None:
        plan.reals.append(Window(0, request.num, lambda x: real_stats.feed(feature_fn(x))))

    def finish():
        real = cached
        if real is None:
            real = real_stats.statistics()
            if cache_path is not None:
                save_statistics(cache_path, *real)
        return {"fid": frechet_distance(*fake_stats.statistics(), *real)}

    plan.finish = finish
    return plan


METRICS = (
    Metric("fid", 50000, "FID, Inception-v3 pool3 (StyleGAN fid50k)", _plan,
           needs_reals=True, needs_generator=True),
)
