"""ESVAE (Zhan et al., 2024) on the hardware clock.

Latent rates are the encoder's firing counts over a window of T steps; after the window a
sampler emits Bernoulli spikes for T steps: z[t, i] = (PRNG mod T) < count_i, so
P(spike) = count/T exactly. The surrogate passes the gradient straight to the rate. The
prior rate is sigmoid(Linear(eps)) with eps from the same PRNG (Irwin-Hall Gaussian).
Loss: MSE + lambda * RBF-MMD between posterior and prior rates.
"""
from __future__ import annotations

import torch

from ..config import Config
from ..hw import sampling
from ..hw.clock import esvae_clock
from ..hw.sampling import EPS_SCALE
from .fsvae import _images, to_input, to_target
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
        clock = esvae_clock(self.encoder.depth, self.decoder.depth, cfg.T)
        self.window_start, self.sample_start = clock.window_start, clock.sample_start
        self.n_steps = clock.n_steps

    def spike_train(self, rate: torch.Tensor, seed: int, images: torch.Tensor):
        """Bernoulli spikes (N, C, S) in the sampling window; gradient flows to `rate`."""
        T, (n, c), dev = self.cfg.T, rate.shape, rate.device
        steps = torch.arange(self.sample_start, self.sample_start + T, device=dev)
        m = sampling.rate_draw(seed, images.to(dev)[:, None, None], steps[None, None, :],
                               torch.arange(c, device=dev)[None, :, None], T)
        # m < count on the deployed integers; count = rate * T there
        hard = (rate.unsqueeze(-1) * T > m.to(rate.dtype) + 0.5).to(rate.dtype)
        z = hard + rate.unsqueeze(-1) - rate.unsqueeze(-1).detach()
        return torch.nn.functional.pad(
            z, (self.sample_start, self.n_steps - self.sample_start - T))

    def posterior_rate(self, x_bytes):
        e = self.encoder(to_input(x_bytes), self.sample_start)
        return e[..., self.window_start:self.sample_start].mean(-1)

    def prior_rate(self, seed: int, images: torch.Tensor):
        dev = model_device(self)
        images = images.to(dev)
        eps = sampling.prior_eps(images, seed, images, self.cfg.latent)
        return torch.sigmoid(self.prior(eps.float() * EPS_SCALE))

    def forward(self, x_bytes, seed: int, images=None, **_):
        images = _images(x_bytes, images)
        r_q = self.posterior_rate(x_bytes)
        z = self.spike_train(r_q, seed, images)
        recon = self.decoder(z, silent=self.sample_start)
        r_p = self.prior_rate(seed, images)
        mse = torch.mean((recon - to_target(x_bytes)) ** 2)
        mmd = rbf_mmd(r_q, r_p)
        loss = mse + self.cfg.mmd_weight * mmd
        return dict(loss=loss, mse=mse, mmd=mmd, recon=recon, z=z, rate=r_q.mean())

    def latent(self, x_bytes, seed: int, images):
        """Deployed latent spikes z (N, C, S): from the encoder's rates for x_bytes, from the
        prior's rates rounded to the deployable count / T when x_bytes is None."""
        if x_bytes is None:
            rate = torch.round(self.prior_rate(seed, images) * self.cfg.T) / self.cfg.T
        else:
            rate = self.posterior_rate(x_bytes)
        return self.spike_train(rate, seed, images)

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
