"""FSVAE (Kamata et al., AAAI 2022) on the phase clock (docs/clock.md): S = T + 4 steps.

Encoder spikes and the fed-back latent drive a spiking autoregressive posterior that emits
k candidate spikes per latent; the PRNG picks one (a Bernoulli process with rate = the
candidates' mean). z spikes at the T latent steps [0, T) and is silent in the window's
last LOOP_LATENCY steps; the decoder and readout run all S steps. The prior is the same
loop without the encoder. Loss: MSE (or BCE, `recon_loss`) + MMD between the PSP-filtered
posterior and prior candidate rates over the latent steps (the paper's form).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import Config
from ..devices import model_device
from ..hw.clock import fsvae_clock
from ..hw.sampling import sampler_seed
from ..prng import MIX_SEED_SALT
from .recon_loss import recon_terms
from .spiking import AutoregressiveLoop, SpikingDecoder, SpikingEncoder, psp



def _images(x_bytes: torch.Tensor, images) -> torch.Tensor:
    """The images' indices (the PRNG's counters) on the batch's device: 0..N-1 by default."""
    if images is None:
        return torch.arange(len(x_bytes), device=x_bytes.device)
    return torch.as_tensor(images, device=x_bytes.device)


def to_input(x_bytes: torch.Tensor) -> torch.Tensor:
    """Encoder input: image bytes / 256 (the drive's scale)."""
    return x_bytes.float() / 256.0


class FSVAE(torch.nn.Module):
    kind = "fsvae"

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.encoder = SpikingEncoder(cfg, cfg.latent)
        self.posterior = AutoregressiveLoop(cfg, ext=cfg.latent)
        self.prior = AutoregressiveLoop(cfg)
        self.decoder = SpikingDecoder(cfg)
        clock = fsvae_clock(cfg.T)
        self.n_steps, self.latent_steps = clock.n_steps, clock.latent_steps

    def full_window(self, z: torch.Tensor) -> torch.Tensor:
        """z of the latent steps (N, C, T) -> (N, C, S): silent in the last steps."""
        return F.pad(z, (0, self.n_steps - z.shape[-1]))

    def encode(self, x_bytes, seed: int, images: torch.Tensor):
        """Posterior candidates (N, C*k, T) and z (N, C, T) of the latent steps. Steps
        from T on cannot reach z, so the encoder and the loop run the T steps only."""
        e = self.encoder(to_input(x_bytes), self.latent_steps)
        return self.posterior(self.latent_steps, seed, images, ext=e)

    def prior_latent(self, seed: int, images: torch.Tensor, teacher=None, mix_p=0.0,
                     mix_seed: int = 0):
        """Prior candidates (N, C*k, T) and z (N, C, T), with the salted seed."""
        return self.prior(self.latent_steps, sampler_seed(seed, True), images,
                          teacher=teacher, mix_p=mix_p, mix_seed=mix_seed)

    def forward(self, x_bytes, seed: int, images=None, ss_p: float = 0.0, gen=None):
        """Training pass: returns dict of loss terms, reconstruction and spike tensors.

        Every random draw comes from the counter PRNG keyed by `seed` and the image indices
        (`gen` is unused), and every loss term is a mean over images: a batch run in slices
        gives the same gradient as the batch at once.
        """
        images = _images(x_bytes, images)
        q_c, z_t = self.encode(x_bytes, seed, images)
        p_c, _ = self.prior_latent(seed, images, teacher=z_t, mix_p=ss_p,
                                   mix_seed=seed ^ MIX_SEED_SALT)
        z = self.full_window(z_t)
        recon = self.decoder.for_loss(z)
        n, ck, s = q_c.shape
        q_rate = q_c.view(n, self.cfg.latent, self.cfg.k, s).mean(2)
        p_rate = p_c.view(n, self.cfg.latent, self.cfg.k, s).mean(2)
        rec, mse = recon_terms(recon, x_bytes, self.cfg.recon_loss)
        mmd = torch.mean((psp(q_rate) - psp(p_rate)) ** 2)
        loss = rec + self.cfg.mmd_weight * mmd
        return dict(loss=loss, mse=mse, mmd=mmd, recon=recon, z=z,
                    rate=z_t.mean())

    def latent(self, x_bytes, seed: int, images):
        """Deployed latent spikes z (N, C, S): the posterior's for x_bytes, the prior's when
        x_bytes is None; zero at steps >= T."""
        if x_bytes is None:
            return self.full_window(self.prior_latent(seed, images)[1])
        return self.full_window(self.encode(x_bytes, seed, images)[1])

    def decode(self, z):
        """Image in [-1, 1] from latent spikes."""
        return self.decoder(z)

    @torch.no_grad()
    def reconstruct(self, x_bytes, seed: int = 0, images=None):
        x_bytes = x_bytes.to(model_device(self))
        return self.decode(self.latent(x_bytes, seed, _images(x_bytes, images)))

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, images=None):
        dev = model_device(self)
        images = torch.arange(n, device=dev) if images is None else images.to(dev)
        return self.decode(self.latent(None, seed, images))
