"""AE-FD (FSVAE paper): Fréchet distance between real and generated images in an ANN autoencoder's latent space."""
from __future__ import annotations

import os

import numpy as np
import torch

from .. import checkpoint
from ..config import PRESETS
from ..errors import NeurovaeError
from .frechet import MetricError, frechet_distance, stats


def train_hint(dataset: str | None = None, image_size: int | None = None) -> str:
    """The command that trains an autoencoder fitting ``dataset`` at ``image_size`` (small MNIST preset by default)."""
    small = f"{dataset or 'mnist'}-small"
    if small in PRESETS and image_size in (None, PRESETS[small]["image_size"]):
        suffix = "" if small == "mnist-small" else f"-{dataset}"
        return f"neurovae train --model ann-ae --config {small} --out runs/ann-ae{suffix}"
    preset = dataset if dataset in PRESETS else "mnist"
    size = "" if image_size in (None, PRESETS[preset]["image_size"]) else f" --set image_size={image_size}"
    return f"neurovae train --model ann-ae --config {preset}{size} --out runs/ann-ae-{preset}"


def load_autoencoder(path: str | os.PathLike, channels: int | None = None,
                     image_size: int | None = None, dataset: str | None = None):
    """An ann-ae model from a checkpoint (or run folder), checked against the images it will encode."""
    model, state = checkpoint.load_model(path)
    cfg = state["config"]
    hint = train_hint(dataset or cfg.dataset, image_size or cfg.image_size)
    if getattr(model, "kind", cfg.model) != "ann-ae":
        raise NeurovaeError(f"{path} holds a '{cfg.model}' model, but AE-FD needs an ANN "
                            f"autoencoder: train one with `{hint}`")
    wrong = []
    if channels is not None and cfg.channels != channels:
        wrong.append(f"{cfg.channels} channels, not {channels}")
    if image_size is not None and cfg.image_size != image_size:
        wrong.append(f"{cfg.image_size}px images, not {image_size}px")
    if dataset is not None and cfg.dataset != dataset:
        wrong.append(f"{cfg.dataset}, not {dataset}")
    if wrong:
        raise NeurovaeError(f"the autoencoder in {path} was trained on {'; '.join(wrong)}: "
                            f"train one on the evaluated data with `{hint}`")
    return model


def latent_codes(autoencoder, images: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Latent codes (N, latent) float64 of images in [-1, 1] under the autoencoder's encoder."""
    images = torch.as_tensor(images)
    if images.dim() != 4 or images.dtype == torch.uint8:
        raise MetricError(f"AE-FD expects float images (N, C, H, W) in [-1, 1], got "
                          f"{images.dtype} of shape {tuple(images.shape)}")
    cfg = autoencoder.cfg
    want = (cfg.channels, cfg.image_size, cfg.image_size)
    if tuple(images.shape[1:]) != want:
        raise NeurovaeError(f"the autoencoder encodes images of shape {want}, got "
                            f"{tuple(images.shape[1:])}: train one on the evaluated data with "
                            f"`{train_hint(cfg.dataset, images.shape[-1])}`")
    was_training = autoencoder.training
    autoencoder.eval()
    try:
        with torch.no_grad():
            codes = [autoencoder.embed(images[s:s + batch].float()).double()
                     for s in range(0, len(images), batch)]
    finally:
        autoencoder.train(was_training)
    return torch.cat(codes).numpy()


def aefd(generated: torch.Tensor, real: torch.Tensor, autoencoder, batch: int = 256) -> float:
    """AE-FD between generated and real images (both in [-1, 1]); autoencoder: ann-ae model or checkpoint path."""
    if isinstance(autoencoder, (str, os.PathLike)):
        autoencoder = load_autoencoder(autoencoder, channels=generated.shape[1],
                                       image_size=generated.shape[-1])
    elif getattr(autoencoder, "kind", None) != "ann-ae":
        raise NeurovaeError(f"AE-FD needs an ANN autoencoder, got a "
                            f"'{getattr(autoencoder, 'kind', type(autoencoder).__name__)}' model: "
                            f"train one with `{train_hint()}`")
    mu_g, s_g = stats(latent_codes(autoencoder, generated, batch))
    mu_r, s_r = stats(latent_codes(autoencoder, real, batch))
    return frechet_distance(mu_g, s_g, mu_r, s_r)
