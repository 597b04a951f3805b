"""The samplers' rules, written once for numpy and torch: FSVAE's k-candidate pick,
ESVAE's pick of one window step and its integer prior, with their seeds.

On the graph both picks are AND neurons: a candidate (FSVAE) or a delayed encoder spike
(ESVAE) and a one-hot selector the host streams in must arrive in the same step. The
selectors come from the counter PRNG, so they are the same numbers the rules draw here.

Every draw comes from the counter PRNG (`neurovae.prng`), a pure function of (seed, image,
step, neuron), so training, the simulators and the Lava processes draw the same numbers.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import prng
from .neuron import NeuronParams

SIGMOID_SHIFT = 24          # ESVAE prior: y = W eps in units of 2**-24
PRIOR_WEIGHT_SHIFT = 8      # ESVAE prior weights in units of 2**-8 (sqrt(3) folded in)
EPS_SCALE = math.sqrt(3) / 65536   # integer Gaussian -> eps ~ N(0, 1)

# AND neurons: two inputs of AND_WEIGHT in one step cross the threshold, one does not, and
# nothing carries over (current decay 4096; voltage decay 4095 leaves < 1 unit of one input)
AND_WEIGHT = 2
AND_NEURON = NeuronParams(i_decay=4096, v_decay=4095, vth_mant=3)


def _torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def _randint(like, seed, image, step, neuron, high):
    if _torch(like):
        return prng.randint_torch(seed, image, step, neuron, high)
    return prng.randint_numpy(seed, image, step, neuron, high)


def _arange(like, n):
    """Indices 0..n-1 as `like` is: a numpy array, or a tensor on like's device."""
    return torch.arange(n, device=like.device) if _torch(like) else np.arange(n)


def sampler_seed(seed: int, generate: bool) -> int:
    """The prior samples with the salted seed, so its draws differ from the posterior's."""
    return seed ^ prng.PRIOR_SEED_SALT if generate else seed


def pick_index(like, seed: int, images, step: int, latent: int, k: int):
    """Which of its k candidates each latent takes at `step`: (N, latent) in [0, k)."""
    return _randint(like, seed, images[:, None], step, _arange(like, latent)[None, :], k)


