"""ANN baselines on the same conv stack: a Gaussian VAE and a plain autoencoder (for AE-FD)."""
from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from ..devices import model_device
from .recon_loss import to_target


def _encoder(cfg: Config) -> nn.Sequential:
    layers, c = [], cfg.channels
    for ch in cfg.enc_channels:
        layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.BatchNorm2d(ch), nn.LeakyReLU()]
        c = ch
    return nn.Sequential(*layers, nn.Flatten())


class _Decoder(nn.Module):
    def __init__(self, cfg: Config, latent: int):
        super().__init__()
        ch = tuple(cfg.dec_channels)
        self.side, self.ch0 = cfg.image_size // 2 ** (len(ch) - 1), ch[0]
        self.fc = nn.Linear(latent, ch[0] * self.side ** 2)
        layers = []
        for i in range(len(ch) - 1):
            layers += [nn.ConvTranspose2d(ch[i], ch[i + 1], 4, stride=2, padding=1),
                       nn.BatchNorm2d(ch[i + 1]), nn.LeakyReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(ch[-1], cfg.channels, 3, padding=1), nn.Tanh())

    def forward(self, z):
        return self.body(self.fc(z).view(len(z), self.ch0, self.side, self.side))


class ANNVAE(nn.Module):
    kind = "ann-vae"

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.encoder = _encoder(cfg)
        flat = cfg.enc_channels[-1] * (cfg.image_size // 2 ** len(cfg.enc_channels)) ** 2
        self.mu, self.logvar = nn.Linear(flat, cfg.ann_latent), nn.Linear(flat, cfg.ann_latent)
        self.decoder = _Decoder(cfg, cfg.ann_latent)

    def _inp(self, x_bytes):
        return to_target(x_bytes)

    def forward(self, x_bytes, seed: int = 0, gen=None, **_):
        h = self.encoder(self._inp(x_bytes))
        mu, logvar = self.mu(h), self.logvar(h).clamp(-10, 10)
        eps = torch.randn(mu.shape, generator=gen).to(mu.device)   # CPU draws: any device
        recon = self.decoder(mu + eps * torch.exp(0.5 * logvar))
        mse = torch.mean((recon - to_target(x_bytes)) ** 2)
        kld = torch.mean(-0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1))
        return dict(loss=mse + self.cfg.kld_weight * kld, mse=mse, kld=kld, recon=recon)

    @torch.no_grad()
    def reconstruct(self, x_bytes, seed: int = 0, **_):
        x_bytes = x_bytes.to(model_device(self))
        return self.decoder(self.mu(self.encoder(self._inp(x_bytes))))

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, **_):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.cfg.ann_latent, generator=g)
        return self.decoder(z.to(model_device(self)))


class ANNAE(nn.Module):
    kind = "ann-ae"

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        flat = cfg.enc_channels[-1] * (cfg.image_size // 2 ** len(cfg.enc_channels)) ** 2
        self.encoder = nn.Sequential(_encoder(cfg), nn.Linear(flat, cfg.ann_latent))
        self.decoder = _Decoder(cfg, cfg.ann_latent)

    def embed(self, images_pm1: torch.Tensor) -> torch.Tensor:
        """Latent code of images in [-1, 1] (the AE-FD feature space)."""
        return self.encoder(images_pm1)

    def forward(self, x_bytes, **_):
        recon = self.decoder(self.encoder(to_target(x_bytes)))
        mse = torch.mean((recon - to_target(x_bytes)) ** 2)
        return dict(loss=mse, mse=mse, recon=recon)

    @torch.no_grad()
    def reconstruct(self, x_bytes, **_):
        return self.decoder(self.encoder(to_target(x_bytes.to(model_device(self)))))

    sample = None   # an autoencoder has no prior to sample from
