"""A long generation run on lava-sim in one process: memory stays flat, images match.

Generates --images images in one Lava run (one compiled graph, image after image),
recording the resident memory (RSS) of this process and the proportional memory (PSS, shared
pages counted once) of it and Lava's child processes along the way,
then generates the same images as --chunks runs from first_image 0, n/chunks, ... with the
same seed and compares them bit for bit. Weights are a fresh initialization of --config
(timing and memory do not depend on training), or --net FILE.

Prints one JSON line. Usage:
    python bench/long_run.py [--images 1000] [--chunks 10] [--config mnist-small]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch


def _kb(path: str, key: str) -> float:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    return _kb(f"/proc/{pid}/status", "VmRSS:")


def pss_mb(pid: int) -> float:
    """Proportional set size: pages shared by the forked Lava processes counted once."""
    return _kb(f"/proc/{pid}/smaps_rollup", "Pss:")


def children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    tracker = b"resource_tracker" in f.read()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] not in "ZX" and not tracker:
                out.append(int(p))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--chunks", type=int, default=10)
    ap.add_argument("--config", default="mnist-small")
    ap.add_argument("--model", default="fsvae")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--net", default=None, help="a .net file instead of a fresh model")
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()

    from neurovae import deploy
    from neurovae.config import make_config
    from neurovae.export import load
    from neurovae.loihi_runtime import run
    from neurovae.models import build_model
    if a.net:
        net = load(a.net)
    else:
        torch.manual_seed(0)
        net = deploy.from_model(build_model(make_config(a.config, a.model, a.overrides)).eval())
    n, me = a.images, os.getpid()
    marks = sorted({1, min(100, n), n} | {k * n // 10 for k in range(1, 11)})
    samples = {}

    def on_image(i):
        if i in marks:
            kids = children(me)
            samples[i] = {"parent_mb": round(rss_mb(me), 1),
                          "total_pss_mb": round(pss_mb(me) + sum(pss_mb(k) for k in kids), 1),
                          "children": len(kids), "t": time.monotonic()}

    t0 = time.monotonic()
    whole, _ = run(net, "lava-sim", n=n, seed=a.seed, on_image=on_image)
    seconds = time.monotonic() - t0
    left_after_whole = len(children(me))
    size = n // a.chunks
    t1 = time.monotonic()
    parts = [run(net, "lava-sim", n=size, seed=a.seed, first_image=k * size)[0]
             for k in range(a.chunks)]
    chunk_s = time.monotonic() - t1
    equal = torch.equal(whole[: size * a.chunks], torch.cat(parts))
    at100, atn = samples[min(100, n)], samples[n]
    steady = (atn["t"] - samples[1]["t"]) / max(1, n - 1)
    print(json.dumps({
        "bench": "long_run", "config": a.net or a.config, "model": net.kind, "images": n,
        "steps_per_image": net.n_steps, "seconds": round(seconds, 1),
        "images_per_s": round(1 / steady, 2) if steady else None,
        "rss_parent_mb_at_100": at100["parent_mb"], f"rss_parent_mb_at_{n}": atn["parent_mb"],
        "rss_parent_growth_mb": round(atn["parent_mb"] - at100["parent_mb"], 1),
        "pss_total_mb_at_100": at100["total_pss_mb"], f"pss_total_mb_at_{n}": atn["total_pss_mb"],
        "pss_total_growth_mb": round(atn["total_pss_mb"] - at100["total_pss_mb"], 1),
        "trace_parent_rss_total_pss": {i: [s["parent_mb"], s["total_pss_mb"]]
                                       for i, s in samples.items()},
        "lava_processes": at100["children"], "children_left": left_after_whole,
        "chunks": a.chunks, "chunk_runs_s": round(chunk_s, 1),
        "chunks_equal_one_run": bool(equal),
        "children_left_after_chunks": len(children(me))}), flush=True)


if __name__ == "__main__":
    main()
