"""Numba's thread pool for the CPU kernels, chosen so it does not fight torch's.

With numba's OpenMP layer, its idle workers spin after each kernel and steal the cores
torch's own OpenMP threads run on next (a training step was 1.8x slower on 2 cores);
numba's `workqueue` layer sleeps instead. A user's NUMBA_THREADING_LAYER still wins.
"""
import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
