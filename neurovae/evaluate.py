"""Quality of a deployed model (and of float checkpoints): MSE, FID, AE-FD, classifier IS.

A deployed `.net` runs on a backend (the fast `emulator` by default); a checkpoint runs as
its PyTorch float model, which is how the ANN VAE baseline is measured. Metrics whose
optional parts are missing are reported as skipped with the reason, never as a crash.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from . import data
from .hw.readout import to_signed
from .errors import NeurovaeError

BATCH = 128


@dataclass
class Subject:
    """Something that reconstructs and generates images in [-1, 1]."""

    name: str
    reconstruct: callable       # (x uint8 (N,C,H,W), first index) -> images
    generate: callable          # (n, first index) -> images, or None (no prior)
    batch: int | None = BATCH   # images per call; None: all in one call


def deployed(net, backend: str, seed: int, progress: bool = False) -> Subject:
    """A `.net` model run on one of the runtime backends: the tensor backends in batches,
    Lava in one run (one compiled graph serves all images)."""
    from .loihi_runtime import run
    from .loihi_runtime.backends import TENSOR_BACKENDS, canonical
    return Subject(f"{net.kind} deployed ({backend})",
                   lambda x, first: run(net, backend, x_bytes=x, seed=seed, progress=progress,
                                        first_image=first)[0],
                   lambda n, first: run(net, backend, n=n, seed=seed, progress=progress,
                                        first_image=first)[0],
                   batch=BATCH if canonical(backend) in TENSOR_BACKENDS else None)


def floating(model, seed: int) -> Subject:
    """A PyTorch checkpoint in float (spiking models) or as the ANN baseline."""
    spiking = model.kind in ("fsvae", "esvae")

    @torch.no_grad()
    def rec(x, first):
        if spiking:
            return model.reconstruct(x, seed=seed, images=torch.arange(first, first + len(x)))
        return model.reconstruct(x, seed=seed)

    @torch.no_grad()
    def gen(n, first):
        if spiking:
            return model.sample(n, seed=seed, images=torch.arange(first, first + n))
        return model.sample(n, seed=seed + first)
    return Subject(f"{model.kind} float (PyTorch)", rec, gen if model.sample else None)


def _batched(fn, total: int, batch: int | None, *args):
    out, batch = [], batch or total
    for lo in range(0, total, batch):
        hi = min(total, lo + batch)
        out.append(fn(*(a[lo:hi] for a in args), lo) if args else fn(hi - lo, lo))
    return torch.cat(out).double().clamp(-1, 1)


def _skip(reason: str) -> dict:
    return {"skipped": reason}


def evaluate(subject: Subject, test: data.ImageSet, n: int, ae=None, classifier=None,
             fid_ref=None, progress: bool | None = None, recon_fid: bool = False) -> dict:
    """All metrics for one subject on the first n test images and n generated images; FID
    of the n samples against `fid_ref` (:func:`fid_reference`: the whole test split).
    `recon_fid` adds the FID of the n reconstructions against the same reference: what a
    prior that matched the posterior exactly would score, so it tells a weak prior from a
    weak autoencoder. `progress` shows a bar over the Inception features (None: only on a
    terminal)."""
    from .metrics import aefd, fid
    from .metrics.classifier import sample_scores
    x = test.tensor(torch.arange(min(n, len(test))))
    real = to_signed(x, torch.float64)
    res: dict = {"subject": subject.name, "n": len(x)}
    t0 = time.perf_counter()
    recon = _batched(subject.reconstruct, len(x), subject.batch, x)
    res["mse"] = float(torch.mean((recon - real) ** 2))
    res["recon_s"] = round(time.perf_counter() - t0, 2)
    if recon_fid:
        res["recon_fid"] = _skip(fid_ref) if isinstance(fid_ref, str) else fid.fid(
            recon.float(), fid_ref, progress=progress)
    if subject.generate is None:
        for key in ("fid", "aefd", "is_classifier", "confident"):
            res[key] = _skip("the model has no prior to sample from")
        return res
    t0 = time.perf_counter()
    fake = _batched(subject.generate, len(x), subject.batch)
    res["generate_s"] = round(time.perf_counter() - t0, 2)
    res["samples"] = fake[:64]
    if isinstance(fid_ref, str):
        res["fid"] = _skip(fid_ref)
    else:
        t0 = time.perf_counter()
        res["fid"] = fid.fid(fake.float(), fid_ref, progress=progress)
        res["fid_s"] = round(time.perf_counter() - t0, 2)
        res["fid_ref_n"] = len(test)
    res["aefd"] = aefd.aefd(fake.float(), real.float(), ae) if ae is not None else _skip(
        "no autoencoder: pass --ae RUN (train one with 'neurovae train --model ann-ae')")
    if classifier is not None:
        sc = sample_scores(fake.float(), classifier)
        res["is_classifier"], res["is_classifier_std"] = sc["is_mean"], sc["is_std"]
        res["confident"] = float(sc["confident"].double().mean())
    else:
        res["is_classifier"] = res["confident"] = _skip(
            "no classifier: pass --classifier RUN (train one with "
            "'neurovae train --model classifier')")
    return res


def fid_reference(test: data.ImageSet, dataset: str, n: int, data_dir, image_size, channels,
                  progress: bool | None = None):
    """Inception statistics of the WHOLE test split `test` whatever n (the papers' protocol:
    n samples against all test images), computed once and cached; or why FID is skipped.

    `dataset`, `n`, `data_dir`, `image_size` and `channels` are kept for callers: `test`
    is the split itself. `progress` shows a bar while computing (None: only on a terminal).
    """
    from .metrics import fid
    try:
        fid.inception_path()
    except fid.MissingMetric as exc:
        return str(exc)
    return fid.set_stats(test, None, progress=progress)


def load_classifier(path):
    """A classifier checkpoint trained with `neurovae train --model classifier`."""
    from . import checkpoint
    model, _ = checkpoint.load_model(path)
    if model.kind != "classifier":
        raise NeurovaeError(f"{path} holds a {model.kind} model, not a classifier; train one "
                            f"with 'neurovae train --model classifier --out runs/classifier'")
    return model
