"""Hardware cost profile of a run: synapses, spikes, SynOps, Loihi 2 placement and energy.

Counts are exact (synapses are the nonzero entries of the lowered connection matrices,
spikes come from recorded runs); cores, chips and energy are estimates under the stated
assumptions, which the report carries as text.
"""
from __future__ import annotations

import math

import numpy as np

from .hw.net import DeployNet, Layer
from .fileio import atomic_path


# Placement (Loihi 2). 8,192 neurons per core is the maximum for the smallest neuron state;
# a CUBA neuron with 24-bit u and v, a bias and its axon entries takes more of the core's
# shared memory, so 1,024 per core (Loihi 1's maximum) is the allowance used here.
NEURONS_PER_CORE = 1024
SYNAPSE_MEM_BYTES = 128 * 1024     # per core; not publicly confirmed for Loihi 2
BYTES_PER_SYNAPSE = 2              # 8-bit weight + ~8 bits of index in a sparse synapse list
CORES_PER_CHIP = 120               # of 128 neurocores per chip, Lava maps 120

# Energy (Loihi 1 pre-silicon figures, Davies et al., IEEE Micro 2018; lower-bound estimate).
PJ_SYNOP = 23.6
PJ_NEURON_INACTIVE = 52.0
PJ_NEURON_ACTIVE = 81.0
PJ_SPIKE = 1.7
PJ_MAC_FP32 = 4.6                  # Horowitz, ISSCC 2014, 45 nm fp32 multiply-add

# Loihi 2 upper bounds derived from Intel's Hala Point system (1,152 Loihi 2 chips): its
# 2,600 W maximum spread over its 380 T synaptic ops/s, or over its 240 T neuron ops/s
# (static power included, so each is an upper bound per operation).
HALA_POINT_WATTS = 2600.0
HALA_POINT_SYNOPS_PER_S = 380e12
HALA_POINT_NEURON_OPS_PER_S = 240e12
PJ_SYNOP_LOIHI2_MAX = HALA_POINT_WATTS / HALA_POINT_SYNOPS_PER_S * 1e12          # 6.84 pJ
PJ_NEURON_LOIHI2_MAX = HALA_POINT_WATTS / HALA_POINT_NEURON_OPS_PER_S * 1e12     # 10.8 pJ

_COUNTS = ("neurons", "synapses", "synapses_dense", "spikes_per_image", "synops_per_image",
           "neuron_updates_per_image", "cores")


def _mode(net: DeployNet, records: dict) -> str:
    mode = "reconstruction" if any(k.startswith("encoder/") for k in records) else "generation"
    if net.kind == "fsvae":
        loop = net.posterior if mode == "reconstruction" else net.prior
        if f"latent/{loop[0].name}" not in records:
            raise ValueError(f"records lack 'latent/{loop[0].name}' for FSVAE {mode}")
    return mode


def _plan(net: DeployNet, mode: str) -> list:
    """(stage, layer or None for the sampler, own record key, source keys) in run order."""
    rows, recon = [], mode == "reconstruction"
    if recon:
        prev = "image"
        for l in net.encoder:
            rows.append(("encoder", l, f"encoder/{l.name}", [prev]))
            prev = f"encoder/{l.name}"
    if net.kind == "fsvae":
        loop, stage = (net.posterior, "posterior") if recon else (net.prior, "prior")
        prev = [f"encoder/{net.encoder[-1].name}", "sampler/z"] if recon else ["sampler/z"]
        for l in loop:
            rows.append((stage, l, f"latent/{l.name}", prev))
            prev = [f"latent/{l.name}"]
    if net.kind == "fsvae":
        rows.append(("sampler", None, "sampler/z", [f"latent/{loop[-1].name}"]))
    elif recon:
        rows.append(("sampler", None, "sampler/z", [f"encoder/{net.encoder[-1].name}"]))
    else:
        rows.append(("sampler-host", None, "sampler/z", []))
    prev = "sampler/z"
    for l in net.decoder:
        rows.append(("decoder", l, f"decoder/{l.name}", [prev]))
        prev = f"decoder/{l.name}"
    rows.append(("readout", net.readout, None, [prev]))
    return rows


