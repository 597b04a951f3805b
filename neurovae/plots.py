"""PNG outputs: image grids and loss curves, written atomically."""
from __future__ import annotations

import math

import numpy as np
import torch

from .fileio import atomic_path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1], (N, C, H, W) -> uint8 (N, H, W, C)."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    x = to_uint8(images)
    n, h, w, c = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = x[i]
    return out


def save_grid(images: torch.Tensor, path, nrow: int | None = None, scale: int = 2) -> None:
    """Save a grid of images in [-1, 1] as PNG (upscaled `scale` x for visibility)."""
    from PIL import Image
    g = grid(images, nrow)
    img = Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    with atomic_path(path, ".png") as tmp:
        img.save(tmp, format="PNG")


def save_pairs(originals: torch.Tensor, recons: torch.Tensor, path, per_row: int = 8) -> None:
    """Originals and reconstructions interleaved row by row: originals above, recon below."""
    rows = []
    for i in range(0, len(originals), per_row):
        rows += [originals[i:i + per_row], recons[i:i + per_row]]
    pad = per_row - len(rows[-1])
    if pad:
        rows = [torch.cat([r, -torch.ones(per_row - len(r), *r.shape[1:])]) for r in rows]
    save_grid(torch.cat(rows), path, nrow=per_row)


def save_loss_curve(metrics: list[dict], path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [m["epoch"] for m in metrics]
    for key in ("loss", "mse", "mmd", "kld", "test_mse"):
        vals = [m.get(key) for m in metrics]
        if any(v is not None for v in vals):
            ax.plot(epochs, vals, marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def save_quality_vs_synops(rows: list[dict], path) -> None:
    """Quality against synaptic operations per image, one point per quality-bench line
    (`bench/quality.py`): reconstruction MSE against the reconstruction's SynOps, and the
    confident-sample fraction against generation's SynOps: the trade-off of a chip's energy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4 + 0.2 * len(rows)))
    for i, r in enumerate(rows):
        style = dict(s=24, color=f"C{i % 10}", marker="os^Dv"[i // 10 % 5])
        a.scatter(r["recon_synops_per_image"] / 1e6, r["mse"],
                  label=r.get("label") or r["model"], **style)
        b.scatter(r["gen_synops_per_image"] / 1e6, 100 * r["confident_fraction"], **style)
    a.set(xlabel="SynOps per reconstruction (M)", ylabel="test MSE (lower is better)")
    b.set(xlabel="SynOps per sample (M)", ylabel="confident samples, % (higher is better)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.legend(loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.045 * ((len(rows) + 1) // 2), 1, 1))
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
