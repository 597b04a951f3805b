"""ESVAE (Zhan et al., 2024) on the phase clock (docs/clock.md): S = 2T steps.

The encoder's output over local steps [0, T) is the rate window: rate = count / T. At
each sampling step s in [T, 2T) the posterior's z_i[s] is the encoder's spike at window
step m = PRNG(seed, image, s, i) mod T (`sampling.window_pick`), so P(z_i[s] = 1) =
count_i / T; the surrogate passes the gradient straight to the rate. The prior rate is
sigmoid(Linear(eps)) with eps from the same PRNG (Irwin-Hall Gaussian); generation rounds
it to count / T and spikes where (PRNG mod T) < count (`sampling.rate_spikes`). z is zero
before T, and the decoder skips those steps exactly. Loss: MSE + lambda * RBF-MMD between
posterior and prior rates. With `prior_components` K > 1, generation draws from a mixture of
K such Gaussians fitted ex post to the training images' posterior rates
(`models/mixture_prior.py`, refitted after every epoch); the MMD keeps the paper's prior.
"""
from __future__ import annotations

import math

import torch

from ..config import Config
from ..hw import sampling
from ..hw.clock import esvae_clock
from ..hw.sampling import EPS_SCALE, PRIOR_WEIGHT_SHIFT, SIGMOID_SHIFT
from .fsvae import _images, to_input
from . import mixture_prior
from .recon_loss import recon_terms
from ..devices import model_device
from .spiking import SpikingDecoder, SpikingEncoder, rbf_mmd


