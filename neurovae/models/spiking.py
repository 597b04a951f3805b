"""Spiking encoder, decoder, autoregressive loop and readout on one hardware clock.

Time runs in hardware steps t = 0..S-1 per image. At t = 0 every neuron starts from
zero and ignores its input (the image boundary); every synaptic layer delivers at t the
spikes of t-1 (lava-dl's ``delay_shift``, Lava's Dense/Conv). The input layer is the first
conv, computed as a constant integer drive (image bytes x integer weights) fed straight
into its neurons. Tensors follow SLAYER: (N, C, H, W, T) and (N, C, T). Every tensor made
here is made on its input's device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from lava.lib.dl import slayer

from ..config import Config
from ..hw import sampling
from ..hw.neuron import WEIGHT_SCALE, NeuronParams
from ..neuron import cuba_step, quantize_bias
from .. import prng, spiking_block


def shift(x: torch.Tensor) -> torch.Tensor:
    """Delay a (..., T) series by one step: what a Dense/Conv connection does."""
    return F.pad(x[..., :-1], (1, 0))


def qweight(block) -> torch.Tensor:
    """Quantized float weight of a lava-dl block's synapse (lava-dl's 8-bit rule)."""
    return block.synapse.pre_hook_fx(block.synapse.weight)


def _neuron(cfg: Config) -> dict:
    return cfg.neuron.slayer_params()


def input_drive(weight_q: torch.Tensor, x01: torch.Tensor, stride=2, padding=1) -> torch.Tensor:
    """First-layer drive: conv of the image (bytes/256) on the 1/64 grid (straight-through).

    The exact conv of bytes/256 and 8-bit weights lies on the 1/8192 grid; rounding to it
    first undoes any rounding of the conv's algorithm (a no-op where its sums are exact)."""
    z = F.conv2d(x01, weight_q[..., 0], stride=stride, padding=padding)
    exact = torch.round(z * DRIVE_GRID) / DRIVE_GRID
    return z + (torch.round(exact * WEIGHT_SCALE) / WEIGHT_SCALE - z).detach()


DRIVE_GRID = 256 * 32   # image bytes / 256 times weights in multiples of 1/32


class SpikingEncoder(torch.nn.Module):
    """Input layer (integer drive) -> stride-2 conv blocks -> dense block to `out` neurons."""

    def __init__(self, cfg: Config, out: int):
        super().__init__()
        p, ws = _neuron(cfg), cfg.weight_scale
        chans = (cfg.channels,) + tuple(cfg.enc_channels)
        self.input = slayer.block.cuba.Conv(p, chans[0], chans[1], 3, stride=2, padding=1,
                                            weight_scale=ws)
        self.convs = torch.nn.ModuleList(
            slayer.block.cuba.Conv(dict(p), chans[i], chans[i + 1], 3, stride=2, padding=1,
                                   weight_scale=ws)
            for i in range(1, len(chans) - 1))
        side = cfg.image_size // 2 ** len(cfg.enc_channels)
        self.dense = slayer.block.cuba.Dense(dict(p), chans[-1] * side * side, out,
                                             weight_scale=ws, delay_shift=False)
        self.depth = len(cfg.enc_channels) + 1   # first step at which the output can spike

    def forward(self, x01: torch.Tensor, steps: int) -> torch.Tensor:
        """Image (N, C, H, W) in bytes/256 -> output spikes (N, out, steps), not delayed."""
        drive = input_drive(qweight(self.input), x01)
        series = drive.unsqueeze(-1).repeat(*([1] * drive.dim()), steps)
        series[..., 0] = 0
        x = shift(self.input.neuron(series))
        for block in self.convs:
            x = spiking_block.block(block, x)
        return spiking_block.block(self.dense, x.flatten(1, 3))


