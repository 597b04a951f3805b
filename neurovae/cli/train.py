"""`neurovae train`: parse the options, train (neurovae.train), print the summary."""
from __future__ import annotations

import click

from ..config import MODELS, PRESETS
from . import options as opt
from .errors import user_errors

TERMS = ("loss", "mse", "mmd", "kld", "test_mse", "accuracy")


@click.command()
@click.option("--model", type=click.Choice(MODELS), default="fsvae", show_default=True,
              help="fsvae / esvae (spiking) or the ANN baselines.")
@click.option("--config", "preset", type=click.Choice(sorted(PRESETS)), default="mnist-small",
              show_default=True, help="Named preset: paper settings per dataset (32x32), or "
                                      "the small 28x28 CPU presets mnist-small and "
                                      "fashion-mnist-small.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default runs/<model>-<config>).")
@click.option("--epochs", type=int, callback=opt.positive, help="Override the preset's epochs.")
@click.option("--batch-size", type=int, callback=opt.positive, help="Override the batch size.")
@opt.seed(help="Seed: same seed, same weights.")
@opt.data_dir()
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any config field, e.g. --set T=16 --set lr=3e-3.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.")
@opt.device()
@click.option("--max-batches", type=int, callback=opt.positive, hidden=True)
@opt.quiet
@user_errors
def train(model, preset, out, epochs, batch_size, seed, data_dir, overrides, resume, device,
          max_batches, quiet):
    """Train a model; writes checkpoint, metrics.jsonl and PNG grids each epoch.

    Ctrl-C (SIGINT) or SIGTERM ends the running batch, saves a checkpoint and exits;
    --resume continues from it to the weights an uninterrupted run reaches, on any
    --device.
    """
    from ..train import train_from_preset
    res = train_from_preset(model, preset, out, epochs=epochs, batch_size=batch_size,
                            seed=seed, data_dir=data_dir, overrides=overrides, resume=resume,
                            max_batches=max_batches, progress=not quiet, device=device)
    terms = ", ".join(f"{k} {v:.4f}" for k, v in res.last.items() if k in TERMS)
    click.echo(f"trained {model} ({preset}) for {res.last.get('epoch', 0)} epochs: {terms}")
    click.echo(f"run folder: {res.out} ({', '.join(res.files)})")


@click.command("fit-prior")
@click.argument("run", type=click.Path())
@click.option("--components", type=int, default=64, show_default=True, callback=opt.positive,
              help="Gaussians in the mixture (1: back to the paper's trained prior).")
@click.option("--images", type=int, default=None, callback=opt.positive,
              help="Fit to the first N training images (default: the run's prior_fit_images, "
                   "10,000 unless set).")
@user_errors
def fit_prior(run, components, images):
    """Fit a trained ESVAE's generation prior to its encoder's posterior, without training.

    RUN is a run folder or checkpoint; its checkpoint, config.json and samples.png are
    rewritten as training with --set prior_components=K would have left them. Export
    again afterwards: generation on every backend then draws from the new prior.
    """
    from ..prior_refit import refit_prior
    res = refit_prior(run, components, images)
    w = res["weights"]
    if components == 1:
        click.echo("generation draws from the prior trained with the model again (one Gaussian)")
    else:
        click.echo(f"fitted {len(w)} Gaussians to the posterior of {res['images']} training "
                   f"images ({int((w > 0).sum())} used; largest weight {float(w.max()):.3f})")
    click.echo(f"rewrote {res['checkpoint']} and {res['samples']}")
