"""Fréchet distance between Gaussians fitted to feature sets (shared by FID and AE-FD)."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from ..errors import NeurovaeError

EPS = 1e-6   # diagonal offset that makes a singular covariance product invertible


class MetricError(NeurovaeError):
    """A metric cannot be computed from the inputs given (too few images, wrong shapes)."""


def stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) in float64 of features (N, D), N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise MetricError(f"features must be a 2-d array (N, D), got shape {f.shape}")
    if f.shape[0] < 2:
        raise MetricError(f"a covariance needs at least 2 images, got {f.shape[0]}; "
                          f"evaluate more images")
    if not np.isfinite(f).all():
        raise MetricError("features hold NaN or inf; the images fed to the metric are not finite")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """Matrix square root, quiet across SciPy versions (disp=False returns a tuple in older ones)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = scipy.linalg.sqrtm(a, disp=False)
    return out[0] if isinstance(out, tuple) else out


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = EPS) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), as pytorch-fid computes it.

    A product without a finite (or with a clearly complex) square root is retried with
    ``eps`` added to both diagonals; tiny imaginary parts from rounding are dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != mu2.shape or s1.shape != (d, d) or s2.shape != (d, d):
        raise MetricError(f"mismatched statistics: means {mu1.shape} and {mu2.shape}, "
                          f"covariances {s1.shape} and {s2.shape}")
    covmean = _sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all() or _imaginary(covmean):
        offset = np.eye(d) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
    if not np.isfinite(covmean).all() or _imaginary(covmean):
        raise MetricError("the Fréchet distance is numerically unstable for these statistics "
                          "(covariance square root not real); evaluate more images")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(np.real(covmean)))
    return max(value, 0.0)   # rounding can leave identical statistics a hair below zero


def _imaginary(m: np.ndarray) -> bool:
    """True when a square root has imaginary diagonal parts beyond rounding (pytorch-fid's 1e-3)."""
    return np.iscomplexobj(m) and not np.allclose(np.diagonal(m).imag, 0, atol=1e-3)
