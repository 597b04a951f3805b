"""Lava simulator vs torch emulator speed on generation, per config.

Prints one JSON line per config: graph build and compile seconds, steady-state steps/s and
images/s on lava-sim, and images/s of the torch deploy mode on the same model.
Weights are a fresh initialization (timing does not depend on training).
Usage: python bench/lava_generate.py [--configs mnist-small,mnist] [--images 4]
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def bench(preset: str, n: int, model_kind: str) -> dict:
    from lava.magma.core.run_conditions import RunSteps

    from neurovae import deploy
    from neurovae.config import make_config
    from neurovae.sim.reference import ReferenceSimulator
    from neurovae.loihi_runtime.graph import LavaGraph, run_config
    from neurovae.models import build_model

    torch.manual_seed(0)
    net = deploy.from_model(build_model(make_config(preset, model_kind)).eval())
    S = net.n_steps
    t0 = time.perf_counter()
    graph = LavaGraph(net, n, seed=0, drive=None)
    built = time.perf_counter() - t0
    cfg = run_config()
    t0 = time.perf_counter()
    graph.readout.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
    compiled = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        graph.readout.run(condition=RunSteps(num_steps=n * S - 1), run_cfg=cfg)
        steady = time.perf_counter() - t0
    finally:
        graph.readout.stop()
    emu = ReferenceSimulator(net)
    emu.run(None, 2, 0)
    t0 = time.perf_counter()
    emu.run(None, max(n, 16), 0)
    torch_s = time.perf_counter() - t0
    return {"bench": "lava_generate", "config": preset, "model": model_kind, "images": n,
            "steps_per_image": S, "build_s": round(built, 2), "compile_s": round(compiled, 2),
            "lava_steps_per_s": round((n * S - 1) / steady, 1),
            "lava_images_per_s": round((n * S - 1) / S / steady, 3),
            "reference_images_per_s": round(max(n, 16) / torch_s, 2),
            "processes": len(graph.procs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configs", default="mnist-small,mnist")
    ap.add_argument("--model", default="fsvae")
    ap.add_argument("--images", type=int, default=4)
    a = ap.parse_args()
    for preset in a.configs.split(","):
        print(json.dumps(bench(preset, a.images, a.model)), flush=True)


if __name__ == "__main__":
    main()
