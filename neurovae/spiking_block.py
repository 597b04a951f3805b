"""A lava-dl CUBA block (synapse, neuron, one-step delay) as one autograd function.

Autograd through lava-dl's block keeps, per neuron and step, the synapse's float32 input
and the neuron's current and voltage. This function keeps the input spikes as bytes and
the voltage as float32 (5 bytes instead of 12) and writes the delayed spikes straight from
the neuron kernel. The forward gives the block's spikes bit for bit (the synaptic drive is
a sum of multiples of 1/32, exact in any order); the backward is lava-dl's rule. Off the
CPU the neurons run as torch ops (`neurovae.torch_cuba`) and the drive is rounded back to
that grid, since a GPU's convolution algorithm may round its sums.
"""
from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F

from lava.lib.dl.slayer.neuron.dynamics import leaky_integrator

from . import li_dynamics, torch_cuba
from .hw.neuron import STATE_SCALE
from .cuba_kernel import CubaConstants, eligible as neuron_eligible, installed, record_shape


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
    if torch_cuba.wanted(x):
        return torch_cuba.pack(x)
    if x.dtype != torch.float32 or not x.is_contiguous():
        return x
    out = torch.empty(x.shape, dtype=torch.uint8)
    bad = _to_bytes(x.view(-1).numpy(), out.view(-1).numpy())
    return x if bad else out


class _Block(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, args, consts: CubaConstants, delay: int):
        x, w = x.detach(), w.detach()
        z = torch.ops.aten.convolution(x, w, None, *args)
        if torch_cuba.wanted(z):
            z = torch_cuba.exact_drive(z, x, w)
        spikes, voltage = consts.run(z, delay)
        ctx.save_for_backward(_pack(x), w, voltage)
        ctx.args, ctx.consts, ctx.delay, ctx.x_dtype = args, consts, delay, x.dtype
        return spikes

    @staticmethod
    def backward(ctx, grad_out):
        x, w, voltage = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        g_z = ctx.consts.grad(voltage, grad_out, ctx.delay)
        g_x, g_w, _ = torch.ops.aten.convolution_backward(
            g_z, x.to(ctx.x_dtype), w, None, *ctx.args, [need_x, need_w, False])
        return g_x, g_w, None, None, None


def _weight(syn) -> torch.Tensor:
    return syn.weight if syn._pre_hook_fx is None else syn._pre_hook_fx(syn.weight)


def _plain_synapse(syn) -> bool:
    return (isinstance(syn, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) and syn.bias is None
            and not getattr(syn, "complex", False) and not hasattr(syn, "weight_g"))


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
    record_shape(neuron, s.shape[1:-1] if not flat else torch.Size([s.shape[1]]))
    return s.reshape(x.shape[0], -1, x.shape[-1]) if flat else s


def _integrate(z: torch.Tensor, bias: torch.Tensor, decay: torch.Tensor, steps: int):
    """The readout's voltage after `steps` steps on the drive z (its last steps) plus bias:
    lava-dl's leaky integrator from rest, read at the end."""
    drive = F.pad(z, (steps - z.shape[-1], 0)) + bias.view(1, -1, *([1] * (z.dim() - 2)))
    v = leaky_integrator.dynamics(drive, decay,
                                  torch.zeros(drive.shape[:-1], device=drive.device), STATE_SCALE)
    return v[..., -1]


def readout_shares(decay: torch.Tensor, steps: int, device) -> torch.Tensor:
    """Step t's share keep**(S-1-t) of the readout's voltage read after step S-1, (S,) on
    `device`: lava-dl's reverse recursion in float32, as its integrator's gradient has it."""
    keep = (1 - decay.cpu() / (1 << li_dynamics.DECAY_BITS)).to(torch.float32)
    d = torch.ones(steps, device="cpu")
    for t in range(steps - 2, -1, -1):
        d[t] = keep * d[t + 1]
    return d.to(device)


class _Readout(torch.autograd.Function):
    """Synapse into a non-spiking leaky integrator read at the last step (the readout).

    The integrator is linear in time, so the loss reaches step t of every pixel through the
    same factor d_t = keep**(S-1-t): the weight gradient is a 2-D one on the d-weighted sum
    of the input spikes, and the input gradient a 2-D one spread over t by d. Forward: the
    synapse per step and lava-dl's integer integrator, as the separate modules compute them.
    """

    @staticmethod
    def forward(ctx, x, w, bias, decay, args, steps: int):
        x, w, bias = x.detach(), w.detach(), bias.detach()
        z = torch.ops.aten.convolution(x, w, None, *args)
        if torch_cuba.wanted(z):
            z = torch_cuba.exact_drive(z, x, w)
        v = _integrate(z, bias, decay, steps)
        d = readout_shares(decay, steps, x.device)
        d_in = d[steps - x.shape[-1]:].contiguous()
        x_sum = (x.reshape(-1, x.shape[-1]) @ d_in).reshape(x.shape[:-1])
        ctx.save_for_backward(x_sum, w, d, d_in)
        ctx.args = args
        return v

    @staticmethod
    def backward(ctx, grad_v):
        x_sum, w, d, d_in = ctx.saved_tensors
        stride, padding, dilation, transposed, out_pad, groups = ctx.args
        args2d = (stride[:2], padding[:2], dilation[:2], transposed, out_pad[:2], groups)
        g = grad_v.contiguous()
        g_sum, g_w, _ = torch.ops.aten.convolution_backward(
            g, x_sum, w[..., 0], None, *args2d,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False])
        grad_x = g_sum.unsqueeze(-1) * d_in if ctx.needs_input_grad[0] else None
        grad_w = g_w.unsqueeze(-1) if ctx.needs_input_grad[1] else None
        grad_b = (g.sum(dim=[0] + list(range(2, g.dim()))) * d.sum()
                  if ctx.needs_input_grad[2] else None)
        return grad_x, grad_w, grad_b, None, None, None


def readout(syn, x: torch.Tensor, bias: torch.Tensor, decay: torch.Tensor,
            steps: int) -> torch.Tensor:
    """Voltage after the last of `steps` steps of the readout integrators (bias per channel,
    voltage decay `decay`) driven by `syn` on the spikes x, whose steps are the last ones.

    Same values as the synapse followed by lava-dl's leaky integrator; its backward is
    two 2-D convolutions instead of one per step."""
    if (not installed() or not _plain_synapse(syn) or x.dim() != 5
            or isinstance(syn, torch.nn.ConvTranspose3d) or syn.weight.shape[-1] != 1
            or syn.stride[2] != 1 or syn.padding[2] != 0):
        return _integrate(syn(x), bias, decay, steps)
    return _Readout.apply(x, _weight(syn), bias, decay, _conv_args(syn), steps)