class ESVAE(torch.nn.Module):
    kind = "esvae"

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.encoder = SpikingEncoder(cfg, cfg.latent)
        self.decoder = SpikingDecoder(cfg)
        self.prior = torch.nn.Linear(cfg.latent, cfg.latent)
        k, c = cfg.prior_components, cfg.latent
        if k > 1:   # all zero until `fit_prior`: generation uses the linear prior till then
            self.register_buffer("mixture_weights", torch.zeros(k, dtype=torch.float64))
            self.register_buffer("mixture_means", torch.zeros(k, c, dtype=torch.float64))
            self.register_buffer("mixture_chol", torch.zeros(k, c, c, dtype=torch.float64))
        clock = esvae_clock(cfg.T)
        self.window_start, self.sample_start = clock.window_start, clock.sample_start
        self.n_steps = clock.n_steps

    def _draws(self, seed: int, images: torch.Tensor, dev) -> torch.Tensor:
        """The sampler's m in [0, T) at every sampling step: (N, C, T), step T + j at j."""
        T, c = self.cfg.T, self.cfg.latent
        steps = torch.arange(self.sample_start, self.sample_start + T, device=dev)
        return sampling.rate_draw(seed, images.to(dev)[:, None, None], steps[None, None, :],
                                  torch.arange(c, device=dev)[None, :, None], T)

    def _full_window(self, z: torch.Tensor) -> torch.Tensor:
        """Spikes of the sampling steps (N, C, T) -> (N, C, S), zero outside them."""
        return torch.nn.functional.pad(
            z, (self.sample_start, self.n_steps - self.sample_start - self.cfg.T))

    def window_spikes(self, window: torch.Tensor, seed: int, images: torch.Tensor):
        """Posterior spikes (N, C, S): at sampling step s the window's spike at step
        m(s) (`sampling.window_pick`); the gradient flows straight to the window's rate."""
        rate = window.mean(-1, keepdim=True)
        m = self._draws(seed, images, window.device)
        hard = window.detach().gather(2, m)
        # (rate - rate.detach()) is exactly 0 forward, so z stays exactly 0/1 for any T
        return self._full_window(hard + (rate - rate.detach()))

    def spike_train(self, rate: torch.Tensor, seed: int, images: torch.Tensor):
        """Bernoulli spikes (N, C, S) in the sampling window, P(spike) = rate, for rates
        on the count / T grid: (PRNG mod T) < count (`sampling.rate_spikes`, the prior's
        rule); the gradient flows to `rate`."""
        T = self.cfg.T
        m = self._draws(seed, images, rate.device)
        # m < count on the deployed integers; count = rate * T there
        hard = (rate.unsqueeze(-1) * T > m.to(rate.dtype) + 0.5).to(rate.dtype)
        r = rate.unsqueeze(-1)
        return self._full_window(hard + (r - r.detach()))

    def posterior_window(self, x_bytes):
        """The encoder's spikes of the rate window, local steps [0, T): (N, C, T)."""
        e = self.encoder(to_input(x_bytes), self.sample_start)
        return e[..., self.window_start:self.sample_start]

    def posterior_rate(self, x_bytes):
        return self.posterior_window(x_bytes).mean(-1)

    def prior_rate(self, seed: int, images: torch.Tensor):
        dev = model_device(self)
        images = images.to(dev)
        eps = sampling.prior_eps(images, seed, images, self.cfg.latent)
        return torch.sigmoid(self.prior(eps.float() * EPS_SCALE))

    @property
    def has_mixture(self) -> bool:
        """True once `fit_prior` has fitted the mixture prior generation draws from."""
        return self.cfg.prior_components > 1 and bool(self.mixture_weights.sum() > 0)

    @torch.no_grad()
    def fit_prior(self, train_set, batch: int = 500) -> int:
        """Fit the mixture prior to the posterior rates of the first prior_fit_images images
        the run trains on (an ImageSet of the training split); returns how many it used."""
        dev = model_device(self)
        n = min(len(train_set), self.cfg.train_subset or len(train_set),
                self.cfg.prior_fit_images)
        rates = torch.cat([self.posterior_rate(train_set.tensor(torch.arange(i, min(i + batch, n)))
                                               .to(dev)).cpu() for i in range(0, n, batch)])
        mix = mixture_prior.fit(rates, self.cfg.T, self.cfg.prior_components, self.cfg.seed)
        self.mixture_weights.copy_(mix.weights)
        self.mixture_means.copy_(mix.means)
        self.mixture_chol.copy_(mix.chol)
        return n

    def integer_prior(self, as_numpy: bool = True) -> dict:
        """The prior as the deployed integers (`sampling.prior_counts`): weight x sqrt(3) in
        units of 2**-8, bias in units of 2**-24, and the sigmoid's count thresholds; a fitted
        mixture adds a leading component axis and its 32-bit `bounds`. As numpy arrays (the
        file's) or as int64 tensors on the model's device."""
        th = sampling.sigmoid_thresholds(self.cfg.T)
        if self.has_mixture:
            weight, bias = self.mixture_chol, self.mixture_means
        else:
            weight, bias = self.prior.weight.detach(), self.prior.bias.detach()
        w = torch.round(weight.double() * (math.sqrt(3) * 2 ** PRIOR_WEIGHT_SHIFT)).long()
        b = torch.round(bias.double() * 2 ** SIGMOID_SHIFT).long()
        out = {"weight": w, "bias": b, "thresholds": th}
        if self.has_mixture:
            out["bounds"] = mixture_prior.bounds(self.mixture_weights).to(w.device)
        if as_numpy:
            return {k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else v)
                    for k, v in out.items()}
        return out

    def forward(self, x_bytes, seed: int, images=None, **_):
        images = _images(x_bytes, images)
        window = self.posterior_window(x_bytes)
        r_q = window.mean(-1)
        z = self.window_spikes(window, seed, images)
        recon = self.decoder.for_loss(z, silent=self.sample_start)
        r_p = self.prior_rate(seed, images)
        rec, mse = recon_terms(recon, x_bytes, self.cfg.recon_loss)
        mmd = rbf_mmd(r_q, r_p)
        loss = rec + self.cfg.mmd_weight * mmd
        return dict(loss=loss, mse=mse, mmd=mmd, recon=recon, z=z, rate=r_q.mean())

    def latent(self, x_bytes, seed: int, images):
        """Deployed latent spikes z (N, C, S): picked from the encoder's rate window for
        x_bytes; from the integer prior's counts (what the host computes on the graph,
        round(sigmoid(.) * T) in exact integers) when x_bytes is None; zero before the
        sampling steps."""
        if x_bytes is None:
            images = images.to(model_device(self))
            counts = sampling.prior_counts(self.integer_prior(as_numpy=False), seed, images)
            return self.spike_train(counts.float() / self.cfg.T, seed, images)
        return self.window_spikes(self.posterior_window(x_bytes), seed, images)

    def decode(self, z):
        """Image in [-1, 1] from latent spikes (silent before the sampling window)."""
        return self.decoder(z, silent=self.sample_start)

    @torch.no_grad()
    def reconstruct(self, x_bytes, seed: int = 0, images=None):
        x_bytes = x_bytes.to(model_device(self))
        return self.decode(self.latent(x_bytes, seed, _images(x_bytes, images)))

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, images=None):
        dev = model_device(self)
        images = torch.arange(n, device=dev) if images is None else images.to(dev)
        return self.decode(self.latent(None, seed, images))