class SpikingDecoder(torch.nn.Module):
    """Latent spikes -> dense block -> stride-2 ConvT blocks -> 3x3 conv -> leaky readout."""

    def __init__(self, cfg: Config):
        super().__init__()
        p, ws = _neuron(cfg), cfg.weight_scale
        ch = tuple(cfg.dec_channels)
        self.side = cfg.image_size // 2 ** (len(ch) - 1)
        self.ch0 = ch[0]
        self.dense = slayer.block.cuba.Dense(dict(p), cfg.latent, ch[0] * self.side ** 2,
                                             weight_scale=ws)
        self.ups = torch.nn.ModuleList(
            slayer.block.cuba.ConvT(dict(p), ch[i], ch[i + 1], 4, stride=2, padding=1,
                                    weight_scale=ws)
            for i in range(len(ch) - 1))
        # small initial output weights keep the readout out of tanh's flat tails
        self.final = slayer.block.cuba.Conv(dict(p), ch[-1], cfg.channels, 3, padding=1,
                                            weight_scale=0.5)
        self.readout = Readout(cfg.readout_neuron, cfg.channels)
        self.depth = len(ch) + 1   # synaptic layers from latent spikes to the readout

    def forward(self, z: torch.Tensor, silent: int = 0) -> torch.Tensor:
        """Latent spikes (N, C, S), not delayed -> image in [-1, 1], (N, channels, H, W).

        `silent`: z carries no spike before this step (ESVAE's sampling window). Those
        steps are skipped, exactly: with no input and no bias the blocks' neurons stay at
        rest and emit nothing; the readout still integrates its bias over every step.
        """
        steps = z.shape[-1]
        x = spiking_block.block(self.dense, shift(z[..., silent:]))
        x = x.reshape(x.shape[0], self.ch0, self.side, self.side, x.shape[-1])
        for block in self.ups:
            x = spiking_block.block(block, x)
        return self.readout(self.final.synapse, x, steps)


class Readout(torch.nn.Module):
    """Non-spiking leaky integrator read after the last step, then tanh.

    out = tanh(sum_t (x_t + b) * 0.8**(S-1-t)) with Loihi's integer decay; on Lava a LIF
    that never fires (current decay 4096, voltage decay `v_decay`, bias b per channel), its
    voltage read at the end.
    """

    def __init__(self, p: NeuronParams, channels: int):
        super().__init__()
        self.p = p
        self.bias = torch.nn.Parameter(torch.full((channels,), -0.25))
        self.register_buffer("decay", torch.tensor([float(p.v_decay)]), persistent=False)

    def forward(self, syn, x: torch.Tensor, steps: int) -> torch.Tensor:
        """tanh of the voltage after `steps` steps, driven by synapse `syn` on the spikes x
        (its steps are the last ones; the readout integrates only its bias before them)."""
        return torch.tanh(spiking_block.readout(syn, x, quantize_bias(self.bias), self.decay,
                                                steps))


