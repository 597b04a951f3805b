"""neurovae: spiking VAEs (FSVAE, ESVAE) from lava-dl training to Lava / Loihi 2 execution.

Importing it has no side effects; training enables its CPU kernels explicitly
(`neurovae.kernels.enable_kernels`).
"""

__version__ = "0.1.0"
