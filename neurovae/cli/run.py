"""`neurovae generate`, `reconstruct` and `verify`: run a `.net` on a backend
(neurovae.inference) or compare the backends and the float model (neurovae.verification)."""
from __future__ import annotations

import sys

import click

from . import options as opt
from .errors import user_errors


@click.command()
@opt.netfile
@opt.count(64)
@opt.seed()
@opt.backend()
@opt.output("samples.png", "PNG grid of the samples.")
@opt.npy
@opt.timeout()
@user_errors
def generate(netfile, n, seed, backend, output, npy, timeout):
    """Generate images from the prior of a .net model (the spiking sampler and decoder)."""
    from ..inference import generate as run_generate
    res = run_generate(netfile, n, seed=seed, backend=backend, output=output, npy=npy,
                       timeout=timeout)
    click.echo(f"generated {n} images on {backend} in {res.seconds:.1f} s -> {res.output}")


@click.command()
@opt.netfile
@opt.dataset
@opt.count(16)
@opt.seed()
@opt.backend()
@opt.output("recon.png", "PNG: originals above their reconstructions.")
@opt.npy
@opt.timeout()
@user_errors
def reconstruct(netfile, dataset, data_dir, n, seed, backend, output, npy, timeout):
    """Reconstruct the first N test images through encoder, spiking sampler and decoder."""
    from ..inference import reconstruct as run_reconstruct
    res = run_reconstruct(netfile, n, seed=seed, backend=backend, output=output, npy=npy,
                          timeout=timeout, dataset=dataset, data_dir=data_dir)
    click.echo(f"reconstructed {res.n} images on {backend} in {res.seconds:.1f} s: "
               f"MSE {res.mse:.5f} -> {res.output}")


def _print_mode(res) -> None:
    from ..verification import IMAGE_TOLERANCE
    click.echo(f"{res.mode}: {res.n} images, seed {res.seed}, {res.n_steps} steps each")
    for cmp in res.comparisons:
        click.echo(f"  {cmp.name} vs lava-sim:")
        for stage, (count, diff) in cmp.stages.items():
            click.echo(f"    {stage:9} {count:9d} spikes  {diff:6d} mismatched")
        line = f"    {'images':9} {cmp.pixels:9d} pixels  {cmp.differ:6d} differ"
        if cmp.max_abs is not None:
            line += f" by more than {IMAGE_TOLERANCE:g} (max abs difference {cmp.max_abs:.2g})"
        click.echo(line)


@click.command()
@opt.netfile
@opt.count(4, "Images per mode (reconstruction and generation).")
@opt.seed()
@click.option("--mode", type=click.Choice(["both", "reconstruct", "generate"]), default="both",
              show_default=True)
@click.option("--checkpoint", type=click.Path(), default=None, metavar="RUN",
              help="Also run the trained float model of this run folder or checkpoint.pt on "
                   "the same inputs and seed: its latent spikes must equal lava-sim's, its "
                   "images agree within 1e-5.")
@opt.timeout("Applies to each lava-sim run.")
@user_errors
def verify(netfile, n, seed, mode, checkpoint, timeout):
    """Run lava-sim, the emulator and the reference (torch) on the same inputs and compare
    every spike and output pixel with lava-sim's; --checkpoint adds the float model.

    Prints per-stage mismatch counts; exits 1 on any mismatch.
    """
    from ..verification import IMAGE_TOLERANCE, verify as run_verify
    res = run_verify(netfile, n, seed=seed, mode=mode, timeout=timeout,
                     checkpoint=checkpoint, on_mode=_print_mode)
    if res.same_weights is False:
        click.echo(f"note: {checkpoint} quantizes to other weights than {netfile} holds; "
                   f"it is not the checkpoint the file was exported from")
    if not res.backends_ok:
        click.echo("MISMATCH: the backends do not agree spike for spike", err=True)
    if not res.float_ok:
        click.echo(f"MISMATCH: the float model of {checkpoint} does not give lava-sim's "
                   f"latent spikes and images", err=True)
    if not res.ok:
        sys.exit(1)
    click.echo("OK: lava-sim, the emulator and the reference agree spike for spike")
    if checkpoint is not None:
        click.echo(f"OK: the float model of {checkpoint} gives lava-sim's latent spikes; "
                   f"images within {IMAGE_TOLERANCE:g} (max abs difference "
                   f"{res.float_max_abs:.2g})")
