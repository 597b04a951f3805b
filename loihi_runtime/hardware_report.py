"""What runs where: every process of the Lava graph that `generate` and `reconstruct` build,
with its Lava class, its placement, and the host<->chip traffic.

A process is placed on a `neuro-core` when it is one of Lava's stock neuron or synapse
classes (whose Loihi 2 models Intel's compiler maps to neuro-cores); the graph selects no
other model for them (`graph.run_config` overrides no model). It is `host-io`
when it is one of the graph's declared host sources at its edge (image bytes, selector
bits, ESVAE's prior z); `host` otherwise, with the reason (none today). The host also reads
the readout voltages once per image (`host_reads`). The spike recorders `verify` adds are
not part of this graph.
"""
from __future__ import annotations

import numpy as np

from neurovae.hw.net import DeployNet

from .graph import READ_BITS, LavaGraph

# Lava's public processes with Loihi 2 neuro-core models (in Intel's lava-loihi)
NEURO_CORE_CLASSES = {
    "lava.proc.lif.process": ("LIF", "LIFReset", "LIFRefractory", "TernaryLIF"),
    "lava.proc.dense.process": ("Dense", "DelayDense"),
    "lava.proc.sparse.process": ("Sparse", "DelaySparse"),
    "lava.proc.conv.process": ("Conv",),
}
# Lava's host processes the graph may use at its edges
HOST_IO_CLASSES = ("lava.proc.io.source.RingBuffer", "lava.proc.monitor.process.Monitor")
GRADED_BITS = 24          # a synaptic activation is a 24-bit graded value on Loihi
SYNAPSE_CLASSES = ("Dense", "DelayDense", "Sparse", "DelaySparse", "Conv")


def _qualname(proc) -> str:
    cls = type(proc)
    return f"{cls.__module__}.{cls.__name__}"


def _placement(proc, host_io: dict) -> tuple[str, str | None]:
    """(placement, why it is not on a neuro-core or None)."""
    cls, qual = type(proc), _qualname(proc)
    if qual in HOST_IO_CLASSES:
        if id(proc) in host_io:
            return "host-io", f"host input at the graph's edge: streams {host_io[id(proc)].what}"
        return "host-io", "host I/O at the graph's edge: reads state back to the host"
    if cls.__name__ in NEURO_CORE_CLASSES.get(cls.__module__, ()):
        return "neuro-core", None
    return "host", (f"{cls.__name__} ({cls.__module__}) is not one of Lava's neuro-core "
                    f"processes; its Python model runs on the host CPU")


def _out_bits(port, host_io: dict) -> int:
    """Bits one step of this output port carries: a bit per neuron for spikes, 24 per
    synaptic activation, a host source's declared bits per value."""
    proc = port.process
    size = int(np.prod(port.shape))
    if id(proc) in host_io:
        return size * host_io[id(proc)].bits
    return size * (GRADED_BITS if type(proc).__name__ in SYNAPSE_CLASSES else 1)


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
    x = None
    if mode == "reconstruct":
        x = np.zeros((1, int(np.prod(net.image_shape))), np.uint8)
    graph = LavaGraph(net, 1, net.seed, x)
    host_io = {id(h.proc): h for h in graph.host_io}
    place = {id(p): _placement(p, host_io) for p in graph.procs}
    rows, crossing = [], 0
    for proc in graph.procs:
        where, why = place[id(proc)]
        neurons, synapses = _counts(proc)
        bits_out = sum(_out_bits(port, host_io) for port in proc.out_ports.members)
        bits_in = 0
        for port in proc.in_ports.members:
            for src in port.in_connections:
                bits = _out_bits(src, host_io)
                bits_in += bits
                src_where = place.get(id(src.process), ("host", None))[0]
                if (src_where == "neuro-core") != (where == "neuro-core"):
                    crossing += bits
        rows.append({"name": proc.name, "class": _qualname(proc), "placement": where,
                     "neurons": neurons, "synapses": synapses, "bits_in_per_step": bits_in,
                     "bits_out_per_step": bits_out, **({"why": why} if why else {})})
    pixels = net.readout.n_out
    reads = [{"name": f"{graph.readout.name}.v", "values": pixels,
              "bits_per_image": READ_BITS * pixels,
              "why": "the host reads the readout integrators' 24-bit voltage at the last "
                     "step of each image"}]
    per_image = crossing * net.n_steps + sum(r["bits_per_image"] for r in reads)
    return {"mode": mode, "steps_per_image": net.n_steps, "processes": rows,
            "host_bits_per_step": crossing, "host_reads": reads,
            "host_bits_per_image": per_image,
            "not_on_neuro_cores": [{"name": r["name"], "placement": r["placement"],
                                    "why": r["why"]} for r in rows
                                   if r["placement"] != "neuro-core"]}


def format_report(report: dict) -> str:
    """The report as a text table, then the traffic and what is not on a neuro-core."""
    lines = [f"Lava graph of {report['mode']} ({report['steps_per_image']} steps per image)",
             f"{'process':34} {'class':10} {'placement':10} {'neurons':>8} {'synapses':>10} "
             f"{'bits in/step':>12} {'bits out/step':>13}"]
    for r in report["processes"]:
        lines.append(f"{r['name'][:34]:34} {r['class'].rsplit('.', 1)[1][:10]:10} "
                     f"{r['placement']:10} {r['neurons']:8d} {r['synapses']:10d} "
                     f"{r['bits_in_per_step']:12d} {r['bits_out_per_step']:13d}")
    counts: dict[str, int] = {}
    for r in report["processes"]:
        counts[r["placement"]] = counts.get(r["placement"], 0) + 1
    lines.append("placement: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    reads = report.get("host_reads", [])
    read_bits = sum(r["bits_per_image"] for r in reads)
    lines.append(f"host<->chip traffic: {report['host_bits_per_step']} bits per step in, "
                 f"{read_bits} bits per image read back; {report['host_bits_per_image']} "
                 f"bits per image in all")
    for r in reads:
        lines.append(f"  read {r['name']}: {r['values']} values x 24 bits once per image")
    if report["not_on_neuro_cores"]:
        lines.append("not on a neuro-core:")
        whys: dict[tuple, list] = {}
        for item in report["not_on_neuro_cores"]:
            whys.setdefault((item["placement"], item["why"]), []).append(item["name"])
        for (where, why), names in whys.items():
            lines.append(f"  {', '.join(names)} ({where}): {why}")
    return "\n".join(lines)
