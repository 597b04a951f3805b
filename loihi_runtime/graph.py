"""Compile a DeployNet (read from a `.net` file) into a Lava process graph and run it.

Populations are Lava LIFReset processes (with the input-gating model at image starts),
connections Lava Dense (dense layers) or Sparse (convolutions, unrolled), the input a
graded RingBuffer into the first population's a_in, and neurovae's own processes for the
samplers, the readout and spike recording. One compiled graph runs all images back to back,
S steps each.
"""
from __future__ import annotations

import numpy as np
from lava.proc.dense.process import Dense
from lava.proc.io.source import RingBuffer
from lava.proc.lif.process import LIFReset
from lava.proc.sparse.process import Sparse

from neurovae.hw import sampling
from neurovae.hw.net import DeployNet, Layer

from .processes.gated_lif import PyGatedLifResetModel
from .processes.readout import Readout, SpikeRecorder
from .processes.samplers import CandidateSampler, RateSampler

MESSAGE_BITS = 8   # spikes sent as 8-bit payloads: same sums, ~3x faster Sparse on the CPU
# process models the graph swaps in over Lava's stock ones (they run on the host CPU)
PROJECT_MODELS = {LIFReset: PyGatedLifResetModel}


def run_config(hardware: bool = False):
    """The run config of the graph: Lava's fixed-point CPU simulator, or Loihi 2."""
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
    if hardware:
        return Loihi2HwCfg(exception_proc_model_map=dict(PROJECT_MODELS))
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=dict(PROJECT_MODELS))


class LavaGraph:
    """The processes of one reconstruction or generation run of `n_images` images."""

    def __init__(self, net: DeployNet, n_images: int, seed: int, drive: np.ndarray | None,
                 record: bool = False, first_image: int = 0):
        self.net, self.n, self.S = net, n_images, net.n_steps
        self.record = record
        self.recorders: dict[str, SpikeRecorder] = {}
        self.procs: list = []
        gen = drive is None
        C = net.latent
        if gen:
            self.source = None
            enc_out = None
        else:
            pops = [self._lif(l, f"encoder/{l.name}") for l in net.encoder]
            self.source = RingBuffer(data=drive.astype(np.int32))
            self.source.name = "input_drive"
            self.source.s_out.connect(pops[0].a_in)
            self.procs.append(self.source)
            for layer, pre, post in zip(net.encoder[1:], pops, pops[1:]):
                self._connect(layer, pre.s_out, post)
            enc_out = pops[-1].s_out
        if net.kind == "fsvae":
            loop = net.loop(gen)
            self.sampler = CandidateSampler(latent=C, k=net.k, steps=self.S,
                                            seed=sampling.sampler_seed(seed, gen),
                                            first_image=first_image, name="sampler")
            stage = "latent"
            lp = [self._lif(l, f"{stage}/{l.name}") for l in loop]
            w1 = np.asarray(loop[0].weight, np.int64)
            if enc_out is not None:   # concat(encoder output, z): two connections, one port
                self._connect(loop[0], enc_out, lp[0], w1[:, :C], "_from_encoder")
                self._connect(loop[0], self.sampler.z_out, lp[0], w1[:, C:], "_from_z")
            else:
                self._connect(loop[0], self.sampler.z_out, lp[0])
            for layer, pre, post in zip(loop[1:], lp, lp[1:]):
                self._connect(layer, pre.s_out, post)
            lp[-1].s_out.connect(self.sampler.c_in)
        else:
            sm = net.sampler
            self.sampler = RateSampler(latent=C, T=sm["T"], seed=seed, steps=self.S,
                                       window_start=sm["window_start"],
                                       sample_start=sm["sample_start"], first_image=first_image,
                                       prior=net.prior_linear if gen else None,
                                       name="sampler")
            if enc_out is not None:
                enc_out.connect(self.sampler.e_in)
        self.procs.append(self.sampler)
        if record:
            self._recorder("sampler/z", C, self.sampler.z_out)
        dp = [self._lif(l, f"decoder/{l.name}") for l in net.decoder]
        self._connect(net.decoder[0], self.sampler.z_out, dp[0])
        for layer, pre, post in zip(net.decoder[1:], dp, dp[1:]):
            self._connect(layer, pre.s_out, post)
        r = net.readout
        self.readout = Readout(shape=r.n_out, v_decay=r.neuron.v_decay,
                               bias=r.bias_per_neuron(),
                               steps=self.S, n_images=n_images, name="readout")
        self._connect(r, dp[-1].s_out, self.readout)
        self.procs.append(self.readout)

    def _lif(self, layer: Layer, name: str) -> LIFReset:
        p = layer.neuron
        bias = layer.bias_per_neuron().astype(np.int16)
        lif = LIFReset(shape=(layer.n_out,), du=max(p.i_decay - 1, 0), dv=p.v_decay,
                       vth=p.vth_mant, bias_mant=bias, bias_exp=6, reset_interval=self.S,
                       reset_offset=1, name=name.replace("/", "_"))
        self.procs.append(lif)
        if self.record:
            self._recorder(name, layer.n_out, lif.s_out)
        return lif

    def _connect(self, layer: Layer, src_port, dst, matrix=None, suffix: str = ""):
        """Source port -> Dense (a dense matrix) or Sparse (an unrolled conv) -> dst.a_in,
        named after its destination; `matrix` defaults to the layer's whole connection."""
        matrix = layer.spec.unrolled(layer) if matrix is None else matrix
        kind = Dense if isinstance(matrix, np.ndarray) else Sparse
        conn = kind(weights=matrix.astype(np.int32), num_message_bits=MESSAGE_BITS,
                    name=f"{dst.name}_synapses{suffix}")
        src_port.connect(conn.s_in)
        conn.a_out.connect(dst.a_in)
        self.procs.append(conn)

    def _recorder(self, name: str, size: int, port):
        rec = SpikeRecorder(shape=size, total_steps=self.n * self.S)
        port.connect(rec.s_in)
        self.recorders[name] = rec
        self.procs.append(rec)

    def read_records(self) -> dict[str, np.ndarray]:
        """Recorded spikes as uint8 arrays (n_images, neurons, S)."""
        out = {}
        for name, rec in self.recorders.items():
            packed = np.asarray(rec.packed.get(), np.int32)
            bits = np.unpackbits(packed.view(np.uint8), axis=1, bitorder="little")
            size = rec.proc_params["shape"]
            spikes = bits[:, :size].reshape(self.n, self.S, size)
            out[name] = spikes.transpose(0, 2, 1).astype(np.uint8)
        return out
