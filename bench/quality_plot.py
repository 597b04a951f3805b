"""Plot quality against SynOps per image from quality-bench results.

Reads the JSON lines that `bench/quality.py` prints (one file per run, or several lines per
file), writes a PNG of reconstruction MSE against SynOps per reconstruction and of the
confident-sample fraction against SynOps per sample, and prints one JSON line: the points
plotted and, per axis pair, the runs on the Pareto front (no other run both cheaper and
better).
Usage: python bench/quality_plot.py RESULT.json [...] [--out quality-synops.png]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NEEDED = ("model", "mse", "confident_fraction", "recon_synops_per_image",
          "gen_synops_per_image")


def read_rows(paths) -> list[dict]:
    """Every quality-bench line of the files, labelled by model, steps and overrides."""
    rows = []
    for p in paths:
        for n, line in enumerate(Path(p).read_text().splitlines(), 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{p}:{n}: not a JSON line ({e.msg}); pass the output of "
                                 f"bench/quality.py")
            if r.get("bench") != "quality":
                continue
            missing = [k for k in NEEDED if r.get(k) is None]
            if missing:
                raise SystemExit(f"{p}:{n}: a quality-bench line without {', '.join(missing)}; "
                                 f"rerun bench/quality.py (it prints them)")
            r["label"] = " ".join([r["model"], f"{r.get('steps', '?')} steps",
                                   *(r.get("overrides") or [])])
            rows.append(r)
    if not rows:
        raise SystemExit("no quality-bench lines in the files given; pass the output of "
                         "bench/quality.py")
    return rows


def pareto(rows, cost: str, quality: str, higher_is_better: bool) -> list[str]:
    """Labels of the runs that no other run beats on both cost and quality."""
    sign = -1 if higher_is_better else 1
    front = []
    for r in rows:
        beaten = any(o is not r and o[cost] <= r[cost] and sign * o[quality] <= sign * r[quality]
                     and (o[cost] < r[cost] or sign * o[quality] < sign * r[quality])
                     for o in rows)
        if not beaten:
            front.append(r["label"])
    return front


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="files of bench/quality.py output")
    ap.add_argument("--out", default="quality-synops.png", help="PNG to write")
    args = ap.parse_args(argv)
    missing = [p for p in args.results if not Path(p).is_file()]
    if missing:
        print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        rows = read_rows(args.results)
    except SystemExit as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from neurovae.plots import save_quality_vs_synops
    save_quality_vs_synops(rows, args.out)
    print(json.dumps({
        "bench": "quality_plot", "out": args.out, "points": len(rows),
        "runs": [{"label": r["label"], "mse": r["mse"], "confident": r["confident_fraction"],
                  "recon_synops": r["recon_synops_per_image"],
                  "gen_synops": r["gen_synops_per_image"]} for r in rows],
        "pareto_mse": pareto(rows, "recon_synops_per_image", "mse", False),
        "pareto_confident": pareto(rows, "gen_synops_per_image", "confident_fraction", True)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
