"""Proxy learning for the decoder: the exact spiking forward, the backward of a rate network.

With `backward=proxy` a spiking VAE's decoder is trained as in proxy learning (Kheradpisheh
et al., 2022): it runs forward exactly as deployed, without autograd, and each layer's
output is its measured spike rate. The gradient reaches each layer through a rate model of
it instead: f(W r_in), with W the layer's 8-bit weights, r_in the previous layer's measured
rate and f the LIF's rate curve (`lif_rate`). No gradient runs through time, so a step is
cheaper and its gradient smoother than the surrogate's; the loss, the weights and every
spike stay the deployed ones, so the quantization cost stays 0. The encoder (and FSVAE's
loops) keep the surrogate gradient: on ESVAE's encoder a rate network trained worse
(docs/quality.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..hw.neuron import DECAY_UNITY, NeuronParams
from ..neuron import quantize_bias
from .. import spiking_block


class _Exact(torch.autograd.Function):
    """Forward: `exact`, bit for bit; backward: the gradient goes to `proxy` (same shape)."""

    @staticmethod
    def forward(ctx, exact, proxy):
        return exact.clone()

    @staticmethod
    def backward(ctx, grad):
        return None, grad


def exact_with_proxy_grad(exact: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
    """`exact` in the forward, differentiated as `proxy`."""
    return _Exact.apply(exact.detach(), proxy)


def lif_rate(current: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    """Spike rate of the CUBA LIF fed by spikes whose mean input per step is `current`
    (float units): 1 - exp(-I / threshold), I the current's steady state. The input's
    fluctuations make the neuron fire well below the threshold and saturate slowly; this
    curve follows the measured rates of spike-driven layers (tests/test_proxy_learning.py)."""
    steady = current * (DECAY_UNITY / max(p.i_decay, 1))
    return 1.0 - torch.exp(-steady.clamp_min(0.0) / p.threshold)


def _synapse(block, r: torch.Tensor) -> torch.Tensor:
    """The block's synapse on rates: (N, C, H, W) or flat (N, C), its 8-bit weights."""
    from .spiking import qweight
    syn = block.synapse
    w = qweight(block)
    if r.dim() == 2:
        return F.linear(r, w.flatten(1))
    if isinstance(syn, torch.nn.ConvTranspose3d):
        return F.conv_transpose2d(r, w[..., 0], stride=syn.stride[:2], padding=syn.padding[:2])
    return F.conv2d(r, w[..., 0], stride=syn.stride[:2], padding=syn.padding[:2])


def _layer(spikes: torch.Tensor, current: torch.Tensor, p: NeuronParams,
           over_time: torch.Tensor) -> torch.Tensor:
    """A layer's measured rate, its spikes' average weighted by `over_time` (sum 1), in the
    forward; the rate model's gradient in the backward."""
    return exact_with_proxy_grad(spikes @ over_time, lif_rate(current, p))


def decoder(dec, z: torch.Tensor, silent: int, p: NeuronParams) -> torch.Tensor:
    """Image in [-1, 1], exactly `dec(z, silent)`, differentiated through the rate model.

    The readout weighs step t's drive by keep**(S-1-t), so every decoder layer's rate is its
    spikes' average under those weights (the layers are delay-free: step t's spikes drive
    step t): the readout's voltage is then linear in the last layer's rate. z carries its
    sampler's gradient at each step (ESVAE's window pick, FSVAE's candidate pick)."""
    steps = z.shape[-1]
    ro = dec.readout
    share = spiking_block.readout_shares(ro.decay, steps, z.device)
    active, total = float(share[silent:].sum()), float(share.sum())
    over_time = (share[silent:] / active).to(z.dtype)
    x = z[..., silent:]
    r = x @ over_time
    s = x.detach()
    for i, block in enumerate([dec.dense] + list(dec.ups)):
        with torch.no_grad():
            s = spiking_block.block(block, s)
        r = _layer(s, _synapse(block, r), p, over_time=over_time)
        if i == 0:
            s, r = dec.grid(s), dec.grid(r)
    bias = quantize_bias(ro.bias)
    with torch.no_grad():
        v = spiking_block.readout(dec.final.synapse, s, bias, ro.decay, steps)
    v_rate = _synapse(dec.final, r) * active + bias.view(1, -1, 1, 1) * total
    return torch.tanh(exact_with_proxy_grad(v, v_rate))
