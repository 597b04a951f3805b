"""A lava-dl CUBA block (synapse, neuron, one-step delay) as one autograd function.

Autograd through lava-dl's block keeps, per neuron and step, the synapse's float32 input
and the neuron's current and voltage. This function keeps the input spikes as bytes and
the voltage as float32 (5 bytes instead of 12) and writes the delayed spikes straight from
the neuron kernel. The forward gives the block's spikes bit for bit (the synaptic drive is
a sum of multiples of 1/32, exact in any order); the backward is lava-dl's rule.
"""
from __future__ import annotations

import numba
import numpy as np
import torch

from .cuba_kernel import CubaConstants, eligible as neuron_eligible, installed


def _conv_args(syn):
    transposed = isinstance(syn, torch.nn.ConvTranspose3d)
    return (syn.stride, syn.padding, syn.dilation, transposed,
            syn.output_padding if transposed else (0, 0, 0), syn.groups)


@numba.njit(parallel=True, cache=True)
def _to_bytes(x, out):
    """out = x as uint8; returns the number of entries that were not 0 or 1."""
    bad = 0
    for i in numba.prange(x.shape[0]):
        v = x[i]
        out[i] = np.uint8(v)
        if v != 0.0 and v != 1.0:
            bad += 1
    return bad


def _pack(x: torch.Tensor) -> torch.Tensor:
    """The input as bytes when it is spikes (0/1), else as it is: the conv's saved input."""
    if x.dtype != torch.float32 or not x.is_contiguous():
        return x
    out = torch.empty(x.shape, dtype=torch.uint8)
    bad = _to_bytes(x.view(-1).numpy(), out.view(-1).numpy())
    return x if bad else out


class _Block(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, args, consts: CubaConstants | None, delay: int):
        x, w = x.detach(), w.detach()
        z = torch.ops.aten.convolution(x, w, None, *args)
        voltage = None
        if consts is not None:             # else: synapse only, its drive is the output
            out = torch.empty(z.shape, dtype=z.dtype)
            voltage = torch.empty(z.shape, dtype=z.dtype)
            consts.forward(z, out, voltage, delay)
            z = out
        ctx.save_for_backward(_pack(x), w, voltage)
        ctx.args, ctx.consts, ctx.delay, ctx.x_dtype = args, consts, delay, x.dtype
        return z

    @staticmethod
    def backward(ctx, grad_out):
        x, w, voltage = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        g_z = grad_out
        if ctx.consts is not None:
            g_z = torch.empty(voltage.shape, dtype=voltage.dtype)
            ctx.consts.backward(voltage, grad_out, g_z, ctx.delay)
        g_x, g_w, _ = torch.ops.aten.convolution_backward(
            g_z, x.to(ctx.x_dtype), w, None, *ctx.args, [need_x, need_w, False])
        return g_x, g_w, None, None, None


def _weight(syn) -> torch.Tensor:
    return syn.weight if syn._pre_hook_fx is None else syn._pre_hook_fx(syn.weight)


def _plain_synapse(syn) -> bool:
    return (isinstance(syn, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) and syn.bias is None
            and not getattr(syn, "complex", False) and not hasattr(syn, "weight_g"))


def synapse(syn, x: torch.Tensor) -> torch.Tensor:
    """A lava-dl synapse (dense, conv or transposed conv) on spikes: `syn(x)`, same output."""
    if x.is_cuda or not installed() or not _plain_synapse(syn):
        return syn(x)
    flat = x.dim() == 3
    x5 = x.reshape(x.shape[0], -1, 1, 1, x.shape[-1]) if flat else x
    z = _Block.apply(x5, _weight(syn), _conv_args(syn), None, 0)
    return z.reshape(x.shape[0], -1, x.shape[-1]) if flat else z


def block(blk, x: torch.Tensor) -> torch.Tensor:
    """A lava-dl CUBA block on spikes: `blk(x)`, same spikes, a fraction of the memory."""
    neuron, syn = blk.neuron, blk.synapse
    if (not installed() or not neuron_eligible(neuron, x) or not _plain_synapse(syn)
            or blk.count_log
            or getattr(blk, "delay", None) is not None):
        return blk(x)
    flat = x.dim() == 3
    x5 = x.reshape(x.shape[0], -1, 1, 1, x.shape[-1]) if flat else x
    s = _Block.apply(x5, _weight(syn), _conv_args(syn), CubaConstants(neuron),
                     1 if blk.delay_shift else 0)
    shape = s.shape[1:-1] if not flat else torch.Size([s.shape[1]])
    if neuron.shape is None:           # what lava-dl's neuron records on its first call
        neuron.shape = shape
        neuron.num_neurons = int(torch.Size(shape).numel())
    return s.reshape(x.shape[0], -1, x.shape[-1]) if flat else s