def _fans(layer: Layer):
    """Per-neuron fan-in (rows) and fan-out (columns) of the lowered connection matrix."""
    m = layer.spec.unrolled(layer)
    if isinstance(m, np.ndarray):
        nz = m != 0
        return nz.sum(1), nz.sum(0)
    return np.diff(m.indptr), m.getnnz(axis=0)


def _neuron_counts(records: dict, key: str, n_images: int) -> np.ndarray:
    """Spikes per neuron summed over images and steps."""
    if key not in records:
        raise ValueError(f"records lack '{key}'")
    s = np.asarray(records[key])
    if s.ndim != 3 or s.shape[0] != n_images:
        raise ValueError(f"records['{key}'] has shape {s.shape}; expected ({n_images}, neurons, steps)")
    return s.sum(axis=(0, 2), dtype=np.int64)


def _image_counts(net: DeployNet, x_bytes, n_images: int):
    """Graded input messages per pixel (nonzero bytes x drive steps), and whether exact."""
    steps = net.n_steps                           # the bytes arrive at every step
    if x_bytes is None:
        return np.full(int(np.prod(net.image_shape)), n_images * steps, np.int64), False
    x = np.asarray(x_bytes).reshape(n_images, -1)
    return (x != 0).sum(0, dtype=np.int64) * steps, True


def and_repeat(net: DeployNet, generate: bool) -> int:
    """AND neurons per latent on the graph (docs/clock.md): FSVAE's k candidates, ESVAE's
    2T-1 window delays; 0 where the host streams z (ESVAE generation)."""
    if net.kind == "fsvae":
        return net.k
    return 0 if generate else 2 * net.T - 1


def _sampler_row(net, stage, own, sources, records, n, S, lim) -> dict:
    """The AND neurons that pick z: one synapse each from its candidate (FSVAE) or one
    delayed synapse per window step from the encoder (ESVAE); none when the host streams z."""
    r = and_repeat(net, stage == "sampler-host")
    spikes = float(_neuron_counts(records, own, n).sum()) / n
    if not r:
        neurons = int(np.asarray(records[own]).shape[1])
        return dict(stage="sampler", name="z", kind="host", on_cores=False, neurons=neurons,
                    synapses=0, synapses_dense=0, fan_in_mean=0.0, fan_in_max=0,
                    fan_out_mean=0.0, fan_out_max=0, sources=[], spikes_per_image=spikes,
                    synops_per_image=0.0, neuron_updates_per_image=0,
                    firing_rate=spikes / (neurons * S), synapse_bytes=0, cores=0)
    neurons = net.latent * r
    src = float(_neuron_counts(records, sources[0], n).sum()) / n
    fan_out = 1 if net.kind == "fsvae" else r           # FSVAE: candidate -> its AND neuron
    syn = neurons
    sbytes = syn * lim["bytes_per_synapse"]
    cores = max(math.ceil(neurons / lim["neurons_per_core"]),
                math.ceil(sbytes / lim["synapse_mem_bytes"]))
    return dict(stage="sampler", name="and", kind="and", on_cores=True, neurons=neurons,
                synapses=syn, synapses_dense=syn * (1 if net.kind == "fsvae" else net.latent),
                fan_in_mean=1.0, fan_in_max=1, fan_out_mean=float(fan_out), fan_out_max=fan_out,
                sources=list(sources), spikes_per_image=spikes,
                synops_per_image=src * fan_out, neuron_updates_per_image=neurons * S,
                firing_rate=spikes / (neurons * S), synapse_bytes=sbytes, cores=cores)


def _z_columns(net: DeployNet, stage: str, layer: Layer) -> int:
    """How many leading input columns of `layer` are not z (its z columns follow them)."""
    if stage == "decoder" and layer is net.decoder[0]:
        return 0
    if stage in ("posterior", "prior") and layer is net.loop(stage == "prior")[0]:
        return layer.n_in - net.latent
    return -1


