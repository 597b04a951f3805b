"""neurovae.loihi_runtime: a `.net` file -> Lava processes, run on Lava's CPU simulator or
Loihi 2; reads only the file (through neurovae.export.load), never a PyTorch module."""
from .backends import BACKENDS, BackendUnavailable, LavaRunError, run

__all__ = ["BACKENDS", "BackendUnavailable", "LavaRunError", "run"]