def pick(c, k: int, seed: int, images, step: int):
    """FSVAE's sampler: z_i = candidate (i*k + j), j from the PRNG; c (N, C*k) -> (N, C)."""
    n, ck = c.shape
    idx = pick_index(c, seed, images, step, ck // k, k)
    c = c.reshape(n, ck // k, k)
    if _torch(c):
        return c.gather(2, idx.unsqueeze(-1)).squeeze(-1)
    return np.take_along_axis(c, idx[..., None], 2)[..., 0]


def pick_selector(like, k: int, seed: int, images, step: int, latent: int):
    """The host's one-hot selectors at `step`: (N, latent*k), 1 at candidate (i, j(i))."""
    idx = pick_index(like, seed, images, step, latent, k)
    if _torch(like):
        return torch.nn.functional.one_hot(idx, k).reshape(len(images), latent * k)
    return np.eye(k, dtype=np.int64)[idx].reshape(len(images), latent * k)


def rate_draw(seed: int, images, steps, latents, T: int):
    """ESVAE's uniform draws m in [0, T) for broadcastable image, step and latent indices."""
    return _randint(images, seed, images, steps, latents, T)


def rate_spikes(counts, T: int, seed: int, images, step: int):
    """ESVAE Bernoulli spikes at `step`: (PRNG mod T) < count, so P(spike) = count / T."""
    m = rate_draw(seed, images[:, None], step, _arange(counts, counts.shape[1])[None, :], T)
    return (m < counts).long() if _torch(counts) else (m < counts).astype(np.int64)


def window_pick(window, T: int, seed: int, images, step: int):
    """ESVAE's sampler: z_i = the encoder's spike at step m of its rate window, m uniform
    in [0, T) from the PRNG, so P(z_i = 1) = count_i / T. window (N, C, T) -> (N, C)."""
    n, c, _ = window.shape
    m = rate_draw(seed, images[:, None], step, _arange(window, c)[None, :], T)
    if _torch(window):
        return window.gather(2, m.unsqueeze(-1)).squeeze(-1)
    return np.take_along_axis(window, m[..., None], 2)[..., 0]


def window_delays(T: int):
    """The delays d = 1 .. 2T-1 of ESVAE's AND neurons: the one at d holds step s - d."""
    return np.arange(1, 2 * T)


def window_selector(like, T: int, seed: int, images, step: int, latent: int):
    """The host's one-hot selectors at sampling `step`: (N, latent*(2T-1)), 1 at the AND
    neuron (i, d) whose delay d = step - m_i reaches back to window step m_i."""
    m = rate_draw(seed, images[:, None], step, _arange(like, latent)[None, :], T)
    d = step - m - 1                        # index of delay step - m among 1 .. 2T-1
    if _torch(like):
        return torch.nn.functional.one_hot(d, 2 * T - 1).reshape(len(images), -1)
    return np.eye(2 * T - 1, dtype=np.int64)[d].reshape(len(images), -1)


def in_window(sampler: dict, t: int) -> tuple[bool, bool]:
    """ESVAE's clock: (step t is counted into the rate, step t emits sampled spikes)."""
    s, T = sampler["sample_start"], sampler["T"]
    return sampler["window_start"] <= t < s, s <= t < s + T


def prior_eps(like, seed: int, images, latent: int):
    """The prior's integer Gaussian per (image, latent), drawn with the salted seed."""
    idx = _arange(like, latent)
    if _torch(like):
        return prng.gaussian_int_torch(sampler_seed(seed, True), images[:, None], idx[None, :])
    return prng.gaussian_int_numpy(sampler_seed(seed, True), images[:, None], idx[None, :])


# The mixture prior's component is one 32-bit draw at this counter step (eps uses 0..3)
COMPONENT_STEP = 4


def prior_component(like, seed: int, images, bounds):
    """Which Gaussian of a mixture prior each image draws: (N,) in [0, K), the number of
    cumulative-weight bounds (units of 2**-32) at or below a uniform 32-bit draw."""
    u = (prng.draw_torch if _torch(like) else prng.draw_numpy)(
        sampler_seed(seed, True), images, COMPONENT_STEP, 0)
    return (u[:, None] >= bounds[None, :]).sum(-1)


def prior_counts(prior_linear: dict, seed: int, images):
    """ESVAE's integer prior: eps -> y = W eps + b -> count = #(y >= thresholds), (N, C).

    A mixture prior holds K such Gaussians, weight (K, C, C) and bias (K, C), and its
    `bounds` (K-1,) pick one per image (`prior_component`); one Gaussian is weight (C, C)."""
    w, b, th = (prior_linear[k] for k in ("weight", "bias", "thresholds"))
    bounds = prior_linear.get("bounds")
    if _torch(images):
        w, b, th = (torch.as_tensor(x, dtype=torch.int64, device=images.device)
                    for x in (w, b, th))
    else:
        w, b, th = (np.asarray(x, np.int64) for x in (w, b, th))
    eps = prior_eps(images, seed, images, w.shape[-1])
    if w.ndim == 3:
        bounds = (torch.as_tensor(bounds, dtype=torch.int64, device=images.device)
                  if _torch(images) else np.asarray(bounds, np.int64))
        k = prior_component(images, seed, images, bounds)
        w, b = w[k], b[k]                   # (N, C, C) and (N, C): each image's Gaussian
        y = (w * eps[:, None, :]).sum(-1) + b
    else:
        y = eps @ w.T + b
    return (y[..., None] >= th).sum(-1)


def sigmoid_thresholds(T: int) -> np.ndarray:
    """y thresholds (units 2**-24) where round(sigmoid(y) * T) steps up: count = #(y >= th)."""
    th = [math.log((j - 0.5) / (T - j + 0.5)) for j in range(1, T + 1)]
    return np.array([round(x * 2 ** SIGMOID_SHIFT) for x in th], dtype=np.int64)