class AutoregressiveLoop(torch.nn.Module):
    """FSVAE posterior or prior: three CUBA dense layers emitting C*k candidates, a pick of
    one per latent, and the picked spikes fed back into the first layer.

    Stepped one hardware step at a time, as on Lava: the loop z -> L1 -> L2 -> L3 -> pick
    -> z has a latency of 3 steps (three synaptic layers). `ext` (posterior only) is the
    encoder output, entering L1 through its own connection (Lava sums both into one port).
    """

    def __init__(self, cfg: Config, ext: int = 0):
        super().__init__()
        p, ws, C, k = _neuron(cfg), cfg.weight_scale, cfg.latent, cfg.k
        self.params, self.C, self.k = cfg.neuron, C, k
        self.ext = slayer.block.cuba.Dense(dict(p), ext, 2 * C, weight_scale=ws) if ext else None
        self.fb = slayer.block.cuba.Dense(dict(p), C, 2 * C, weight_scale=ws)
        self.l2 = slayer.block.cuba.Dense(dict(p), 2 * C, 4 * C, weight_scale=ws)
        self.l3 = slayer.block.cuba.Dense(dict(p), 4 * C, C * k, weight_scale=ws)
        self.biases = torch.nn.ParameterList(
            torch.nn.Parameter(torch.full((n,), 0.5 * cfg.neuron.threshold))
            for n in (2 * C, 4 * C, C * k))

    def weights(self):
        w = lambda b: qweight(b).flatten(1)  # noqa: E731  (out, in)
        return (w(self.ext) if self.ext is not None else None, w(self.fb), w(self.l2), w(self.l3))

    def forward(self, steps: int, seed: int, images: torch.Tensor, ext=None,
                teacher=None, mix_p: float = 0.0, mix_seed: int = 0):
        """Run `steps` steps; returns (candidates (N, C*k, S), z (N, C, S)).

        ext: encoder spikes (N, ext, S), not delayed. teacher: z to feed back instead of the
        loop's own (the prior in training); with mix_p > 0, each fed-back spike comes from
        the loop's own sample with probability mix_p (FSVAE's scheduled sampling), drawn
        from the counter PRNG with `mix_seed`, so an image's draws do not depend on its batch.
        """
        n = images.shape[0]
        w_ext, w_fb, w2, w3 = self.weights()
        b1, b2, b3 = (quantize_bias(b) for b in self.biases)
        p = self.params
        dev = w_fb.device
        images = images.to(dev)
        zeros = lambda m: torch.zeros(n, m, device=dev)  # noqa: E731
        u = [zeros(2 * self.C), zeros(4 * self.C), zeros(self.C * self.k)]
        v = [x.clone() for x in u]
        s1, s2, z_in = zeros(2 * self.C), zeros(4 * self.C), zeros(self.C)
        e_prev = zeros(w_ext.shape[1]) if w_ext is not None else None
        latents = torch.arange(self.C, device=dev)
        cands, zs = [], []
        for t in range(steps):
            if t == 0:   # image boundary: every layer ignores its input
                a1, a2, a3 = zeros(2 * self.C), zeros(4 * self.C), zeros(self.C * self.k)
            else:
                a1 = F.linear(z_in, w_fb)
                if w_ext is not None:
                    a1 = a1 + F.linear(e_prev, w_ext)
                a2, a3 = F.linear(s1, w2), F.linear(s2, w3)
            s1n, u[0], v[0] = cuba_step(a1, u[0], v[0], b1, p)
            s2n, u[1], v[1] = cuba_step(a2, u[1], v[1], b2, p)
            c, u[2], v[2] = cuba_step(a3, u[2], v[2], b3, p)
            z = sampling.pick(c, self.k, seed, images, t)
            s1, s2 = s1n, s2n
            if teacher is None:
                z_in = z
            elif mix_p > 0:
                draw = prng.draw_torch(mix_seed, images[:, None], t, latents[None, :])
                own = (draw < int(mix_p * 2 ** 32)).to(z.dtype)
                z_in = own * z + (1 - own) * teacher[..., t]
            else:
                z_in = teacher[..., t]
            if w_ext is not None:
                e_prev = ext[..., t]
            cands.append(c)
            zs.append(z)
        return torch.stack(cands, -1), torch.stack(zs, -1)


def psp(x: torch.Tensor, tau_s: float = 2.0) -> torch.Tensor:
    """FSVAE's post-synaptic potential filter over the last axis: y += (x - y) / tau_s."""
    out, y = [], torch.zeros_like(x[..., 0])
    for t in range(x.shape[-1]):
        y = y + (x[..., t] - y) / tau_s
        out.append(y)
    return torch.stack(out, -1)


def rbf_mmd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared MMD between two sample sets (N, D) with an RBF kernel of width sqrt(D)."""
    d = a.shape[1]
    k = lambda x, y: torch.exp(-torch.cdist(x, y).pow(2) / d)  # noqa: E731
    return k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()
