"""Spiking samplers with the shared counter PRNG: FSVAE's candidate pick, ESVAE's rates.

They receive and send within one step (0 latency). They are Python process models, so
Lava runs them on the host CPU, under Loihi2HwCfg too: they are not neuro-core processes.
Their rules are `neurovae.hw.sampling`'s.
"""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurovae.hw import sampling


class CandidateSampler(AbstractProcess):
    """z_i = candidate (i*k + j) with j = PRNG(seed, image, step, i) mod k."""

    def __init__(self, *, latent: int, k: int, seed: int, steps: int, first_image: int = 0,
                 **kwargs):
        super().__init__(latent=latent, k=k, seed=seed, steps=steps, first_image=first_image,
                         **kwargs)
        self.c_in = InPort(shape=(latent * k,))
        self.z_out = OutPort(shape=(latent,))


class RateSampler(AbstractProcess):
    """ESVAE: counts input spikes in [window_start, sample_start), then for T steps emits
    z_i = (PRNG mod T) < count_i. With `prior` (weight, bias, thresholds) given, the counts
    come from the integer prior instead and the input is ignored."""

    def __init__(self, *, latent: int, T: int, seed: int, steps: int, window_start: int,
                 sample_start: int, first_image: int = 0, prior: dict | None = None, **kwargs):
        super().__init__(latent=latent, T=T, seed=seed, steps=steps, window_start=window_start,
                         sample_start=sample_start, first_image=first_image, prior=prior,
                         **kwargs)
        self.e_in = InPort(shape=(latent,))
        self.z_out = OutPort(shape=(latent,))


def _clock(model):
    p = model.proc_params
    return sampling.image_clock(model.time_step, p["steps"], p["first_image"])


@implements(proc=CandidateSampler, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyCandidateSamplerModel(PyLoihiProcessModel):
    c_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    z_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def run_spk(self):
        p = self.proc_params
        c = self.c_in.recv().astype(np.int32)
        image, t = _clock(self)
        z = sampling.pick(c[None, :], p["k"], p["seed"], np.array([image]), t)
        self.z_out.send(z[0].astype(np.int32))


@implements(proc=RateSampler, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRateSamplerModel(PyLoihiProcessModel):
    e_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    z_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.counts = np.zeros(proc_params["latent"], np.int64)

    def run_spk(self):
        p = self.proc_params
        e = self.e_in.recv().astype(np.int64)
        image, t = _clock(self)
        images = np.array([image])
        if t == 0:
            self.counts[:] = (0 if p["prior"] is None
                              else sampling.prior_counts(p["prior"], p["seed"], images)[0])
        counting, emitting = sampling.in_window(p, t)
        if p["prior"] is None and counting:
            self.counts += e
        z = np.zeros(p["latent"], np.int32)
        if emitting:
            z = sampling.rate_spikes(self.counts[None, :], p["T"], p["seed"], images, t)[0]
        self.z_out.send(z.astype(np.int32))
