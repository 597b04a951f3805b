"""Fixed-point model of Lava's LIFReset that also gates its input at each image start.

At the first step of every image (time_step % S == 1) u and v are zeroed and the input of
that step, which still carries the previous image's last spikes through each Dense/Sparse
buffer, is dropped. Every image then runs as on fresh hardware, as PyTorch models it.
It is selected through ``exception_proc_model_map={LIFReset: PyGatedLifResetModel}``:
a Python process model, so every population using it runs on the host CPU, not on a
neuro-core.
"""
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifResetModelBitAcc
from lava.proc.lif.process import LIFReset


@implements(proc=LIFReset, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "gated")
class PyGatedLifResetModel(PyLifResetModelBitAcc):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)

    def run_spk(self):
        a_in = self.a_in.recv()
        if (self.time_step % self.reset_interval) == self.reset_offset:
            self.u *= 0
            self.v *= 0
            a_in = np.zeros_like(a_in)
        self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in)
        self.s_out_buff = self.spiking_activation()
        self.reset_voltage(spike_vector=self.s_out_buff)
        self.s_out.send(self.s_out_buff)
