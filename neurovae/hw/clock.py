"""The one clock: how many hardware steps an image takes and when each phase happens.

Every synaptic layer adds one step. FSVAE: z carries image information once the encoder's
layers and the loop's three layers have passed. ESVAE: the encoder's spikes are counted for
T steps, then the sampler emits T steps of spikes. The decoder's layers follow.
"""
from __future__ import annotations

from dataclasses import dataclass

LOOP_LATENCY = 3        # FSVAE loop z -> L1 -> L2 -> L3 -> pick -> z: three Dense hops


@dataclass(frozen=True)
class Clock:
    n_steps: int                 # hardware steps per image
    latent_start: int = 0        # FSVAE: first step z can depend on the image
    window_start: int = 0        # ESVAE: first step counted into the rate
    sample_start: int = 0        # ESVAE: first step of sampled spikes


def fsvae_clock(encoder_depth: int, decoder_depth: int, T: int) -> Clock:
    start = encoder_depth + LOOP_LATENCY
    return Clock(n_steps=start + T + decoder_depth, latent_start=start)


def esvae_clock(encoder_depth: int, decoder_depth: int, T: int) -> Clock:
    w = encoder_depth
    return Clock(n_steps=w + 2 * T + decoder_depth, window_start=w, sample_start=w + T)
