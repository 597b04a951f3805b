"""The deployable network: every stage as integers, exactly what runs on Lava / Loihi 2.

A `.net` file stores a DeployNet and reads back into one; the tensor simulators
(`neurovae.sim`) and the Lava graph (`neurovae.loihi_runtime`) run it. Training turns a
model into one with `neurovae.deploy.from_model`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .layers import LayerKind, kind_of
from .neuron import NeuronParams


@dataclass
class Layer:
    """One synaptic connection and the neuron population it drives."""

    name: str
    kind: str                   # a key of hw.layers.KINDS: input | conv | convT | dense | readout
    in_shape: tuple
    out_shape: tuple
    weight: np.ndarray          # int64
    neuron: NeuronParams
    stride: int = 1
    padding: int = 0
    bias: np.ndarray | None = None   # bias mantissa per output channel / neuron

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def spec(self) -> LayerKind:
        """The layer kind's rules (shapes, synapses, lowering, NIR)."""
        return kind_of(self)

    def bias_per_neuron(self) -> np.ndarray:
        """Bias mantissa of every neuron (channel biases broadcast over space), int64."""
        if self.bias is None:
            return np.zeros(self.n_out, np.int64)
        b = np.asarray(self.bias, np.int64).reshape(-1)
        return b if b.size == self.n_out else np.repeat(b, self.n_out // b.size)


@dataclass
class DeployNet:
    """A whole spiking VAE in integers, plus the clock it runs on."""

    kind: str                   # fsvae | esvae
    image_shape: tuple          # (C, H, W)
    T: int
    latent: int
    k: int
    n_steps: int                # hardware steps per image
    encoder: list
    decoder: list
    readout: Layer
    posterior: list = field(default_factory=list)   # FSVAE loop layers (l1 takes [ext | z])
    prior: list = field(default_factory=list)       # FSVAE loop layers (l1 takes z)
    sampler: dict = field(default_factory=dict)     # FSVAE: k; ESVAE: window_start, sample_start
    prior_linear: dict = field(default_factory=dict)  # ESVAE: weight, bias, thresholds (+ bounds: a mixture)
    seed: int = 0
    config: dict = field(default_factory=dict)      # the training config, for reference

    def stages(self) -> dict:
        return {"encoder": self.encoder, "posterior": self.posterior, "prior": self.prior,
                "decoder": self.decoder, "readout": [self.readout]}

    def loop(self, generate: bool) -> list:
        """The FSVAE autoregressive loop a run uses: the prior to generate, else the posterior."""
        return self.prior if generate else self.posterior
