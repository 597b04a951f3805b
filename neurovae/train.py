"""Training loop: epochs over shuffled batches, per-epoch metrics, PNG grids and checkpoint.

Every random choice is a function of (seed, epoch, batch), so a run resumed from its last
checkpoint reaches the same weights as an uninterrupted one. Training runs on one device
(`--device`, CUDA when available): the model, the optimizer state and every batch live
there, while the random choices stay CPU-side integers, the same on every device.
Data-parallel training runs under ``torchrun`` (NCCL with each rank on cuda:LOCAL_RANK,
gloo on the CPU): each rank takes its share of every batch.
"""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint, data, devices, fileio, plots, prng
from .config import Config
from .errors import CheckpointError, TrainingError
from .kernels import enable_kernels
from .hw.readout import to_signed
from .models import build_model

N_GRID = 64


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """Seed of one batch's spike sampling (the counter PRNG keyed by epoch and batch)."""
    return int(prng.draw_numpy(seed, epoch, batch, 0x7E57))


class Distributed:
    """Rank, world size and the wrapped model when launched by torchrun: NCCL when the
    tensors are on CUDA, gloo when they are on the CPU."""

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(self.backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model):
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        return idx[self.rank::self.world]

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return float(t) / self.world

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()


def batch_gradients(net, x, seed: int, images: torch.Tensor, ss_p: float, gen,
                    micro: int = 0) -> dict:
    """Forward and backward of one batch, adding into the parameters' gradients.

    With 0 < micro < batch the batch runs in slices of `micro` images whose losses are
    weighted by their share: the same gradient for a model whose loss is a mean over
    images (FSVAE), with the memory of one slice. Returns the batch's scalar loss terms;
    stops at the first slice whose loss is not finite.
    """
    n = len(x)
    step = micro if 0 < micro < n else n
    parts = [slice(i, min(i + step, n)) for i in range(0, n, step)]
    sums: dict = {}
    for j, part in enumerate(parts):
        last = j == len(parts) - 1
        with (net.no_sync() if not last and hasattr(net, "no_sync") else nullcontext()):
            res = net(x[part], seed=seed, images=images[part], ss_p=ss_p, gen=gen)
            share = (part.stop - part.start) / n
            if not torch.isfinite(res["loss"]):
                return {"loss": float(res["loss"])}
            (res["loss"] * share if len(parts) > 1 else res["loss"]).backward()
        for k, v in res.items():
            if torch.is_tensor(v) and v.dim() == 0:
                sums[k] = sums.get(k, 0.0) + float(v) * share
    return sums


def lr_at(cfg: Config, step: int, total: int) -> float:
    """Learning rate of optimizer step `step` of `total`: linear warm-up over cfg.warmup
    steps, then constant or cosine down to cfg.lr_min_ratio * lr. A function of the step
    alone, so a resumed run follows the same schedule."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.lr_schedule == "constant":
        return cfg.lr
    frac = (step - cfg.warmup) / max(1, total - cfg.warmup)
    floor = cfg.lr * cfg.lr_min_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


def _ss_p(cfg: Config, epoch: int) -> float:
    """FSVAE's scheduled-sampling probability, linear from start to end over the epochs."""
    return cfg.ss_p_start + (cfg.ss_p_end - cfg.ss_p_start) * epoch / max(1, cfg.epochs)


def _write_epoch_outputs(out: Path, model, cfg: Config, test_x: torch.Tensor, metrics: list):
    """PNG grids and loss curve of one epoch; returns the test reconstruction MSE (None for
    a model that does not reconstruct, such as the metric classifier)."""
    model.eval()
    mse = None
    if getattr(model, "reconstruct", None) is not None:
        x = test_x[:32]
        recon = model.reconstruct(x.to(devices.model_device(model)), seed=cfg.seed).cpu()
        plots.save_pairs(to_signed(x), recon, out / "reconstructions.png")
        mse = float(torch.mean((recon - (to_signed(x))) ** 2))
    if getattr(model, "sample", None) is not None:
        plots.save_grid(model.sample(N_GRID, seed=cfg.seed).cpu(), out / "samples.png")
    plots.save_loss_curve(metrics, out / "loss.png")
    model.train()
    return mse


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped training; `saved` says what the checkpoint on disk holds."""

    def __init__(self, signum: int, saved: str | None, out: Path):
        super().__init__(signum)
        self.signum, self.saved, self.out = signum, saved, out

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        if self.saved is None:
            return f"{name}: training stopped before its first checkpoint; nothing was saved"
        return (f"{name}: training stopped; the checkpoint in {self.out} holds {self.saved}; "
                f"continue with the same command and --resume")


class _StopRequests:
    """Turn the first SIGINT/SIGTERM into a request honoured between batches (the running
    batch finishes, a checkpoint is written, training stops); a second one stops at once
    (atomic writes keep the last checkpoint whole). Only in the main thread of a
    single-process run: under torchrun every rank must stop together, so the default
    handlers stay."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool, out: Path):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self.out = out
        self.saved: str | None = None      # what the checkpoint on disk holds
        self._old: dict = {}

    def __enter__(self):
        if self.enabled:
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise TrainingInterrupted(signum, self.saved, self.out)
        self.signum = signum


