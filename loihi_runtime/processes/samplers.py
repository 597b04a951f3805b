"""Spiking samplers with the shared counter PRNG: FSVAE's candidate pick, ESVAE's rates.

They receive and send within one step (0 latency). On Loihi 2 they map to the embedded
processors (PRNG and pick are integer code on a few hundred values per step); their
inputs and outputs are ordinary spike messages to and from the neuro-cores.
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

from neurovae import prng


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
    t0 = model.time_step - 1
    return p["first_image"] + t0 // p["steps"], t0 % p["steps"]


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
        lat = np.arange(p["latent"])
        idx = prng.randint_numpy(p["seed"], image, t, lat, p["k"])
        self.z_out.send(c.reshape(p["latent"], p["k"])[lat, idx].astype(np.int32))


@implements(proc=RateSampler, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRateSamplerModel(PyLoihiProcessModel):
    e_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    z_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.counts = np.zeros(proc_params["latent"], np.int64)

    def _prior_counts(self, image):
        p, pr = self.proc_params, self.proc_params["prior"]
        eps = prng.gaussian_int_numpy(p["seed"] ^ prng.PRIOR_SEED_SALT, image,
                                      np.arange(p["latent"]))
        y = np.asarray(pr["weight"], np.int64) @ eps + np.asarray(pr["bias"], np.int64)
        return (y[:, None] >= np.asarray(pr["thresholds"], np.int64)[None, :]).sum(1)

    def run_spk(self):
        p = self.proc_params
        e = self.e_in.recv().astype(np.int64)
        image, t = _clock(self)
        if t == 0:
            self.counts[:] = (self._prior_counts(image) if p["prior"] is not None else 0)
        if p["prior"] is None and p["window_start"] <= t < p["sample_start"]:
            self.counts += e
        z = np.zeros(p["latent"], np.int32)
        if p["sample_start"] <= t < p["sample_start"] + p["T"]:
            m = prng.randint_numpy(p["seed"], image, t, np.arange(p["latent"]), p["T"])
            z = (m < self.counts).astype(np.int32)
        self.z_out.send(z)
