"""The one clock: per-population phases, so that every image runs as on fresh hardware.

Each population has a hop h, its number of synaptic connections from the host's input
source. Its window for image n is the global steps [n*S + h, n*S + h + S), and a stock
LIFReset with reset_offset = 1 + h (mod S) zeroes it at the window's first step. A
feed-forward connection from hop h to hop h + 1 then delivers local step s at local step s:
inside its window a network is delay-free, as SLAYER blocks with ``delay_shift=False``.
Only the FSVAE feedback z -> L1 crosses windows: it arrives LOOP_LATENCY local steps later.

FSVAE: z has T steps [0, T); the host's selectors are withheld in the last LOOP_LATENCY
steps, so no spike of an image reaches the next image's loop. ESVAE: the encoder's spikes
of steps [0, T) give the rate; z is sampled at steps [T, 2T).
"""
from __future__ import annotations

from dataclasses import dataclass

CLOCK = "phase"         # the name checkpoints and .net files carry (older files: none)
LOOP_LATENCY = 4        # FSVAE loop z -> L1 -> L2 -> L3 -> AND -> z: four connections
MAX_SYNAPTIC_DELAY = 63 # Loihi 2's synaptic delays are 6-bit: ESVAE's window needs 2T-1


@dataclass(frozen=True)
class Clock:
    n_steps: int                 # local steps per population window, S
    latent_steps: int            # FSVAE: z may spike at steps [0, T)
    window_start: int = 0        # ESVAE: first step counted into the rate
    sample_start: int = 0        # ESVAE: first step of sampled spikes


def fsvae_clock(T: int) -> Clock:
    return Clock(n_steps=T + LOOP_LATENCY, latent_steps=T)


def esvae_clock(T: int) -> Clock:
    return Clock(n_steps=2 * T, latent_steps=T, window_start=0, sample_start=T)


def reset_offset(hop: int, steps: int) -> int:
    """LIFReset's reset_offset for a population `hop` connections from the input source
    (Lava's time_step is 1-based, so the window of image 0 starts at time_step 1 + hop)."""
    return (1 + hop) % steps
