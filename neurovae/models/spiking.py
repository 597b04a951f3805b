"""Spiking encoder, decoder, autoregressive loop and readout on the phase clock.

Time runs in local steps s = 0..S-1 of each population's window (`neurovae.hw.clock`,
docs/clock.md). Every population starts its window from zero state and takes its input,
and its bias, from step 0; within a window the network is delay-free: a layer's spikes at
step s reach the next layer at step s (lava-dl's blocks with ``delay_shift=False``). Only
FSVAE's feedback z -> L1 arrives LOOP_LATENCY steps later. The input layer is the first
conv, computed as a constant integer drive floor(image bytes x integer weights / 256)
fed into its neurons at every step. Tensors follow SLAYER: (N, C, H, W, T) and (N, C, T).
Every tensor made here is made on its input's device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from lava.lib.dl import slayer

from ..config import Config
from ..hw import sampling
from ..hw.clock import LOOP_LATENCY
from ..hw.neuron import WEIGHT_SCALE, NeuronParams
from ..neuron import cuba_step, quantize_bias
from .. import prng, spiking_block
from . import proxy_learning


def qweight(block) -> torch.Tensor:
    """Quantized float weight of a lava-dl block's synapse (lava-dl's 8-bit rule)."""
    return block.synapse.pre_hook_fx(block.synapse.weight)


def float_weight(block) -> torch.Tensor:
    """The block's float weight before the 8-bit rule: what export quantizes."""
    syn = block.synapse
    norm = getattr(syn, "norm", None)
    return syn.weight if norm is None else norm.normalized(syn.weight)


class WeightNorm(torch.nn.Module):
    """Weight normalization folded into the deployed weights: w = g * v / |v| per output
    channel, then lava-dl's 8-bit rule. Training runs on the quantized product, so the
    deployed integers are exactly the weights the model trained with."""

    def __init__(self, syn, quantize):
        super().__init__()
        self.quantize = quantize
        self.gain = torch.nn.Parameter(self._norm(syn.weight.detach()))

    @staticmethod
    def _norm(v: torch.Tensor) -> torch.Tensor:
        return v.flatten(1).norm(dim=1).clamp_min(1e-12)

    def normalized(self, v: torch.Tensor) -> torch.Tensor:
        scale = self.gain / self._norm(v)
        return v * scale.view(-1, *([1] * (v.dim() - 1)))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.quantize(self.normalized(v))


def _normalize(block, cfg: Config):
    """Give the block's synapse folded weight normalization when the config asks for it."""
    if cfg.weight_norm:
        syn = block.synapse
        syn.norm = WeightNorm(syn, syn.pre_hook_fx)
        syn.pre_hook_fx = syn.norm.forward
    return block


def _neuron(cfg: Config) -> dict:
    return cfg.neuron.slayer_params()


def input_drive(weight_q: torch.Tensor, x01: torch.Tensor, stride=2, padding=1) -> torch.Tensor:
    """First-layer drive: conv of the image (bytes/256) floored to the 1/64 grid
    (`hw.drive`: floor(conv(bytes, W) / 256)), with a straight-through gradient.

    The exact conv of bytes/256 and 8-bit weights lies on the 1/8192 grid; rounding to it
    first undoes any rounding of the conv's algorithm (a no-op where its sums are exact)."""
    z = F.conv2d(x01, weight_q[..., 0], stride=stride, padding=padding)
    exact = torch.round(z * DRIVE_GRID) / DRIVE_GRID
    return z + (torch.floor(exact * WEIGHT_SCALE) / WEIGHT_SCALE - z).detach()


DRIVE_GRID = 256 * 32   # image bytes / 256 times weights in multiples of 1/32


class SpikingEncoder(torch.nn.Module):
    """Input layer (integer drive) -> stride-2 conv blocks -> dense block to `out` neurons."""

    def __init__(self, cfg: Config, out: int):
        super().__init__()
        p, ws = _neuron(cfg), cfg.weight_scale
        chans = (cfg.channels,) + tuple(cfg.enc_channels)
        self.input = _normalize(slayer.block.cuba.Conv(
            p, chans[0], chans[1], 3, stride=2, padding=1, weight_scale=ws,
            delay_shift=False), cfg)
        self.convs = torch.nn.ModuleList(
            _normalize(slayer.block.cuba.Conv(dict(p), chans[i], chans[i + 1], 3, stride=2,
                                              padding=1, weight_scale=ws, delay_shift=False),
                       cfg)
            for i in range(1, len(chans) - 1))
        side = cfg.image_size // 2 ** len(cfg.enc_channels)
        self.dense = _normalize(slayer.block.cuba.Dense(
            dict(p), chans[-1] * side * side, out, weight_scale=ws, delay_shift=False), cfg)

    def forward(self, x01: torch.Tensor, steps: int) -> torch.Tensor:
        """Image (N, C, H, W) in bytes/256 -> output spikes (N, out, steps) of local steps
        0..steps-1: the drive acts from step 0, every layer within the step."""
        drive = input_drive(qweight(self.input), x01)
        series = drive.unsqueeze(-1).expand(*drive.shape, steps).contiguous()
        x = self.input.neuron(series)
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
        self.dense = _normalize(slayer.block.cuba.Dense(
            dict(p), cfg.latent, ch[0] * self.side ** 2, weight_scale=ws, delay_shift=False),
            cfg)
        self.ups = torch.nn.ModuleList(
            _normalize(slayer.block.cuba.ConvT(dict(p), ch[i], ch[i + 1], 4, stride=2,
                                               padding=1, weight_scale=ws, delay_shift=False),
                       cfg)
            for i in range(len(ch) - 1))
        # small initial output weights keep the readout out of tanh's flat tails; only
        # its synapse is used (the readout integrates its drive, `Readout`)
        self.final = _normalize(slayer.block.cuba.Conv(
            dict(p), ch[-1], cfg.channels, 3, padding=1, weight_scale=0.5,
            delay_shift=False), cfg)
        self.readout = Readout(cfg.readout_neuron, cfg.channels)
        self.train_grad, self.neuron_params = cfg.backward, cfg.neuron

    def for_loss(self, z: torch.Tensor, silent: int = 0) -> torch.Tensor:
        """`self(z, silent)` as training differentiates it: the same image, its gradient
        lava-dl's surrogate or, with `backward=proxy`, the rate network's (proxy_learning)."""
        if self.train_grad == "proxy":
            return proxy_learning.decoder(self, z, silent, self.neuron_params)
        return self(z, silent)

    def forward(self, z: torch.Tensor, silent: int = 0) -> torch.Tensor:
        """Latent spikes (N, C, S) -> image in [-1, 1], (N, channels, H, W): every layer and
        the readout take step s's spikes at step s; the readout is read at step S-1.

        `silent`: z carries no spike before this step (ESVAE's sampling window). Those
        steps are skipped, exactly: with no input and no bias the blocks' neurons stay at
        rest and emit nothing; the readout still integrates its bias over every step.
        """
        steps = z.shape[-1]
        x = self.grid(spiking_block.block(self.dense, z[..., silent:]))
        for block in self.ups:
            x = spiking_block.block(block, x)
        return self.readout(self.final.synapse, x, steps)

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """The dense layer's output (N, ch0 * side * side, ...) as its feature map
        (N, ch0, side, side, ...): what the first ConvT reads."""
        return x.reshape(x.shape[0], self.ch0, self.side, self.side, *x.shape[2:])


