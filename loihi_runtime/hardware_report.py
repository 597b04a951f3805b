"""What runs where: every process of the Lava graph that `generate` and `reconstruct` build,
with its Lava class, the process model it runs with, its placement, and host<->chip traffic.

A process is placed on a `neuro-core` when it is one of Lava's stock neuron or synapse
classes (whose Loihi 2 models Intel's compiler maps to neuro-cores) running its stock
model; `host-io` when it is a declared host I/O process at the graph's edge; `host`
otherwise, with the reason. The spike recorders `verify` adds are not part of this graph.
"""
from __future__ import annotations

import numpy as np

from neurovae.hw.net import DeployNet

from .graph import PROJECT_MODELS, LavaGraph

# Lava's public processes with Loihi 2 neuro-core models (in Intel's lava-loihi)
NEURO_CORE_CLASSES = {
    "lava.proc.lif.process": ("LIF", "LIFReset", "LIFRefractory", "TernaryLIF"),
    "lava.proc.dense.process": ("Dense", "DelayDense"),
    "lava.proc.sparse.process": ("Sparse", "DelaySparse"),
    "lava.proc.conv.process": ("Conv",),
}
HOST_IO_CLASSES = {"lava.proc.io.source.RingBuffer": "host input: streams the input drive"}
GRADED_BITS = 24          # a graded value (drive, synaptic activation) is 24-bit on Loihi
SYNAPSE_CLASSES = ("Dense", "DelayDense", "Sparse", "DelaySparse", "Conv")


def _qualname(proc) -> str:
    cls = type(proc)
    return f"{cls.__module__}.{cls.__name__}"


def _placement(proc) -> tuple[str, str | None]:
    """(placement, why it is not on a neuro-core or None)."""
    cls, qual = type(proc), _qualname(proc)
    if qual in HOST_IO_CLASSES:
        return "host-io", None
    if cls.__name__ in NEURO_CORE_CLASSES.get(cls.__module__, ()):
        model = PROJECT_MODELS.get(cls)
        if model is None:
            return "neuro-core", None
        return "host", (f"runs neurovae's Python model {model.__name__} "
                        f"(exception_proc_model_map), which Lava places on the host CPU")
    return "host", (f"{cls.__name__} is a neurovae Python process ({cls.__module__}); a "
                    f"Python process model runs on the host CPU")


def _out_bits(port) -> int:
    """Bits one step of this output port carries: a bit per neuron for spikes, 24 per
    graded value (synaptic activations, the input drive)."""
    proc = port.process
    graded = type(proc).__name__ in SYNAPSE_CLASSES or _qualname(proc) in HOST_IO_CLASSES
    return int(np.prod(port.shape)) * (GRADED_BITS if graded else 1)


def _counts(proc) -> tuple[int, int]:
    """(neurons, synapses) of a process."""
    name = type(proc).__name__
    if name in SYNAPSE_CLASSES:
        w = proc.weights.init
        nnz = w.nnz if hasattr(w, "nnz") else int(np.count_nonzero(w))
        return 0, int(nnz)
    if _qualname(proc) in HOST_IO_CLASSES:
        return 0, 0
    shape = [p.shape for p in proc.in_ports.members if p.name == "a_in"]
    return (int(np.prod(shape[0])), 0) if shape else (0, 0)


def describe(net: DeployNet, mode: str = "reconstruct") -> dict:
    """The placement report of the deployed graph of `mode` (reconstruct or generate)."""
    if mode not in ("reconstruct", "generate"):
        raise ValueError(f"mode must be reconstruct or generate, not {mode!r}")
    drive = None
    if mode == "reconstruct":
        drive = np.zeros((net.encoder[0].n_out, net.n_steps), np.int32)
    graph = LavaGraph(net, 1, net.seed, drive)
    place = {id(p): _placement(p) for p in graph.procs}
    rows, crossing = [], 0
    for proc in graph.procs:
        where, why = place[id(proc)]
        neurons, synapses = _counts(proc)
        bits_out = sum(_out_bits(port) for port in proc.out_ports.members)
        bits_in = 0
        for port in proc.in_ports.members:
            for src in port.in_connections:
                bits_in += _out_bits(src)
                src_where = place.get(id(src.process), ("host", None))[0]
                if (src_where == "neuro-core") != (where == "neuro-core"):
                    crossing += _out_bits(src)
        rows.append({"name": proc.name, "class": _qualname(proc), "placement": where,
                     "neurons": neurons, "synapses": synapses, "bits_in_per_step": bits_in,
                     "bits_out_per_step": bits_out, **({"why": why} if why else {})})
    return {"mode": mode, "steps_per_image": net.n_steps, "processes": rows,
            "host_bits_per_step": crossing, "host_bits_per_image": crossing * net.n_steps,
            "not_on_neuro_cores": [{"name": r["name"], "why": r["why"]} for r in rows
                                   if r["placement"] == "host"]}


def format_report(report: dict) -> str:
    """The report as a text table, then the traffic and what is not on a neuro-core."""
    lines = [f"Lava graph of {report['mode']} ({report['steps_per_image']} steps per image)",
             f"{'process':34} {'class':16} {'placement':10} {'neurons':>8} {'synapses':>10} "
             f"{'bits in/step':>12} {'bits out/step':>13}"]
    for r in report["processes"]:
        lines.append(f"{r['name'][:34]:34} {r['class'].rsplit('.', 1)[1][:16]:16} "
                     f"{r['placement']:10} {r['neurons']:8d} {r['synapses']:10d} "
                     f"{r['bits_in_per_step']:12d} {r['bits_out_per_step']:13d}")
    counts = {}
    for r in report["processes"]:
        counts[r["placement"]] = counts.get(r["placement"], 0) + 1
    lines.append("placement: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    lines.append(f"host<->chip traffic: {report['host_bits_per_step']} bits per step, "
                 f"{report['host_bits_per_image']} per image")
    if report["not_on_neuro_cores"]:
        lines.append("not on a neuro-core:")
        whys: dict[str, list] = {}
        for item in report["not_on_neuro_cores"]:
            whys.setdefault(item["why"], []).append(item["name"])
        for why, names in whys.items():
            lines.append(f"  {', '.join(names)}: {why}")
    return "\n".join(lines)
