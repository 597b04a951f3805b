"""SpikeRecorder: the verification tap (not part of the deployed graph).

Stores every step's spikes of a population, bit-packed into int32 words, so that `verify`
and the tests can compare the Lava run with the tensor simulators spike for spike. It is a
Python process model on the host CPU; the deployed graph (`record=False`) has none.
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


class SpikeRecorder(AbstractProcess):
    def __init__(self, *, shape: int, total_steps: int, **kwargs):
        words = (shape + 31) // 32
        super().__init__(shape=shape, total_steps=total_steps, **kwargs)
        self.s_in = InPort(shape=(shape,))
        self.packed = Var(shape=(total_steps, words), init=0)


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
