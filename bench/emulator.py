"""Emulator vs Lava's CPU simulator on the same model, in one run.

Prints one JSON line per model kind: lava-sim steady-state images/s (compile and the first
image excluded, which favours Lava), emulator steady-state images/s on a large batch (after
a warm-up of one chunk, which compiles its kernels and maps its buffers: the median of
--repeats runs), their ratio, and whether the emulator's images on the Lava images are
bit-identical (they must be).
Usage: python bench/emulator.py [--net model.net | --config mnist-small] [--lava-images 4]
                                [--images 1024] [--repeats 3] [--mode generate|reconstruct]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def load_net(args, kind):
    from neurovae import deploy
    from neurovae.config import make_config
    from neurovae.models import build_model
    if args.net:
        from neurovae.export import load
        return load(args.net)
    torch.manual_seed(0)
    return deploy.from_model(build_model(make_config(args.config, kind)).eval())


def lava_rate(net, x_bytes, n, seed):
    """Steady-state images/s of the Lava graph: from the first image's end to the last's
    (compile and the first image excluded, which favours Lava), and its images."""
    from neurovae.loihi_runtime.lava_backend import run_lava
    done = []
    images, _ = run_lava(net, x_bytes, n, seed, on_image=lambda i: done.append(time.perf_counter()))
    return (n - 1) / (done[-1] - done[0]), images


def bench(args, kind):
    from neurovae import data
    from neurovae.sim.emulator import Emulator
    net = load_net(args, kind)
    recon = args.mode == "reconstruct"
    x = None
    if recon:
        ts = data.load_images("mnist", "test", None, net.image_shape[-1], net.image_shape[0])
        x = ts.tensor(torch.arange(args.images))
    lava_ips, lava_img = lava_rate(net, None if x is None else x[:args.lava_images],
                                   args.lava_images, args.seed)
    lava_img = lava_img.to(torch.float64)
    emu = Emulator(net)
    w = min(emu.chunk, args.images)
    emu.run(None if x is None else x[:w], w, args.seed)                 # warm-up
    runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        img, _ = emu.run(x, args.images, args.seed)
        runs.append(args.images / (time.perf_counter() - t0))
    emu_ips = statistics.median(runs)
    same = torch.equal(img[:args.lava_images], lava_img)
    return {"bench": "emulator", "model": net.kind, "mode": args.mode,
            "source": args.net or args.config, "steps_per_image": net.n_steps,
            "threads": torch.get_num_threads(),
            "lava_images": args.lava_images, "lava_images_per_s": round(lava_ips, 3),
            "emulator_images": args.images, "emulator_chunk": emu.chunk,
            "emulator_images_per_s": round(emu_ips, 1),
            "emulator_runs_images_per_s": [round(r, 1) for r in runs],
            "speedup": round(emu_ips / lava_ips, 1), "bit_identical": same}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", help="a .net file (default: a fresh model of --config)")
    ap.add_argument("--config", default="mnist-small")
    ap.add_argument("--models", default="fsvae,esvae", help="kinds, without --net")
    ap.add_argument("--mode", choices=("generate", "reconstruct"), default="generate")
    ap.add_argument("--lava-images", type=int, default=8, help="at least 2")
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3, help="timed emulator runs (median)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for kind in ([None] if args.net else args.models.split(",")):
        print(json.dumps(bench(args, kind)), flush=True)


if __name__ == "__main__":
    main()