def _check_run_folder(out: Path):
    """Fail before any long work when the run folder cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"cannot use {out} as run folder: it is a file; pick another --out")
    base = fileio.existing_ancestor(out)
    reason = fileio.unwritable_reason(base)
    if reason:
        raise TrainingError(f"cannot write the run folder {out}: {reason}; pick another --out")


def train(cfg: Config, out_dir, resume: bool = False, progress: bool = True,
          max_batches: int | None = None, device: str | torch.device = "auto") -> dict:
    """Train `cfg` into `out_dir` on `device` (auto: CUDA when available); returns the last
    epoch's metrics.

    max_batches limits batches per epoch (tests and quick checks). The device is where a
    run trains, not what it trains: it is not part of the config, and a run may resume on
    another device. SIGINT or SIGTERM ends
    the running batch, saves a mid-epoch checkpoint and raises TrainingInterrupted; a run
    resumed from it (or from any epoch checkpoint) reaches the weights of an
    uninterrupted run.
    """
    out = Path(out_dir)
    if cfg.dataset not in data.DATASETS:
        raise TrainingError(f"unknown dataset '{cfg.dataset}'; choose one of "
                            f"{', '.join(data.DATASETS)}")
    dev = device if isinstance(device, torch.device) else devices.resolve(device)
    devices.prepare(dev)
    enable_kernels()
    dist = Distributed(dev)
    if dist.main:
        _check_run_folder(out)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(dev)    # initialized on the CPU: the same weights everywhere
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    metrics, start, partial = [], 0, None
    ckpt_path = out / checkpoint.FILENAME
    if resume:
        state = checkpoint.load(out if out.is_dir() else ckpt_path)
        old = state["config"]
        if old.model != cfg.model or old.to_dict() | {"epochs": 0} != cfg.to_dict() | {"epochs": 0}:
            raise CheckpointError(f"{ckpt_path} was trained with a different config; resume "
                                  f"with the same --model/--config/--set, or pick a new --out")
        try:
            model.load_state_dict(state["model"])
            if state.get("optimizer"):
                opt.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{ckpt_path}: its weights or optimizer state do not fit "
                                  f"the model ({str(exc).splitlines()[0][:160]})") from None
        metrics, start = list(state.get("metrics", [])), int(state["epoch"])
        partial = state.get("partial")
    elif dist.main and ckpt_path.exists():
        raise CheckpointError(f"{out} already holds a run; pass --resume to continue it or "
                              f"choose another --out")
    train_set = data.load_images(cfg.dataset, "train", cfg.data_dir, cfg.image_size, cfg.channels)
    test_set = data.load_images(cfg.dataset, "test", cfg.data_dir, cfg.image_size, cfg.channels)
    test_x = test_set.tensor(torch.arange(min(64, len(test_set))))
    n_train = min(len(train_set), cfg.train_subset or len(train_set))
    flip = data.wants_flip(cfg.dataset)
    n_batches = n_train // cfg.batch_size
    if n_batches == 0:
        raise TrainingError(f"batch size {cfg.batch_size} exceeds the {n_train} training images")
    if max_batches:
        n_batches = min(n_batches, max_batches)
    net = dist.wrap(model)
    if dist.main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"cannot create run folder {out}: {exc.strerror}") from None
        fileio.remove_stale_temps(out, OUTPUTS)   # left by a run killed mid-write
        fileio.write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=1))
        if resume:   # a kill between checkpoint and metrics.jsonl: the checkpoint decides
            _write_metrics(out, metrics)
    last = metrics[-1] if metrics else {}
    dirty = False                                      # trained past the saved checkpoint
    with _StopRequests(dist.world == 1, out) as stops:
        stops.saved = checkpoint.describe(state) if resume else None
        for epoch in range(start, cfg.epochs):
            g = torch.Generator().manual_seed(cfg.seed * 1000003 + epoch)
            perm = torch.randperm(n_train, generator=g)
            first, sums, before = 0, {}, 0.0
            if partial is not None:    # resume inside the epoch a signal stopped
                first, sums = min(partial["batch"], n_batches), dict(partial["sums"])
                before, partial = float(partial.get("seconds", 0.0)), None
            t0 = time.time()
            bar = tqdm(range(first, n_batches), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       unit="batch", initial=first, total=n_batches,
                       disable=not (progress and dist.main), dynamic_ncols=True)
            for b in bar:
                if stops.signum is not None:
                    bar.close()
                    if dirty:
                        checkpoint.save(ckpt_path, cfg=cfg, model=model, optimizer=opt,
                                        epoch=epoch, metrics=metrics, extra={"partial": {
                                            "batch": b, "sums": sums,
                                            "seconds": round(before + time.time() - t0, 2)}})
                        stops.saved = f"epoch {epoch + 1}, batch {b}"
                    raise TrainingInterrupted(stops.signum, stops.saved, out)
                idx = dist.shard(perm[b * cfg.batch_size:(b + 1) * cfg.batch_size])
                x = train_set.tensor(idx)
                bg = torch.Generator().manual_seed(batch_seed(cfg.seed, epoch, b))
                if flip:
                    x = data.random_flip(x, bg)
                x, images = x.to(dev), idx.to(dev)
                opt.zero_grad(set_to_none=True)
                res = batch_gradients(net, x, seed=batch_seed(cfg.seed, epoch, b), images=images,
                                      ss_p=_ss_p(cfg, epoch), gen=bg, micro=cfg.micro_batch)
                if not math.isfinite(res["loss"]):
                    raise TrainingError(
                        f"loss became {res['loss']} at epoch {epoch + 1}, batch {b + 1}; the "
                        f"last good checkpoint is kept in {out}. Lower --set lr=... or check "
                        f"the data")
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, epoch * n_batches + b, cfg.epochs * n_batches)
                opt.step()
                dirty = True
                for k, v in res.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.set_postfix({k: f"{v / (b + 1):.4f}" for k, v in sums.items() if k != "rate"})
            bar.close()
            if cfg.prior_components > 1:    # ESVAE's mixture prior follows its encoder
                model.fit_prior(train_set)
            last = {"epoch": epoch + 1, **{k: dist.mean(v / n_batches) for k, v in sums.items()},
                    "seconds": round(before + time.time() - t0, 2), "batches": n_batches}
            if dist.main:
                mse = _write_epoch_outputs(out, model, cfg, test_x, metrics + [last])
                if mse is not None:
                    last["test_mse"] = mse
                metrics.append(last)
                plots.save_loss_curve(metrics, out / "loss.png")
                checkpoint.save(ckpt_path, cfg=cfg, model=model, optimizer=opt, epoch=epoch + 1,
                                metrics=metrics)
                _write_metrics(out, metrics)
                stops.saved, dirty = f"epoch {epoch + 1}", False
            dist.barrier()
            if stops.signum is not None and epoch + 1 < cfg.epochs:
                raise TrainingInterrupted(stops.signum, stops.saved, out)
    if not math.isfinite(last.get("loss", 0.0)):
        raise TrainingError("training ended with a non-finite loss")
    return last


OUTPUTS = (checkpoint.FILENAME, "metrics.jsonl", "config.json", "samples.png",
           "reconstructions.png", "loss.png")


def _write_metrics(out: Path, metrics: list) -> None:
    fileio.write_text(out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))


RUN_FILES = (checkpoint.FILENAME, "samples.png", "reconstructions.png", "loss.png")  # the summary lists these


@dataclass
class TrainResult:
    """The last epoch's metrics and the run folder with the files it holds."""

    last: dict
    out: Path
    files: list


def train_from_preset(model: str, preset: str, out=None, *, epochs=None, batch_size=None,
                      seed=None, data_dir=None, overrides=(), resume=False, max_batches=None,
                      progress=True, device="auto") -> TrainResult:
    """Train `model` with preset `preset` (flags and `key=value` overrides applied) into
    `out` (default runs/<model>-<preset>) on `device`."""
    from .config import make_config
    dev = devices.resolve(device)          # a missing device fails before any data loads
    from .model_data import check_dataset, check_folder_sizes
    extra = list(overrides)
    for key, val in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed),
                     ("data_dir", data_dir)):
        if val is not None:
            extra.append(f"{key}={val}")
    cfg = make_config(preset, model, extra)
    check_dataset(cfg.dataset, cfg.data_dir)
    if cfg.dataset == "folder" and not any(o.split("=", 1)[0].strip().replace("-", "_")
                                           == "image_size" for o in overrides):
        check_folder_sizes(cfg.data_dir)
    out = Path(out or f"runs/{model}-{preset}")
    last = train(cfg, out, resume=resume, progress=progress, max_batches=max_batches,
                 device=dev)
    return TrainResult(last, out, [f for f in RUN_FILES if (out / f).exists()])
