"""Readout integrators and spike recorders: the host-visible ends of the graph.

Readout: non-firing CUBA integrators (`neurovae.hw.readout`: current decay 4096, voltage
decay `v_decay`, bias per neuron) whose voltage at the last step of each image is stored
in `frames`. It is a Python process model, so Lava runs it on the host CPU.
SpikeRecorder: stores every step's spikes of a population, bit-packed, for verification.
"""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurovae.hw.neuron import lif_step
from neurovae.hw.readout import readout_neuron
from neurovae.hw.sampling import image_clock


class Readout(AbstractProcess):
    def __init__(self, *, shape: int, v_decay: int, bias, steps: int, n_images: int, **kwargs):
        super().__init__(shape=shape, v_decay=v_decay, bias=np.asarray(bias, np.int64),
                         steps=steps, n_images=n_images, **kwargs)
        self.a_in = InPort(shape=(shape,))
        self.frames = Var(shape=(n_images, shape), init=0)


class SpikeRecorder(AbstractProcess):
    def __init__(self, *, shape: int, total_steps: int, **kwargs):
        words = (shape + 31) // 32
        super().__init__(shape=shape, total_steps=total_steps, **kwargs)
        self.s_in = InPort(shape=(shape,))
        self.packed = Var(shape=(total_steps, words), init=0)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutModel(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    frames: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.v = np.zeros(proc_params["shape"], np.int64)
        self.neuron = readout_neuron(proc_params["v_decay"])

    def run_spk(self):
        p = self.proc_params
        a = self.a_in.recv().astype(np.int64)
        image, t = image_clock(self.time_step, p["steps"])
        if t == 0:   # image boundary: fresh state, input of this step dropped
            self.v[:] = 0
            a[:] = 0
        _, self.v, _ = lif_step(np.zeros_like(self.v), self.v, a, self.neuron, p["bias"])
        if t == p["steps"] - 1 and image < p["n_images"]:
            self.frames[image] = self.v


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderModel(PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    packed: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)

    def run_spk(self):
        s = self.s_in.recv().astype(bool)
        step = self.time_step - 1
        if step < self.packed.shape[0]:
            b = np.packbits(s, bitorder="little")
            b = np.pad(b, (0, 4 * self.packed.shape[1] - len(b)))
            self.packed[step] = b.view("<i4")
