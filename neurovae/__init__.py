"""neurovae: spiking VAEs (FSVAE, ESVAE) from lava-dl training to Lava / Loihi 2 execution."""
from ._memory import keep_freed_memory

__version__ = "0.1.0"

keep_freed_memory()
