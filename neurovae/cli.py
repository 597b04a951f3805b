"""The `neurovae` command line: train, export, inspect and run spiking VAEs.

User errors (missing data, bad files, bad arguments) print one line and exit with code 2.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from .config import MODELS, PRESETS, ConfigError
from .errors import NeurovaeError

EXIT_USER_ERROR = 2


def user_errors(fn):
    """Turn the project's user-facing errors into one message and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .data import DatasetError
        try:
            return fn(*args, **kwargs)
        except (NeurovaeError, ConfigError, DatasetError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


def positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter("must be a positive integer")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="neurovae")
def main():
    """neurovae: spiking variational autoencoders from training to Lava and Loihi 2.

    \b
    Typical path:
      neurovae train --model fsvae --config mnist-small --out runs/demo
      neurovae export model.net          # the latest run under ./runs
      neurovae generate model.net -o samples.png
    """


@main.command()
@click.option("--model", type=click.Choice(MODELS), default="fsvae", show_default=True,
              help="fsvae / esvae (spiking) or the ANN baselines.")
@click.option("--config", "preset", type=click.Choice(sorted(PRESETS)), default="mnist-small",
              show_default=True, help="Named preset: paper settings per dataset, or the "
                                      "small CPU preset mnist-small.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default runs/<model>-<config>).")
@click.option("--epochs", type=int, callback=positive, help="Override the preset's epochs.")
@click.option("--batch-size", type=int, callback=positive, help="Override the batch size.")
@click.option("--seed", type=int, default=None, help="Seed: same seed, same weights.")
@click.option("--data-dir", type=click.Path(), default=None,
              help="Folder with dataset files (Fashion-MNIST IDX, CIFAR-10, CelebA, images).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any config field, e.g. --set T=16 --set lr=3e-3.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@click.option("--max-batches", type=int, callback=positive, hidden=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@user_errors
def train(model, preset, out, epochs, batch_size, seed, data_dir, overrides, resume,
          max_batches, quiet):
    """Train a model; writes checkpoint, metrics.jsonl and PNG grids each epoch."""
    from .config import make_config
    from .train import train as run_training
    extra = list(overrides)
    for key, val in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed),
                     ("data_dir", data_dir)):
        if val is not None:
            extra.append(f"{key}={val}")
    cfg = make_config(preset, model, extra)
    out = Path(out or f"runs/{model}-{preset}")
    last = run_training(cfg, out, resume=resume, progress=not quiet, max_batches=max_batches)
    terms = ", ".join(f"{k} {v:.4f}" for k, v in last.items()
                      if k in ("loss", "mse", "mmd", "kld", "test_mse"))
    click.echo(f"trained {model} ({preset}) for {last.get('epoch', 0)} epochs: {terms}")
    click.echo(f"run folder: {out} (checkpoint.pt, samples.png, reconstructions.png, loss.png)")


if __name__ == "__main__":
    main()
