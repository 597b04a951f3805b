"""Tensor simulators of the deployed graph, spike-exact with Lava's fixed-point run.

`reference` steps the graph one hardware step at a time, as Lava does (the `reference`
backend, alias `torch`); `emulator` runs one layer over all steps at a time (the `emulator`
backend, far faster). Both run a `neurovae.hw.net.DeployNet` and import only the deploy core.
"""