def _layer_row(stage, layer, own, sources, records, n, S, x_counts, lim, net=None) -> dict:
    if layer is None:
        return _sampler_row(net, stage, own, sources, records, n, S, lim)
    fan_in, fan_out = _fans(layer)
    syn, dense = layer.spec.synapse_count(layer), layer.n_in * layer.n_out
    first_z = _z_columns(net, stage, layer)
    if first_z >= 0:           # z arrives from AND neurons: the latent's weights repeated
        r = and_repeat(net, generate=not any(k.startswith("encoder/") for k in records))
        if r > 1:
            w = np.asarray(layer.weight)
            syn += (r - 1) * int((w[:, first_z:] != 0).sum())
            dense += (r - 1) * net.latent * layer.n_out
    counts = np.concatenate([x_counts if k == "image" else _neuron_counts(records, k, n)
                             for k in sources])
    if len(counts) != layer.n_in:
        raise ValueError(f"{stage}/{layer.name}: sources give {len(counts)} neurons, "
                         f"the layer reads {layer.n_in}")
    spikes = float(_neuron_counts(records, own, n).sum()) / n if own else 0.0
    neurons, sbytes = layer.n_out, syn * lim["bytes_per_synapse"]
    cores = max(math.ceil(neurons / lim["neurons_per_core"]),
                math.ceil(sbytes / lim["synapse_mem_bytes"]))
    return dict(stage=stage, name=layer.name, kind=layer.kind, on_cores=True, neurons=neurons,
                synapses=syn, synapses_dense=dense,
                fan_in_mean=float(fan_in.mean()), fan_in_max=int(fan_in.max(initial=0)),
                fan_out_mean=float(fan_out.mean()), fan_out_max=int(fan_out.max(initial=0)),
                sources=list(sources), spikes_per_image=float(spikes),
                synops_per_image=float(counts @ fan_out) / n,
                neuron_updates_per_image=neurons * S, firing_rate=float(spikes) / (neurons * S),
                synapse_bytes=sbytes, cores=cores)


def _totals(rows: list, S: int) -> dict:
    t = {k: sum(r[k] for r in rows) for k in _COUNTS}
    t["firing_rate"] = t["spikes_per_image"] / (t["neurons"] * S) if t["neurons"] else 0.0
    return t


def _energy(total: dict, rows: list, ann: dict | None) -> dict:
    """Per-image energy estimate: SynOps, neuron updates (active = spiking), spikes; and the ANN."""
    active = sum(r["spikes_per_image"] for r in rows if r["on_cores"])
    inactive = total["neuron_updates_per_image"] - active
    snn = {"synops_pj": total["synops_per_image"] * PJ_SYNOP,
           "neuron_pj": active * PJ_NEURON_ACTIVE + inactive * PJ_NEURON_INACTIVE,
           "spike_pj": total["spikes_per_image"] * PJ_SPIKE}
    snn["total_pj"] = sum(snn.values())
    loihi2 = {"synops_pj": total["synops_per_image"] * PJ_SYNOP_LOIHI2_MAX,
              "neuron_pj": total["neuron_updates_per_image"] * PJ_NEURON_LOIHI2_MAX}
    loihi2["total_pj"] = sum(loihi2.values())
    out = {"label": "estimate", "snn": snn, "loihi2_upper_bound": loihi2, "ann": None,
           "snn_over_ann": None}
    if ann is not None:
        out["ann"] = {"macs": ann["total"], "layers": ann["layers"],
                      "total_pj": ann["total"] * PJ_MAC_FP32}
        if out["ann"]["total_pj"]:
            out["snn_over_ann"] = snn["total_pj"] / out["ann"]["total_pj"]
    return out


