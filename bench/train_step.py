"""Seconds per training step and peak memory, per model, at the MNIST paper config on CPU.

Prints one JSON line per (model, batch size): median of >= 5 timed steps after warm-up,
and the peak resident memory of a fresh process running that case. A step is what
`neurovae train` does per batch (forward, backward, AdamW), with the preset's micro_batch:
FSVAE's batch runs in slices of 50 images (the same gradient); `--micro-batch N` sets
another slice size, 0 the whole batch at once.
Usage: python bench/train_step.py [--models fsvae,esvae] [--batches 32,250] [--steps 5]
                                 [--micro-batch N] [--dynamics neurovae|lava-dl|both]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def one_case(model: str, batch: int, steps: int, threads: int, dynamics: str,
             micro: int) -> dict:
    import torch
    from neurovae.config import make_config
    from neurovae.kernels import enable_cpu_kernels
    from neurovae.models import build_model
    from neurovae.train import batch_gradients
    if dynamics != "lava-dl":
        enable_cpu_kernels()
    torch.set_num_threads(threads)
    cfg = make_config("mnist", model, [f"batch_size={batch}"])
    if micro is not None and model == "fsvae":
        cfg.micro_batch = micro
    micro = cfg.micro_batch if 0 < cfg.micro_batch < batch else 0
    torch.manual_seed(0)
    net = build_model(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x = torch.randint(0, 256, (batch, cfg.channels, cfg.image_size, cfg.image_size),
                      dtype=torch.uint8)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        batch_gradients(net, x, seed=i, images=torch.arange(batch), ss_p=0.2,
                        gen=torch.Generator().manual_seed(i), micro=cfg.micro_batch)
        opt.step()
        if i:   # the first step is warm-up
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return {"bench": "train_step", "model": model, "config": "mnist", "batch": batch,
            "micro_batch": micro, "threads": threads, "dynamics": dynamics, "steps": steps, "s_per_step": round(statistics.median(times), 3),
            "peak_rss_gib": round(peak, 2), "hardware_steps": net.n_steps if hasattr(net, "n_steps") else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="fsvae,esvae")
    ap.add_argument("--batches", default="32,250")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--micro-batch", type=int, default=None,
                    help="FSVAE: slices of this many images per batch (0: the whole batch; "
                         "default: the preset's)")
    ap.add_argument("--dynamics", default="neurovae",
                    help="neurovae (the default CPU loop), lava-dl (lava-dl's own), or both")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        model, batch, dynamics = a.case.split(":")
        print(json.dumps(one_case(model, int(batch), a.steps, a.threads, dynamics,
                                  a.micro_batch)), flush=True)
        return
    kinds = ["neurovae", "lava-dl"] if a.dynamics == "both" else [a.dynamics]
    for model in a.models.split(","):
        for batch in a.batches.split(","):
            for dynamics in kinds:
                # a fresh process per case, so peak memory belongs to that case alone
                subprocess.run([sys.executable, __file__, "--case", f"{model}:{batch}:{dynamics}",
                                "--steps", str(a.steps), "--threads", str(a.threads)]
                               + ([] if a.micro_batch is None
                                  else ["--micro-batch", str(a.micro_batch)]),
                               check=True)


if __name__ == "__main__":
    main()
