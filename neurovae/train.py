"""Training loop: epochs over shuffled batches, per-epoch metrics, PNG grids and checkpoint.

Every random choice is a function of (seed, epoch, batch), so a run resumed from its last
checkpoint reaches the same weights as an uninterrupted one. Data-parallel training runs
under ``torchrun`` (gloo on CPU, NCCL on GPU): each rank takes its share of every batch.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint, data, plots, prng
from .config import Config
from .errors import CheckpointError, TrainingError
from .models import build_model

N_GRID = 64


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """Seed of one batch's spike sampling (the counter PRNG keyed by epoch and batch)."""
    return int(prng.draw_numpy(seed, epoch, batch, 0x7E57))


class Distributed:
    """Rank, world size and the wrapped model when launched by torchrun."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, model):
        if self.world > 1:
            return torch.nn.parallel.DistributedDataParallel(model)
        return model

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        return idx[self.rank::self.world]

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t) / self.world

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()


def _ss_p(cfg: Config, epoch: int) -> float:
    """FSVAE's scheduled-sampling probability, linear from start to end over the epochs."""
    return cfg.ss_p_start + (cfg.ss_p_end - cfg.ss_p_start) * epoch / max(1, cfg.epochs)


def _write_epoch_outputs(out: Path, model, cfg: Config, test_x: torch.Tensor, metrics: list):
    model.eval()
    recon = model.reconstruct(test_x[:32], seed=cfg.seed)
    plots.save_pairs(test_x[:32].float() / 127.5 - 1, recon, out / "reconstructions.png")
    if model.sample is not None:
        plots.save_grid(model.sample(N_GRID, seed=cfg.seed), out / "samples.png")
    plots.save_loss_curve(metrics, out / "loss.png")
    model.train()
    return float(torch.mean((recon - (test_x[:32].float() / 127.5 - 1)) ** 2))


def train(cfg: Config, out_dir, resume: bool = False, progress: bool = True,
          max_batches: int | None = None) -> dict:
    """Train `cfg` into `out_dir`; returns the last epoch's metrics.

    max_batches limits batches per epoch (tests and quick checks).
    """
    out = Path(out_dir)
    dist = Distributed()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    metrics, start = [], 0
    ckpt_path = out / checkpoint.FILENAME
    if resume:
        state = checkpoint.load(ckpt_path)
        saved = state["config"]
        if saved.model != cfg.model or saved.to_dict() | {"epochs": 0} != cfg.to_dict() | {"epochs": 0}:
            raise CheckpointError(f"{ckpt_path} was trained with a different config; resume "
                                  f"with the same --model/--config/--set, or pick a new --out")
        model.load_state_dict(state["model"])
        if state.get("optimizer"):
            opt.load_state_dict(state["optimizer"])
        metrics, start = list(state.get("metrics", [])), int(state["epoch"])
    elif dist.main and ckpt_path.exists():
        raise CheckpointError(f"{out} already holds a run; pass --resume to continue it or "
                              f"choose another --out")
    train_set = data.load_images(cfg.dataset, "train", cfg.data_dir, cfg.image_size, cfg.channels)
    test_set = data.load_images(cfg.dataset, "test", cfg.data_dir, cfg.image_size, cfg.channels)
    test_x = test_set.tensor(torch.arange(min(64, len(test_set))))
    n_train = min(len(train_set), cfg.train_subset or len(train_set))
    flip = data.wants_flip(cfg.dataset)
    net = dist.wrap(model)
    if dist.main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"cannot create run folder {out}: {exc.strerror}") from None
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    n_batches = n_train // cfg.batch_size
    if n_batches == 0:
        raise TrainingError(f"batch size {cfg.batch_size} exceeds the {n_train} training images")
    if max_batches:
        n_batches = min(n_batches, max_batches)
    last = metrics[-1] if metrics else {}
    for epoch in range(start, cfg.epochs):
        g = torch.Generator().manual_seed(cfg.seed * 1000003 + epoch)
        perm = torch.randperm(n_train, generator=g)
        sums, t0 = {}, time.time()
        bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=not (progress and dist.main), dynamic_ncols=True)
        for b in bar:
            idx = dist.shard(perm[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            x = train_set.tensor(idx)
            bg = torch.Generator().manual_seed(batch_seed(cfg.seed, epoch, b))
            if flip:
                x = data.random_flip(x, bg)
            res = net(x, seed=batch_seed(cfg.seed, epoch, b), images=idx,
                      ss_p=_ss_p(cfg, epoch), gen=bg)
            loss = res["loss"]
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss became {float(loss)} at epoch {epoch + 1}, batch {b + 1}; the last "
                    f"good checkpoint is kept in {out}. Lower --set lr=... or check the data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            for k, v in res.items():
                if torch.is_tensor(v) and v.dim() == 0:
                    sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix({k: f"{v / (b + 1):.4f}" for k, v in sums.items() if k != "rate"})
        last = {"epoch": epoch + 1, **{k: dist.mean(v / n_batches) for k, v in sums.items()},
                "seconds": round(time.time() - t0, 2), "batches": n_batches}
        if dist.main:
            last["test_mse"] = _write_epoch_outputs(out, model, cfg, test_x, metrics + [last])
            metrics.append(last)
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(last) + "\n")
            plots.save_loss_curve(metrics, out / "loss.png")
            checkpoint.save(ckpt_path, cfg=cfg, model=model, optimizer=opt, epoch=epoch + 1,
                            metrics=metrics)
        dist.barrier()
    if not math.isfinite(last.get("loss", 0.0)):
        raise TrainingError("training ended with a non-finite loss")
    return last