def _assumptions(lim: dict, x_exact: bool, mode: str) -> list:
    a = [f"neurons per core: {lim['neurons_per_core']} (Loihi 2 allows up to 8,192 of the "
         "smallest neuron state; CUBA neurons with 24-bit u, v and a bias need more memory, "
         "so Loihi 1's 1,024 per core is the allowance by default)",
         f"synaptic memory per core: {lim['synapse_mem_bytes']} bytes (assumed; Loihi 2's "
         "is not publicly confirmed)",
         f"bytes per synapse: {lim['bytes_per_synapse']} (8-bit weight + ~8-bit index in a "
         "sparse list); convolutions stored unrolled, as the Lava graph's Sparse connections",
         "cores per layer = max(ceil(neurons / neurons per core), ceil(synapse bytes / "
         "synaptic memory per core)); synapses stored at the destination core; no core "
         f"shared between layers; {lim['cores_per_chip']} usable cores per chip (128 per "
         "chip, Lava maps 120)",
         "samplers: AND neurons on cores (FSVAE: latent x k, one synapse from each "
         "candidate; ESVAE: latent x (2T-1), one delayed synapse from the encoder each), "
         "with the latent's weights repeated into the next layers; the host's selector bits "
         "enter their a_in and are not counted as SynOps. ESVAE generation: the host computes "
         "the prior and streams z (no cores)",
         "SynOps = sum over presynaptic spikes of the source neuron's fan-out into the layer",
         "energy: Loihi 1 pre-silicon figures (Davies et al., IEEE Micro 2018): "
         f"{PJ_SYNOP} pJ/SynOp, {PJ_NEURON_INACTIVE}/{PJ_NEURON_ACTIVE} pJ per inactive/"
         f"active neuron update (active = the neuron spikes that step), {PJ_SPIKE} pJ per "
         "spike within a tile (spikes of core populations and of z); a lower-bound "
         "estimate, no Loihi 2 per-operation figures are public",
         "Loihi 2 upper bound: derived from Hala Point's published system figures "
         f"({HALA_POINT_WATTS:.0f} W maximum, {HALA_POINT_SYNOPS_PER_S / 1e12:.0f} T synaptic "
         f"ops/s, {HALA_POINT_NEURON_OPS_PER_S / 1e12:.0f} T neuron ops/s): <= "
         f"{PJ_SYNOP_LOIHI2_MAX:.2f} pJ per SynOp and <= {PJ_NEURON_LOIHI2_MAX:.1f} pJ per "
         "neuron update, static power included",
         f"ANN VAE baseline: MACs x {PJ_MAC_FP32} pJ (Horowitz, ISSCC 2014, 45 nm fp32); "
         "MACs of Conv/ConvT/Linear only, padding taps included"]
    if mode == "reconstruction":
        a.append("input layer: the image enters as graded 8-bit messages, each nonzero pixel "
                 "once per step (S steps), SynOps = those x the pixel's fan-out in the first "
                 "convolution (a Sparse connection on the chip)"
                 + ("" if x_exact else "; images not given, so every pixel counts as "
                    "nonzero: an upper bound"))
    return a


def profile(net: DeployNet, records: dict, n_images: int, x_bytes=None, *,
            neurons_per_core: int = NEURONS_PER_CORE,
            synapse_mem_bytes: int = SYNAPSE_MEM_BYTES,
            bytes_per_synapse: int = BYTES_PER_SYNAPSE, cores_per_chip: int = CORES_PER_CHIP,
            ann: bool = True) -> dict:
    """Cost profile of one recorded run of `n_images` images (records as the emulator returns).

    The mode comes from the records (encoder spikes present = reconstruction). `x_bytes`,
    the reconstructed images, makes the input layer's SynOps exact.
    """
    mode, S = _mode(net, records), net.n_steps
    lim = dict(neurons_per_core=neurons_per_core, synapse_mem_bytes=synapse_mem_bytes,
               bytes_per_synapse=bytes_per_synapse, cores_per_chip=cores_per_chip)
    x_counts, x_exact = _image_counts(net, x_bytes, n_images)
    rows = [_layer_row(*p, records, n_images, S, x_counts, lim, net) for p in _plan(net, mode)]
    stages = {}
    for r in rows:
        stages.setdefault(r["stage"], []).append(r)
    stages = {s: {"layers": ls, "totals": _totals(ls, S)} for s, ls in stages.items()}
    total = _totals(rows, S)
    macs = None
    if ann and net.config:
        from .ann_cost import ann_macs
        macs = ann_macs(net.config, mode)
    return {"model": net.kind, "mode": mode, "n_images": n_images, "steps_per_image": S,
            "input_exact": x_exact or mode == "generation",
            "stages": stages, "totals": total,
            "placement": {"cores": total["cores"], "cores_per_chip": cores_per_chip,
                          "chips": max(1, math.ceil(total["cores"] / cores_per_chip)),
                          "limits": lim},
            "energy": _energy(total, rows, macs),
            "assumptions": _assumptions(lim, x_exact, mode)}


