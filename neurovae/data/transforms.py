"""Pixel transforms on uint8 ``(N, C, H, W)`` batches: fit to a size, convert 1 <-> 3 channels, random flips."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_CHUNK = 4096  # images per chunk when resizing, to bound float memory


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """RGB uint8 (N,3,H,W) -> luminance (N,1,H,W) with PIL's ITU-R 601-2 integer formula."""
    x = x.to(torch.int32)
    y = (x[:, 0] * 19595 + x[:, 1] * 38470 + x[:, 2] * 7471 + 32768) >> 16
    return y.clamp_(0, 255).to(torch.uint8).unsqueeze(1)


def convert_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 (N,C,H,W) with ``channels`` channels: 1 -> 3 repeats, 3 -> 1 takes the luminance, None keeps C."""
    if channels is None or channels == x.shape[1]:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    return to_gray(x)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 (N,C,H,W) to (size,size), rounded back to uint8 in chunks."""
    if x.shape[-2:] == (size, size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for s in range(0, x.shape[0], _CHUNK):
        y = F.interpolate(x[s:s + _CHUNK].float(), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=True)
        out[s:s + _CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def fit(x: torch.Tensor, image_size: int | None, pad_ok: bool) -> torch.Tensor:
    """Bring square uint8 (N,C,H,W) images to image_size: zero-pad (MNIST-like, even growth) or resize."""
    if image_size is None or x.shape[-1] == image_size:
        return x
    grow = image_size - x.shape[-1]
    if pad_ok and grow > 0 and grow % 2 == 0:
        p = grow // 2
        return F.pad(x, (p, p, p, p))
    return resize(x, image_size)


def random_flip(batch_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of a ``(B, C, H, W)`` batch horizontally with p=0.5, drawing from ``generator`` (reproducible augmentation)."""
    if batch_uint8.dim() != 4:
        raise ValueError(f"random_flip expects a (B, C, H, W) batch, got shape {tuple(batch_uint8.shape)}")
    flip = torch.rand(batch_uint8.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(batch_uint8.device).view(-1, 1, 1, 1)
    return torch.where(flip, batch_uint8.flip(-1), batch_uint8)
