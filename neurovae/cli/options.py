"""Options several commands share, each defined once: -n, --seed, --backend, -o/--output,
--npy, --timeout, --dataset/--data-dir, --json, --quiet, --device, and their checks."""
from __future__ import annotations

import click

from ..loihi_runtime.backends import BACKEND_CHOICES

BACKEND_HELP = (
    "lava-sim: Lava's CPU simulator running the Lava processes; loihi2: Loihi 2 (needs "
    "Intel's Loihi extension for Lava); emulator: batched fixed-point tensor simulator "
    "(neurovae/sim/emulator.py, fast); reference: step-by-step fixed-point tensor reference "
    "(neurovae/sim/reference.py; torch is an alias). All give the same spikes.")
TIMEOUT_HELP = ("Stop a Lava run (lava-sim, loihi2) that takes longer than this, compile "
                "included: its processes are ended and nothing is written.")
DATA_DIR_HELP = "Folder with dataset files (Fashion-MNIST IDX, CIFAR-10, CelebA, images)."


def positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter("must be a positive integer")
    return value


def positive_seconds(ctx, param, value):
    if value is not None and not value > 0:
        raise click.BadParameter("must be a positive number of seconds")
    return value


netfile = click.argument("netfile", type=click.Path())


def count(default: int, help: str = "Number of images."):
    """-n: how many images a command runs."""
    return click.option("-n", "n", type=int, default=default, show_default=True,
                        callback=positive, help=help)


def seed(default: int | None = None, help: str | None = None):
    """--seed; without a default the command uses the seed stored in the .net file."""
    if help is None:
        help = "PRNG seed (default: the file's)." if default is None else "Sampling seed."
    return click.option("--seed", type=int, default=default, show_default=default is not None,
                        help=help)


def backend(default: str = "lava-sim", purpose: str = ""):
    """--backend: where a .net runs."""
    return click.option("--backend", type=click.Choice(BACKEND_CHOICES), default=default,
                        show_default=True, help=f"{purpose} {BACKEND_HELP}".strip())


def output(default: str, help: str):
    """-o/--output: the PNG a command writes."""
    return click.option("-o", "--output", type=click.Path(dir_okay=False), default=default,
                        show_default=True, help=help)


npy = click.option("--npy", type=click.Path(dir_okay=False), default=None,
                   help="Also save the output images (n, C, H, W) in [-1, 1] as .npy.")


def timeout(extra: str = ""):
    """--timeout SECONDS for the Lava backends."""
    return click.option("--timeout", type=float, default=None, metavar="SECONDS",
                        callback=positive_seconds, help=f"{TIMEOUT_HELP} {extra}".strip())


def data_dir(help: str = DATA_DIR_HELP):
    return click.option("--data-dir", type=click.Path(), default=None, help=help)


def dataset(fn):
    """--dataset and --data-dir of the test images a command runs a model on."""
    fn = data_dir(DATA_DIR_HELP.rstrip(".") + "; default: the model's, for its own "
                  "dataset.")(fn)
    return click.option("--dataset", default=None,
                        help="Test set (default: the model's training set).")(fn)


def json_out(default: str | None, help: str):
    return click.option("--json", "json_out", type=click.Path(dir_okay=False),
                        default=default, show_default=default is not None, help=help)


quiet = click.option("--quiet", is_flag=True, help="No progress output.")


DEVICE_HELP = ("Where to train: auto (CUDA when available, else the CPU), cpu, cuda or cuda:N. "
               "Under torchrun each rank takes cuda:LOCAL_RANK. Spikes are the same on every "
               "device.")


def device(help: str = DEVICE_HELP):
    """--device: the torch device a command computes on (checked by neurovae.devices)."""
    return click.option("--device", default="auto", show_default=True, metavar="DEVICE",
                        help=help)
