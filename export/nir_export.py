"""Export the parts of a DeployNet that NIR (Neuromorphic Intermediate Representation) expresses.

`to_nir` builds one NIR graph per expressible stage; `write_nir` writes them into ONE
NIR file (``nir.write``): a top-level graph whose nodes are the stage subgraphs, wired
together where NIR can wire them, and returns the parts NIR cannot express, each with
its reason. Nothing is dropped silently: every layer or operation of the DeployNet is
either a node of the file or named in that list.

What the graph means
--------------------
The graph describes connectivity and neuron dynamics, NOT Loihi's step timing. On Loihi
(and in `neurovae.sim`) each population runs in its own phase window (docs/clock.md):
inside a window a connection delivers within the step, every population starts each
image from zero, and the FSVAE loop feeds z back four steps later; NIR's per-node
semantics have no phases or loop latency (NIR's own reference Euler step even lets v see
the previous step's current). A simulator running this graph therefore reproduces each
population's dynamics, not the spike-for-spike schedule.
It does not reproduce Loihi's integer arithmetic either (rounding of the input drive,
decays truncated toward zero, 24-bit states): parameters are the exact floats of the
integers.

Units and parameter mapping (dt = 1 step)
-----------------------------------------
States are in lava-dl's float units (hardware units / 4096):

* synaptic weights: float = int / 64 (exact: the integers are small, /64 is a power of 2);
  Conv2d with the layer's stride and padding, dilation 1, groups 1; dense as Affine.
* CubaLIF per population, from the integer NeuronParams:
  - a 12-bit decay d (i_decay or v_decay) removes the fraction d/4096 of the state each
    step; NIR's forward-Euler step with dt = 1 removes 1/tau, so tau = 4096 / d:
    d = 4096 (full decay, the state is this step's input only) gives tau = 1, and d = 0
    (no decay) gives tau = TAU_NO_DECAY = 1e9 (NIR has no infinite time constant).
  - w_in = tau_syn and r = tau_mem. NIR's Euler step adds w_in * x / tau_syn to the
    current and r * I / tau_mem to the voltage; Loihi adds the synaptic input and the
    current with gain 1, so these are the values that make the gains 1 (the convention
    NIR's Lava-dl and SpikingJelly converters check: r = tau_mem/dt, w_in = tau_syn/dt).
  - v_threshold = vth_mant / 64 (spike when v > threshold, as on Loihi), v_reset = 0.
  - bias (mantissa b, adds b/64 to v every step): with full current decay
    (i_decay = 4096, the configs' default) the current is exactly this step's input, so
    b/64 goes into the synapse's bias (Affine / Conv2d bias) and v_leak = 0; otherwise a
    synapse bias would accumulate in the current, so it goes into the voltage as
    v_leak = tau_mem * b/64 (the Euler step adds v_leak / tau_mem = b/64), an exact
    constant drive that some importers reject because they require v_leak = 0.
* The readout's non-firing integrators (threshold beyond the 24-bit range) are CubaLI.
* The encoder's Input is the image as bytes / 256: on Loihi the input layer's drive is
  round(conv(bytes, W) / 256) in units of 1/64, i.e. conv(bytes / 256, W / 64) in float
  units before rounding.

File layout (one file, the stages as subgraphs)
-----------------------------------------------
Top-level nodes: ``image`` (Input) -> ``encoder``; FSVAE: ``encoder`` ->
``posterior_x`` and Input ``z`` -> ``posterior_z`` (two exact 0/1 Affine embeddings whose
sum is the concatenation [encoder spikes | z] that the posterior's first layer takes; NIR
sums a node's incoming edges) -> ``posterior`` -> Output ``posterior_candidates``;
``z`` -> ``prior`` -> Output ``prior_candidates``; ESVAE: ``encoder`` -> Output
``encoder_spikes``; ``z`` -> ``decoder`` -> Output ``decoder_spikes``; Input
``readout_spikes`` -> ``readout`` -> Output ``readout_v``. ``z`` is the sampler's output
and ``readout_spikes`` the last transposed convolution's spikes: both are produced by
parts NIR cannot express, so they enter as graph inputs, and the FSVAE feedback loop
(candidates -> sampler -> z -> layer 1) is cut at the sampler. Each stage subgraph has a
single Input ``input`` and Output ``output`` (nir 1.0.8 cannot nest a subgraph with
two inputs). The top-level metadata carries the model facts, this mapping and the skipped list.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neurovae.hw.net import DeployNet, Layer
from neurovae.errors import NeurovaeError
from neurovae.fileio import atomic_path
from neurovae.hw.neuron import DECAY_UNITY, WEIGHT_SCALE

from .format import NetFormatError

if TYPE_CHECKING:  # pragma: no cover
    import nir

TAU_NO_DECAY = 1e9      # tau for a decay of 0 (NIR has no infinite time constant)
DT = 1.0                # one NIR time unit = one Loihi step
NIR_SUFFIX = ".nir"


class NirExportError(NeurovaeError):
    """The NIR file cannot be written (no `nir` package, or the destination fails)."""


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NirExportError("NIR export needs the 'nir' package, a dependency of neurovae: "
                             "reinstall neurovae (pip install -e .) to restore it") from exc
    return nir


# ---------------------------------------------------------------------------- mapping

def tau_of(decay: int) -> float:
    """NIR time constant (dt = 1) of a 12-bit decay that removes decay/4096 per step."""
    decay = int(decay)
    if not 0 <= decay <= DECAY_UNITY:
        raise NetFormatError(f"decay {decay} outside [0, {DECAY_UNITY}]")
    return TAU_NO_DECAY if decay == 0 else DECAY_UNITY / decay


def _float_weight(w) -> np.ndarray:
    return np.asarray(w, dtype=np.int64).astype(np.float64) / WEIGHT_SCALE


def _bias_parts(layer: Layer, n_syn_bias: int) -> tuple[np.ndarray, np.ndarray]:
    """(synapse bias of length n_syn_bias, per-neuron v bias) in float units; one is zero."""
    zeros_syn = np.zeros(n_syn_bias)
    zeros_v = np.zeros(layer.out_shape)
    if layer.bias is None:
        return zeros_syn, zeros_v
    b = np.asarray(layer.bias, dtype=np.int64).astype(np.float64) / WEIGHT_SCALE
    if layer.neuron.i_decay == DECAY_UNITY:
        if b.size != n_syn_bias:
            raise NetFormatError(f"layer '{layer.name}': bias of {b.size} values for "
                                 f"{n_syn_bias} outputs")
        return b.reshape(n_syn_bias), zeros_v
    per_channel = b.size == layer.out_shape[0] and b.size != layer.n_out
    if per_channel:
        b = np.repeat(b, layer.n_out // b.size)
    if b.size != layer.n_out:
        raise NetFormatError(f"layer '{layer.name}': bias of {b.size} values for "
                             f"{layer.n_out} neurons")
    return zeros_syn, b.reshape(layer.out_shape)


def _neuron(nir, layer: Layer, v_bias: np.ndarray, integrator: bool = False):
    """CubaLIF (or CubaLI for a non-firing integrator) with the documented mapping."""
    p, shape = layer.neuron, tuple(layer.out_shape)
    t_syn, t_mem = tau_of(p.i_decay), tau_of(p.v_decay)
    full = lambda x: np.full(shape, float(x))  # noqa: E731
    common = dict(tau_syn=full(t_syn), tau_mem=full(t_mem), r=full(t_mem),
                  v_leak=t_mem * v_bias, w_in=full(t_syn),
                  metadata={"layer": layer.name, "i_decay": int(p.i_decay),
                            "v_decay": int(p.v_decay), "vth_mant": int(p.vth_mant)})
    if integrator:
        return nir.CubaLI(**common)
    return nir.CubaLIF(v_threshold=full(p.vth_mant / WEIGHT_SCALE), v_reset=full(0.0),
                       **common)


def _synapse(nir, layer: Layer):
    """The connection into `layer`: (node, per-neuron v bias)."""
    w, spec = np.asarray(layer.weight), layer.spec
    if not spec.in_nir:
        raise NetFormatError(f"layer '{layer.name}': kind '{layer.kind}' has no NIR synapse")
    if spec.spatial and (w.ndim != 4 or len(layer.in_shape) != 3):
        raise NetFormatError(f"layer '{layer.name}': conv weight {w.shape}, "
                             f"input {layer.in_shape}")
    if not spec.spatial and w.ndim != 2:
        raise NetFormatError(f"layer '{layer.name}': dense weight {w.shape}")
    syn_b, v_b = _bias_parts(layer, w.shape[0])
    node = spec.nir_synapse(nir, layer, _float_weight(w), syn_b)
    if spec.spatial:
        out = tuple(int(s) for s in node.output_type["output"])
        if out != tuple(layer.out_shape):
            raise NetFormatError(f"layer '{layer.name}': conv gives {out}, layer says "
                                 f"{tuple(layer.out_shape)}")
    return node, v_b


def _chain(nir, layers: list, in_shape, meta: dict, integrator_last: bool = False):
    """Input -> (synapse -> neurons)* -> Output, with a Flatten before a dense layer
    that follows a spatial one."""
    nodes = {"input": nir.Input(input_type=np.array(in_shape))}
    edges, prev, prev_shape = [], "input", tuple(in_shape)
    for i, layer in enumerate(layers):
        if not layer.spec.spatial and len(prev_shape) > 1:
            nodes["flatten"] = nir.Flatten(input_type={"input": np.array(prev_shape)},
                                           start_dim=0, end_dim=-1)
            edges.append((prev, "flatten"))
            prev = "flatten"
        syn, v_b = _synapse(nir, layer)
        kind = "conv" if isinstance(syn, nir.Conv2d) else "affine"
        sname, nname = f"{layer.name}_{kind}", f"{layer.name}_lif"
        last = i == len(layers) - 1
        nodes[sname] = syn
        nodes[nname] = _neuron(nir, layer, v_b, integrator=integrator_last and last)
        edges += [(prev, sname), (sname, nname)]
        prev, prev_shape = nname, tuple(layer.out_shape)
    nodes["output"] = nir.Output(output_type=np.array(prev_shape))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


# ------------------------------------------------------------------ what NIR cannot say

def _skipped(net: DeployNet) -> list[str]:
    out = []
    for layer in net.decoder:
        if not layer.spec.in_nir:
            c_in, c_out = layer.in_shape[0], layer.out_shape[0]
            k = "x".join(str(s) for s in np.asarray(layer.weight).shape[2:])
            out.append(
                f"decoder/{layer.name}: transposed convolution {c_in}->{c_out} channels "
                f"(kernel {k}, stride {layer.stride}, padding {layer.padding}) and its CUBA "
                f"LIF population; NIR 1.0 has no transposed convolution, and an exact "
                f"Affine lowering would be a dense {layer.n_out}x{layer.n_in} matrix with "
                f"no Unflatten back to (C, H, W), so it is left out (the decoder graph ends "
                f"at the dense layer's spikes, the readout graph starts from the last "
                f"convT's spikes)")
    if net.kind == "fsvae":
        out.append(
            f"sampler: FSVAE k-candidate pick (k={net.k}) picks one of k candidate spikes "
            f"per latent each step (on Lava: AND neurons with the host's PRNG selectors), "
            f"a stochastic operation with no NIR primitive; it closes the posterior/prior feedback loop "
            f"(layer 3 candidates -> sampler -> z -> layer 1), so the loop is cut there: "
            f"the candidates are graph Outputs and z a graph Input")
    else:
        s = net.sampler
        out.append(
            f"sampler: ESVAE window sampler takes, at each of T={net.T} steps from step "
            f"{s.get('sample_start')}, the encoder's spike at a PRNG-chosen step of its "
            f"window [{s.get('window_start')}, {s.get('sample_start')}) (on Lava: delayed "
            f"synapses into AND neurons with the host's selectors), a stochastic operation "
            f"with no NIR primitive; the encoder spikes are a graph Output and z a graph Input")
        out.append(
            "prior_linear: ESVAE prior draws integer Gaussian noise (Irwin-Hall from the "
            "PRNG), applies an integer linear layer (a mixture prior: the one a further "
            "draw picks) and counts sigmoid thresholds; NIR has "
            "no random source and no sigmoid or count-of-thresholds node")
    out.append(
        "readout/tanh: the image is tanh(v) of the readout integrators after the last "
        "step; NIR 1.0 has no tanh, so the readout graph outputs v (float units)")
    out.append(
        "timing and integer arithmetic: the per-population phase windows, the loop's "
        "4-step latency, the input drive floored to 1/64, decays "
        "truncated toward zero and 24-bit states; the graph gives connectivity and "
        "neuron dynamics with the exact float parameters")
    return out


# ----------------------------------------------------------------------------- public

def to_nir(net: DeployNet) -> tuple[dict[str, "nir.NIRGraph"], list[str]]:
    """NIR graphs of the stages NIR's primitives express, and the names of what it cannot
    express (with reasons).

    Stages (each a NIRGraph with one Input ``input`` and one Output ``output``):
    ``encoder`` (image bytes/256 -> input conv + CubaLIF -> convs + CubaLIF -> Flatten ->
    Affine + CubaLIF), FSVAE ``posterior`` (input = [encoder spikes | z]) and ``prior``
    (input = z), three Affine + CubaLIF each, ``decoder`` (z -> Affine + CubaLIF; its
    transposed convolutions are skipped) and ``readout`` (last convT's spikes -> Conv2d +
    CubaLI, output v; the tanh is skipped). See the module docstring for the mapping.
    """
    nir = _nir()
    if net.kind not in ("fsvae", "esvae"):
        raise NetFormatError(f"model kind '{net.kind}' is not a spiking VAE (fsvae, esvae)")
    if not net.encoder or net.encoder[0].kind != "input":
        raise NetFormatError("encoder: the first layer must be the input layer")
    stages: dict[str, nir.NIRGraph] = {}
    stages["encoder"] = _chain(nir, net.encoder, net.image_shape, {
        "stage": "encoder", "input": "image as bytes / 256, shape (C, H, W)",
        "output": "latent spikes of the encoder's dense layer"})
    if net.kind == "fsvae":
        for name, layers, what in (("posterior", net.posterior, "[encoder spikes | z]"),
                                   ("prior", net.prior, "z")):
            if not layers:
                raise NetFormatError(f"{name}: an fsvae needs its loop layers")
            stages[name] = _chain(nir, layers, layers[0].in_shape, {
                "stage": name, "input": f"{what} (z: the sampler's latent spikes)",
                "output": f"latent x k candidate spikes (k={net.k}) for the sampler"})
    if not net.decoder or net.decoder[0].kind != "dense":
        raise NetFormatError("decoder: the first layer must be dense")
    for layer in net.decoder[1:]:
        if layer.kind != "convT":
            raise NetFormatError(f"decoder/{layer.name}: expected a transposed "
                                 f"convolution after the dense layer, found '{layer.kind}'")
    stages["decoder"] = _chain(nir, net.decoder[:1], net.decoder[0].in_shape, {
        "stage": "decoder", "input": "z: the sampler's latent spikes",
        "output": "spikes of the decoder's dense layer (input of the first convT)"})
    stages["readout"] = _chain(nir, [net.readout], net.readout.in_shape, {
        "stage": "readout", "input": "spikes of the last transposed convolution",
        "output": "integrator voltage v in float units; image = tanh(v) after the "
                  "last step"}, integrator_last=True)
    return stages, _skipped(net)


def _embed(nir, n_total: int, start: int, n: int):
    """0/1 Affine placing an n-vector at [start, start+n) of an n_total-vector."""
    w = np.zeros((n_total, n))
    w[start:start + n] = np.eye(n)
    return nir.Affine(weight=w, bias=np.zeros(n_total))


def to_nir_graph(net: DeployNet) -> tuple["nir.NIRGraph", list[str]]:
    """The whole exportable network as one NIRGraph of stage subgraphs (the file's
    content), and the skipped list."""
    nir = _nir()
    stages, skipped = to_nir(net)
    out_shape = lambda g: np.array(g.nodes["output"].output_type["output"])  # noqa: E731
    nodes: dict = {"image": nir.Input(input_type=np.array(net.image_shape)),
                   "z": nir.Input(input_type=np.array([net.latent]))}
    edges = [("image", "encoder")]
    nodes.update(stages)
    if net.kind == "fsvae":
        n_in = int(net.posterior[0].in_shape[0])
        n_ext = n_in - net.latent
        if n_ext != int(out_shape(stages["encoder"])[0]):
            raise NetFormatError(f"posterior: layer 1 takes {n_in} inputs, not encoder "
                                 f"{int(out_shape(stages['encoder'])[0])} + z {net.latent}")
        nodes["posterior_x"] = _embed(nir, n_in, 0, n_ext)
        nodes["posterior_z"] = _embed(nir, n_in, n_ext, net.latent)
        for s in ("posterior", "prior"):
            nodes[f"{s}_candidates"] = nir.Output(output_type=out_shape(stages[s]))
        edges += [("encoder", "posterior_x"), ("z", "posterior_z"),
                  ("posterior_x", "posterior"), ("posterior_z", "posterior"),
                  ("posterior", "posterior_candidates"), ("z", "prior"),
                  ("prior", "prior_candidates")]
    else:
        nodes["encoder_spikes"] = nir.Output(output_type=out_shape(stages["encoder"]))
        edges.append(("encoder", "encoder_spikes"))
    nodes["decoder_spikes"] = nir.Output(output_type=out_shape(stages["decoder"]))
    nodes["readout_spikes"] = nir.Input(input_type=np.array(net.readout.in_shape))
    nodes["readout_v"] = nir.Output(output_type=out_shape(stages["readout"]))
    edges += [("z", "decoder"), ("decoder", "decoder_spikes"),
              ("readout_spikes", "readout"), ("readout", "readout_v")]
    meta = {"producer": "neurovae", "model_kind": net.kind, "dt": DT,
            "n_steps": int(net.n_steps), "T": int(net.T), "latent": int(net.latent),
            "k": int(net.k), "stages": ",".join(stages),
            "semantics": "connectivity and CUBA LIF dynamics, not Loihi's step timing "
                         "(per-population phase windows, docs/clock.md)",
            "units": "float units = hardware / 4096; weight = int/64; threshold = "
                     "vth_mant/64; tau = 4096/decay (1e9 for decay 0); r = tau_mem; "
                     "w_in = tau_syn; v_reset = 0; image input = bytes/256",
            "skipped": "\n".join(skipped)}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta), skipped


def write_nir(net: DeployNet, path) -> list[str]:
    """Write one NIR file (``nir.write``) at `path` holding the expressible stages as
    subgraphs of one top-level graph (see the module docstring for its layout); returns
    the list of skipped parts with reasons (also stored in the graph's metadata).

    The file appears complete or not at all (temporary name in the same folder, then
    rename). A missing folder, or one that cannot be written, raises NirExportError and
    leaves no file behind (an existing file at `path` stays as it was).
    """
    nir = _nir()
    graph, skipped = to_nir_graph(net)
    path = Path(path)
    if not path.parent.is_dir():
        raise NirExportError(f"cannot write NIR file {os.fspath(path)}: folder "
                             f"{os.fspath(path.parent)} does not exist")
    try:
        with atomic_path(path, NIR_SUFFIX) as tmp:
            nir.write(tmp, graph)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise NirExportError(f"cannot write NIR file {os.fspath(path)}: {reason}") from exc
    return skipped