class Readout(torch.nn.Module):
    """Non-spiking leaky integrator read after the last step, then tanh.

    out = tanh(sum_t (x_t + b) * 0.8**(S-1-t)) with Loihi's integer decay, x_t the final
    synapse's drive of the last decoder layer's spikes at the same step t (delay-free) and
    the bias b acting from step 0; on Lava a LIF that never fires (current decay 4096,
    voltage decay `v_decay`, bias b per channel), its voltage read at step S-1.
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

    Stepped one local step at a time, as on Lava's phase clock: L1, L2 and L3 take their
    input within the step (delay-free), z[s] = pick(c[s]) (`sampling.pick`), and the loop
    z -> L1 -> L2 -> L3 -> AND -> z closes after LOOP_LATENCY = 4 connections: L1 at step s
    receives W_fb z[s - 4] (nothing for s < 4). `ext` (posterior only) is the encoder
    output E, entering L1 at the same step through its own connection (Lava sums both into
    one port). Biases act from step 0. The loop runs the T latent steps only: z is silent
    in the window's last 4 steps and nothing in them reaches z.
    """

    def __init__(self, cfg: Config, ext: int = 0):
        super().__init__()
        p, ws, C, k = _neuron(cfg), cfg.weight_scale, cfg.latent, cfg.k
        self.params, self.C, self.k = cfg.neuron, C, k
        dense = lambda n_in, n_out: _normalize(  # noqa: E731
            slayer.block.cuba.Dense(dict(p), n_in, n_out, weight_scale=ws), cfg)
        self.ext = dense(ext, 2 * C) if ext else None
        self.fb = dense(C, 2 * C)
        self.l2 = dense(2 * C, 4 * C)
        self.l3 = dense(4 * C, C * k)
        self.biases = torch.nn.ParameterList(
            torch.nn.Parameter(torch.full((n,), 0.5 * cfg.neuron.threshold))
            for n in (2 * C, 4 * C, C * k))

    def weights(self):
        w = lambda b: qweight(b).flatten(1)  # noqa: E731  (out, in)
        return (w(self.ext) if self.ext is not None else None, w(self.fb), w(self.l2), w(self.l3))

    def forward(self, steps: int, seed: int, images: torch.Tensor, ext=None,
                teacher=None, mix_p: float = 0.0, mix_seed: int = 0):
        """Run local steps 0..steps-1 (the latent steps, T); returns (candidates
        (N, C*k, steps), z (N, C, steps)).

        ext: encoder spikes (N, ext, >= steps), E[s] entering L1 at step s. teacher: z to
        feed back instead of the loop's own (the prior in training); with mix_p > 0, each
        fed-back spike comes from the loop's own sample with probability mix_p (FSVAE's
        scheduled sampling), drawn from the counter PRNG with `mix_seed`, so an image's
        draws do not depend on its batch.
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
        latents = torch.arange(self.C, device=dev)
        cands, zs, fed = [], [], []
        for t in range(steps):
            # nothing is fed back before step LOOP_LATENCY
            a1 = F.linear(fed[t - LOOP_LATENCY] if t >= LOOP_LATENCY else zeros(self.C), w_fb)
            if w_ext is not None:
                a1 = a1 + F.linear(ext[..., t], w_ext)
            s1, u[0], v[0] = cuba_step(a1, u[0], v[0], b1, p)
            s2, u[1], v[1] = cuba_step(F.linear(s1, w2), u[1], v[1], b2, p)
            c, u[2], v[2] = cuba_step(F.linear(s2, w3), u[2], v[2], b3, p)
            z = sampling.pick(c, self.k, seed, images, t)
            if teacher is None:
                fed.append(z)
            elif mix_p > 0:
                draw = prng.draw_torch(mix_seed, images[:, None], t, latents[None, :])
                own = (draw < int(mix_p * 2 ** 32)).to(z.dtype)
                fed.append(own * z + (1 - own) * teacher[..., t])
            else:
                fed.append(teacher[..., t])
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