def format_table(report: dict) -> str:
    """Fixed-width table per stage and layer, totals, placement, energy and assumptions."""
    head = (f"{'stage':9} {'layer':8} {'kind':7} {'neurons':>8} {'synapses':>10} "
            f"{'dense':>11} {'fan-in':>11} {'fan-out':>11} {'spikes/img':>11} "
            f"{'SynOps/img':>11} {'updates/img':>11} {'rate':>7} {'cores':>5}")
    out = [f"{report['model'].upper()} {report['mode']}: {report['n_images']} images, "
           f"{report['steps_per_image']} steps per image; fan-in, fan-out: mean/max per neuron; "
           "rate: spikes / (neurons x steps)", head, "-" * len(head)]

    def line(stage, name, kind, r, fans=True):
        fi = f"{r['fan_in_mean']:.1f}/{r['fan_in_max']}" if fans else ""
        fo = f"{r['fan_out_mean']:.1f}/{r['fan_out_max']}" if fans else ""
        return (f"{stage:9} {name:8} {kind:7} {r['neurons']:8d} {r['synapses']:10d} "
                f"{r['synapses_dense']:11d} {fi:>11} {fo:>11} {r['spikes_per_image']:11.1f} "
                f"{r['synops_per_image']:11.1f} {r['neuron_updates_per_image']:11d} "
                f"{r['firing_rate']:7.4f} {r['cores']:5d}")

    for stage, s in report["stages"].items():
        for r in s["layers"]:
            out.append(line(stage, r["name"], r["kind"], r))
        out.append(line(stage, "total", "", s["totals"], fans=False))
    out += ["-" * len(head), line("all", "total", "", report["totals"], fans=False), ""]
    p = report["placement"]
    out.append(f"Loihi 2 placement (estimate): {p['cores']} cores, {p['chips']} chip(s) at "
               f"{p['cores_per_chip']} usable cores per chip")
    e = report["energy"]
    out.append(f"energy per image (estimate, Loihi 1 figures, Davies et al. 2018): "
               f"{e['snn']['total_pj'] / 1e6:.4g} uJ (SynOps {e['snn']['synops_pj'] / 1e6:.4g}, "
               f"neuron updates {e['snn']['neuron_pj'] / 1e6:.4g}, "
               f"spikes {e['snn']['spike_pj'] / 1e6:.4g})")
    b = e["loihi2_upper_bound"]
    out.append(f"energy per image (Loihi 2 upper bound derived from Hala Point): <= "
               f"{b['total_pj'] / 1e6:.4g} uJ (SynOps {b['synops_pj'] / 1e6:.4g}, neuron "
               f"updates {b['neuron_pj'] / 1e6:.4g})")
    if e["ann"]:
        out.append(f"ANN VAE baseline (estimate, Horowitz 2014, 45 nm fp32): {e['ann']['macs']} "
                   f"MACs = {e['ann']['total_pj'] / 1e6:.4g} uJ per image; spiking/ANN = "
                   f"{e['snn_over_ann']:.3g}")
    out += ["", "assumptions:"] + [f"  - {a}" for a in report["assumptions"]]
    return "\n".join(out)


def save_chart(report: dict, path) -> None:
    """PNG bar chart of spikes and SynOps per image for every layer (log scale), written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for s in report["stages"].values() for r in s["layers"]]
    labels = [f"{r['stage']}/{r['name']}" for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(2, 1, figsize=(max(6, 0.6 * len(rows) + 2), 6), sharex=True)
    for ax, key, title in ((axes[0], "spikes_per_image", "spikes per image"),
                           (axes[1], "synops_per_image", "SynOps per image")):
        ax.bar(x, [max(r[key], 0) for r in rows], color="tab:blue" if ax is axes[0] else "tab:orange")
        if any(r[key] > 0 for r in rows):
            ax.set_yscale("log", nonpositive="clip")
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_title(f"{report['model'].upper()} {report['mode']}, "
                      f"{report['steps_per_image']} steps per image")
    axes[1].set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
