"""The deploy core: what a deployed network is and the hardware rules it runs by.

Shared by training (`neurovae.models`), the tensor simulators (`neurovae.sim`), the file
format (`neurovae.export`) and the Lava graph (`neurovae.loihi_runtime`). It imports numpy,
torch and the PRNG only: never lava-dl, the models or the training loop.
"""
