"""`neurovae fit-prior`: give a trained ESVAE run a mixture prior without training it again.

The fit reads only the encoder (`models/mixture_prior.py`), so a finished run's checkpoint
gets the prior that training with `--set prior_components=K` would have fitted at its last
epoch. The checkpoint is rewritten in place (atomically) with the new config, and the
run's sample grid is drawn again from the new prior.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from . import checkpoint, data, fileio, plots
from .errors import NeurovaeError
from .kernels import enable_kernels
from .models import build_model
from .train import N_GRID


def refit_prior(source, components: int, images: int | None = None) -> dict:
    """Fit a mixture of `components` Gaussians to the run's first `images` training images
    (default: the config's prior_fit_images); returns {"checkpoint", "weights", "samples",
    "images"}: the files rewritten, the component weights and the images fitted to."""
    old, state = checkpoint.load_model(source)
    path = checkpoint.resolve(source)
    if old.kind != "esvae":
        raise NeurovaeError(f"{path} holds a model of kind '{old.kind}'; fit-prior fits "
                            f"the prior of an ESVAE run only (an FSVAE's prior is its spiking "
                            f"loop, an ANN VAE's a fixed Gaussian)")
    cfg = dataclasses.replace(old.cfg, prior_components=components,
                              prior_fit_images=images or old.cfg.prior_fit_images).validate()
    enable_kernels()                        # the encoder runs as it does in training
    model = build_model(cfg).eval()         # the same layers; only the mixture's buffers differ
    model.load_state_dict({k: v for k, v in old.state_dict().items()
                           if not k.startswith("mixture_")}, strict=False)
    train_set = data.load_images(cfg.dataset, "train", cfg.data_dir, cfg.image_size,
                                 cfg.channels)
    n = model.fit_prior(train_set) if components > 1 else 0
    kept = {k: state[k] for k in ("optimizer", "rng", "partial") if k in state}
    checkpoint.save(path, cfg=cfg, model=model, epoch=state["epoch"],
                    metrics=state.get("metrics"), extra=kept)
    run = Path(path).parent
    if (run / "config.json").exists():
        fileio.write_text(run / "config.json", json.dumps(cfg.to_dict(), indent=1))
    grid = run / "samples.png"
    plots.save_grid(model.sample(N_GRID, seed=cfg.seed), grid)
    w = model.mixture_weights if model.has_mixture else torch.ones(1)
    return {"checkpoint": path, "weights": w, "samples": grid, "images": n}
