"""The `neurovae` command line: train, export, inspect and run spiking VAEs.

Each command parses its options and calls a library function (neurovae.train,
exporting, inference, verification, reports). User errors (missing data, bad files, bad
arguments) print one line `error: ...` and exit with code 2, before any long work starts.
SIGINT/SIGTERM print one line and exit with 128 + the signal number: training saves a
checkpoint first, a Lava run stops its runtime.
"""
from __future__ import annotations

import click

from .errors import EXIT_USER_ERROR, LIGHT_COMMANDS, OneLineErrors, user_errors
from .netfile import export, inspect
from .report import evaluate, profile
from .run import generate, reconstruct, verify
from .train import fit_prior, train

__all__ = ["main", "user_errors", "EXIT_USER_ERROR", "LIGHT_COMMANDS"]


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neurovae")
def main():
    """neurovae: spiking variational autoencoders from training to Lava and Loihi 2.

    \b
    Typical path:
      neurovae train --model fsvae --config mnist-small --out runs/demo
      neurovae export model.net          # the latest run under ./runs
      neurovae generate model.net -o samples.png
    """


for _command in (train, fit_prior, export, inspect, generate, reconstruct, verify, evaluate, profile):
    main.add_command(_command)
