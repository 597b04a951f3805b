"""ESVAE's mixture prior: K Gaussians fitted ex post to the posterior's latent rates.

The paper's prior, one Gaussian through a sigmoid, cannot hold the aggregate posterior's
modes (one per kind of image), so its samples mix them. After training, the rates of the
training images are clustered in logit space (k-means from the seed) and each cluster gets
its mean and Cholesky factor; generation picks a cluster by its weight, then draws as the
one-Gaussian prior does (`hw.sampling.prior_counts`). This is ex-post density estimation
as in Ghosh et al. 2020 ("From variational to deterministic autoencoders").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# Rates are counts / T; 0 and T are clamped to CLAMP / T from the ends before the logit,
# inside the prior's first and last rounding steps, so they round back to 0 and T.
CLAMP = 0.25
KMEANS_ITERS = 50
RIDGE = 1e-3                # added to each cluster's covariance: few points, or constant rates


@dataclass
class Mixture:
    """weights (K,), means (K, C) and Cholesky factors (K, C, C) in logit space, float64."""

    weights: torch.Tensor
    means: torch.Tensor
    chol: torch.Tensor


def to_logits(rates: torch.Tensor, T: int) -> torch.Tensor:
    """Rates on the count / T grid -> logits, the ends clamped (see CLAMP)."""
    lo = CLAMP / T
    return torch.logit(rates.double().clamp(lo, 1 - lo))


def kmeans(x: torch.Tensor, k: int, seed: int, iters: int = KMEANS_ITERS) -> torch.Tensor:
    """Cluster index of each row of x (N, D): Lloyd's iterations from k-means++ centers
    (each next center a row drawn with probability ~ its squared distance), seeded."""
    g = torch.Generator().manual_seed(seed)
    k = min(k, len(x))
    centers = x[torch.randint(len(x), (1,), generator=g)]
    for _ in range(1, k):
        d2 = torch.cdist(x, centers).min(1).values.pow(2)
        if float(d2.sum()) == 0:            # fewer distinct rows than k: duplicate a center
            centers = torch.cat([centers, centers[:1]])
            continue
        centers = torch.cat([centers, x[torch.multinomial(d2, 1, generator=g)]])
    assign = torch.full((len(x),), -1, dtype=torch.long)
    for _ in range(iters):
        new = torch.cdist(x, centers).argmin(1)
        if torch.equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = x[assign == j]
            if len(members):        # an empty cluster keeps its center and gets weight 0
                centers[j] = members.mean(0)
    return assign


def fit(rates: torch.Tensor, T: int, k: int, seed: int) -> Mixture:
    """A mixture of k Gaussians in logit space for the posterior rates (N, C)."""
    x = to_logits(rates.cpu(), T)
    assign = kmeans(x, k, seed)
    c = x.shape[1]
    weights = torch.zeros(k, dtype=torch.float64)
    means = torch.zeros(k, c, dtype=torch.float64)
    chol = torch.zeros(k, c, c, dtype=torch.float64)
    eye = torch.eye(c, dtype=torch.float64)
    for j in range(k):
        members = x[assign == j]
        if not len(members):
            chol[j] = eye
            continue
        weights[j] = len(members) / len(x)
        means[j] = members.mean(0)
        cov = torch.cov(members.T) if len(members) > 1 else torch.zeros(c, c, dtype=torch.float64)
        chol[j] = torch.linalg.cholesky(cov.reshape(c, c) + RIDGE * eye)
    return Mixture(weights, means, chol)


def bounds(weights: torch.Tensor) -> torch.Tensor:
    """Cumulative weights as 32-bit bounds (K-1,): component j takes draws in
    [bound j-1, bound j), so a component of weight 0 is never drawn."""
    cum = torch.cumsum(weights.double() / weights.sum(), 0)[:-1]
    return torch.round(cum * 2 ** 32).long().clamp(0, 2 ** 32)
