"""Speed of FID's Inception feature extraction on the CPU: the TorchScript path as it was
against the fast one in neurovae.metrics.fid, with their feature and FID differences.

Prints ONE JSON line. Two fixed sets of real MNIST test images, test[0:n] and test[n:2n],
go through both paths; `--sweep` adds where the time goes (resize, threads, batch size,
memory format, freezing, oneDNN fusion, bf16) on `--sweep-n` images. The machine may be
shared: the load average is recorded, and figures are medians of repeats.

    python bench/fid_speed.py                 # n=64, about 2 minutes on 2 cores
    python bench/fid_speed.py -n 256 --sweep  # the 256-vs-256 FID check and the knob table
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from neurovae import data  # noqa: E402
from neurovae.metrics import fid  # noqa: E402
from neurovae.metrics.frechet import frechet_distance, stats  # noqa: E402

CURRENT_BATCH = 32


# ----------------------------------------------------- the path as it was (verbatim)


def current_prepare(images: torch.Tensor) -> torch.Tensor:
    """The former preprocessing: quantize, repeat gray to 3 channels, then resize all 3."""
    x = ((images.float() + 1.0) * 127.5).clamp_(0, 255).round_()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (fid.SIZE, fid.SIZE):
        x = fid.tf_bilinear(x)
    lo, hi = fid.TF_RANGE
    return (x / 255.0 * (hi - lo) + lo).clamp_(lo, hi)


def current_features(images: torch.Tensor, batch: int = CURRENT_BATCH):
    """The former feature loop (TorchScript as shipped, NCHW, torch's threads); also returns
    the seconds per image of each batch."""
    model = fid.load_inception()
    out, per_image = np.empty((len(images), fid.DIM)), []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            t0 = time.perf_counter()
            x = current_prepare(images[s:s + batch])
            out[s:s + len(x)] = model(x).reshape(len(x), -1).double().numpy()
            per_image.append((time.perf_counter() - t0) / len(x))
    return out, per_image


# ------------------------------------------------------------------------ helpers


def load_avg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def signed(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float() / 127.5 - 1.0


def timed(fn, n_images: int, repeats: int, warm: int = 1):
    """(median seconds per image over `repeats` calls after `warm` calls, last output)."""
    out = None
    for _ in range(warm):
        out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) / n_images)
    return statistics.median(times), out


def diff(a, b) -> float:
    a = a.to_dense() if isinstance(a, torch.Tensor) and a.is_mkldnn else a
    return float(np.abs(np.asarray(torch.as_tensor(a).double()) - b).max())


# ------------------------------------------------------------------------ sweep


def sweep(x_signed: torch.Tensor, repeats: int, cores: int) -> dict:
    """Seconds per image of each knob on the same images, and its max feature difference
    against the TorchScript forward."""
    n = len(x_signed)
    res: dict = {}
    torch.set_num_threads(1)
    res["prepare_3ch_resize"] = round(timed(lambda: current_prepare(x_signed), n, repeats)[0], 5)
    res["prepare_1ch_resize"] = round(timed(lambda: fid._prepare(x_signed), n, repeats)[0], 5)
    res["prepare_1ch_channels_last"] = round(
        timed(lambda: fid._prepare(x_signed, channels_last=True), n, repeats)[0], 5)
    nchw = current_prepare(x_signed)
    assert torch.equal(nchw, fid._prepare(x_signed))        # the 1-channel resize is exact
    cl = nchw.contiguous(memory_format=torch.channels_last)
    script = fid.load_inception()
    with torch.inference_mode():
        ref = script(nchw).double().numpy()

    def entry(name, fn, inp, threads=1, warm=1, fusion=False):
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                if fusion:
                    with fid._onednn_fusion():
                        t, out = timed(lambda: fn(inp), len(inp), repeats, warm)
                else:
                    t, out = timed(lambda: fn(inp), len(inp), repeats, warm)
            res[name] = {"s_per_image": round(t, 4), "threads": threads,
                         "max_abs_feature_diff": diff(out[:n], ref)}
        except Exception as exc:   # a knob this build lacks is reported, not fatal
            res[name] = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
        print(f"  {name}: {res[name]}", file=sys.stderr, flush=True)

    for t in sorted({1, cores}):
        entry(f"script_nchw_t{t}", script, nchw, t)
    entry("script_channels_last_t1", script, cl)
    entry("script_frozen_t1", torch.jit.freeze(torch.jit.load(str(fid.inception_path())).eval()),
          nchw, warm=2)
    entry("script_optimize_for_inference_t1", torch.jit.optimize_for_inference(
        torch.jit.freeze(torch.jit.load(str(fid.inception_path())).eval())), nchw, warm=2)
    eager = fid.eager_inception()
    entry("eager_folded_nchw_t1", eager, nchw)
    eager_cl = fid.eager_inception().to(memory_format=torch.channels_last)
    entry("eager_folded_channels_last_t1", eager_cl, cl)
    with torch.no_grad():
        traced = torch.jit.freeze(torch.jit.trace(eager_cl, cl[:1], check_trace=False))
    entry("eager_cl_traced_frozen_t1", traced, cl, warm=2)
    with torch.no_grad():
        ofi = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(eager, nchw[:1], check_trace=False)))
    entry("eager_nchw_optimize_for_inference_t1", ofi, nchw, warm=2)
    for t in sorted({1, cores}):
        entry(f"eager_cl_onednn_fusion_t{t}", fid.FastInception(), cl, t, warm=2)
    for b in (4, 8, 16, 32):
        model = fid.FastInception()
        xb = cl.repeat(-(-b // n), 1, 1, 1)[:max(b, n)].contiguous(
            memory_format=torch.channels_last)
        entry(f"onednn_fusion_batch{b}_t1",
              lambda z, m=model, b=b: torch.cat([m(z[s:s + b]) for s in range(0, len(z), b)]),
              xb, warm=2)
    torch.set_num_threads(cores)
    for w in sorted({1, cores}):
        torch.set_num_threads(1 if w == 1 else cores)
        t, out = timed(lambda: fid.inception_features(x_signed, workers=w), n, repeats, 1)
        res[f"fast_path_workers{w}"] = {"s_per_image": round(t, 4), "threads_per_worker": 1,
                                        "max_abs_feature_diff": diff(out, ref)}
        print(f"  fast_path_workers{w}: {res[f'fast_path_workers{w}']}", file=sys.stderr)

    def bf16(z):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return eager_cl(z).float()
    entry("bf16_autocast_channels_last_t1", bf16, cl)
    torch.set_num_threads(cores)
    return res


# ------------------------------------------------------------------------ main


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=64,
                    help="images per FID set: test[0:n] against test[n:2n] (default 64)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed calls of the fast path over both sets (default 3)")
    ap.add_argument("--batch", type=int, default=fid.BATCH, help="fast path batch size")
    ap.add_argument("--workers", type=int, default=None,
                    help="fast path batches run at once (default: torch's thread count)")
    ap.add_argument("--sweep", action="store_true", help="also time each knob separately")
    ap.add_argument("--sweep-n", type=int, default=16, help="images for --sweep (default 16)")
    args = ap.parse_args(argv)

    cores = torch.get_num_threads()
    load0 = load_avg()
    test = data.load_images("mnist", "test")
    xa, xb = signed(test.tensor(range(args.n))), signed(test.tensor(range(args.n, 2 * args.n)))

    cur_a, t_a = current_features(xa)
    cur_b, t_b = current_features(xb)
    fid_current = frechet_distance(*stats(cur_a), *stats(cur_b))

    first = []
    t0 = time.perf_counter()
    fast_a = fid.inception_features(xa, batch=args.batch, workers=args.workers)
    first.append((time.perf_counter() - t0) / args.n)
    warm = []
    for _ in range(args.repeats):
        for x in (xb, xa):
            t0 = time.perf_counter()
            f = fid.inception_features(x, batch=args.batch, workers=args.workers)
            warm.append((time.perf_counter() - t0) / args.n)
            if x is xb:
                fast_b = f
            else:
                assert np.array_equal(f, fast_a) or diff(f, fast_a) < 1e-4
    fid_fast = frechet_distance(*stats(fast_a), *stats(fast_b))

    cur_s = statistics.median(t_a + t_b)
    fast_s = statistics.median(warm)
    workers = args.workers or cores
    report = {
        "bench": "fid_speed", "n_per_set": args.n,
        "sets": f"mnist test[0:{args.n}] vs test[{args.n}:{2 * args.n}]",
        "cpu_cores": os.cpu_count(), "torch_threads_default": cores, "torch": torch.__version__,
        "load_avg_start": load0,
        "current": {
            "s_per_image": round(cur_s, 4),
            "s_per_image_batches": [round(t, 4) for t in t_a + t_b],
            "threads": cores, "batch": CURRENT_BATCH, "dtype": "float32",
            "memory_format": "contiguous (NCHW)",
            "resize": "TF1 bilinear (grid_sample) on 3 repeated channels",
            "model": "TorchScript as shipped (conv, batch norm, ReLU apart)",
            "fid": fid_current,
        },
        "improved": {
            "s_per_image": round(fast_s, 4),
            "s_per_image_calls": [round(t, 4) for t in warm],
            "first_call_s_per_image": round(first[0], 4),
            "workers": workers, "threads_per_worker": 1 if workers > 1 else cores,
            "batch": args.batch, "dtype": "float32", "memory_format": "channels_last",
            "resize": "TF1 bilinear (grid_sample) on 1 channel, then repeated",
            "model": "eager rebuild, batch norm folded, traced + frozen, oneDNN fusion",
            "fid": fid_fast,
        },
        "speedup": round(cur_s / fast_s, 2),
        "max_abs_feature_diff": max(diff(fast_a, cur_a), diff(fast_b, cur_b)),
        "fid_abs_diff": abs(fid_fast - fid_current),
        "projected_s_5000_samples": round(fast_s * 5000, 1),
        "projected_s_10000_reference": round(fast_s * 10000, 1),
    }
    if args.sweep:
        report["sweep_n"] = args.sweep_n
        report["sweep"] = sweep(signed(test.tensor(range(args.sweep_n))), args.repeats, cores)
    report["load_avg_end"] = load_avg()
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
