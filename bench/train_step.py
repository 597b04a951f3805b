"""Seconds per training step and peak memory, per model, at the MNIST paper config.

Prints one JSON line per (model, batch size): median of >= 5 timed steps after warm-up,
and the peak resident memory of a fresh process running that case (on CUDA also the peak
GPU memory, torch.cuda.max_memory_allocated). A step is what `neurovae train` does per
batch (forward, backward, AdamW). On the CPU it uses the preset's micro_batch: FSVAE's
batch runs in slices of 50 images (the same gradient); on CUDA the batch runs at once.
`--micro-batch N` sets another slice size, 0 the whole batch at once. `--kernels torch`
runs the CPU on the pure-torch neuron kernels that CUDA tensors use.
Usage: python bench/train_step.py [--device auto|cpu|cuda|cuda:N] [--models fsvae,esvae]
           [--batches 32,250] [--steps 5] [--micro-batch N] [--kernels numba|torch]
           [--dynamics neurovae|lava-dl|both]
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
             micro: int, device: str = "cpu", kernels: str = "numba") -> dict:
    import contextlib

    import torch
    from neurovae import devices, torch_cuba
    from neurovae.config import make_config
    from neurovae.kernels import enable_kernels
    from neurovae.models import build_model
    from neurovae.train import batch_gradients
    if dynamics != "lava-dl":
        enable_kernels()
    torch.set_num_threads(threads)
    dev = devices.resolve(device)
    devices.prepare(dev)
    cuda = dev.type == "cuda"
    cfg = make_config("mnist", model, [f"batch_size={batch}"])
    if model == "fsvae":
        cfg.micro_batch = micro if micro is not None else (0 if cuda else cfg.micro_batch)
    micro = cfg.micro_batch if 0 < cfg.micro_batch < batch else 0
    torch.manual_seed(0)
    net = build_model(cfg).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x = torch.randint(0, 256, (batch, cfg.channels, cfg.image_size, cfg.image_size),
                      dtype=torch.uint8).to(dev)
    images = torch.arange(batch, device=dev)
    scope = torch_cuba.everywhere() if kernels == "torch" else contextlib.nullcontext()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times = []
    with scope:
        for i in range(steps + 1):
            sync()
            t0 = time.perf_counter()
            opt.zero_grad()
            batch_gradients(net, x, seed=i, images=images, ss_p=0.2,
                            gen=torch.Generator().manual_seed(i), micro=cfg.micro_batch)
            opt.step()
            sync()
            if i:   # the first step is warm-up
                times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    res = {"bench": "train_step", "model": model, "config": "mnist", "batch": batch,
           "micro_batch": micro, "device": str(dev),
           "kernels": "torch" if cuda or kernels == "torch" else "numba",
           "threads": threads, "dynamics": dynamics, "steps": steps,
           "s_per_step": round(statistics.median(times), 3), "peak_rss_gib": round(peak, 2),
           "hardware_steps": net.n_steps if hasattr(net, "n_steps") else None}
    if cuda:
        res["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2 ** 30, 2)
        res["gpu"] = torch.cuda.get_device_name(dev)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, "
                                                     "cuda:N")
    ap.add_argument("--models", default="fsvae,esvae")
    ap.add_argument("--batches", default=None, help="default: 32,250 on the CPU, 250 on CUDA")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--micro-batch", type=int, default=None,
                    help="FSVAE: slices of this many images per batch (0: the whole batch; "
                         "default: the preset's)")
    ap.add_argument("--dynamics", default="neurovae",
                    help="neurovae (the default CPU loop), lava-dl (lava-dl's own), or both")
    ap.add_argument("--kernels", choices=("numba", "torch"), default="numba",
                    help="CPU neuron kernels: numba (training's), or torch (the GPU path)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        model, batch, dynamics = a.case.split(":")
        print(json.dumps(one_case(model, int(batch), a.steps, a.threads, dynamics,
                                  a.micro_batch, a.device, a.kernels)), flush=True)
        return
    from neurovae.devices import DeviceError, resolve
    try:
        device = str(resolve(a.device))     # refused here, before any case starts
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    batches = a.batches or ("250" if device.startswith("cuda") else "32,250")
    kinds = ["neurovae", "lava-dl"] if a.dynamics == "both" else [a.dynamics]
    for model in a.models.split(","):
        for batch in batches.split(","):
            for dynamics in kinds:
                # a fresh process per case, so peak memory belongs to that case alone
                subprocess.run([sys.executable, __file__, "--case", f"{model}:{batch}:{dynamics}",
                                "--steps", str(a.steps), "--threads", str(a.threads),
                                "--device", device, "--kernels", a.kernels]
                               + ([] if a.micro_batch is None
                                  else ["--micro-batch", str(a.micro_batch)]),
                               check=True)


if __name__ == "__main__":
    main()
