"""`neurovae export` and `neurovae inspect`: write a `.net` file from a run, describe one.

inspect is light: it reads the file without importing lava-dl (see errors.LIGHT_COMMANDS).
"""
from __future__ import annotations

import click

from . import options as opt
from .errors import user_errors

STAGES = ["encoder", "posterior", "prior", "decoder", "readout"]


@click.command()
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--from", "source", type=click.Path(), default=None,
              help="Run folder or checkpoint (default: the latest run under ./runs).")
@click.option("--stage", type=click.Choice(STAGES), default=None,
              help="Write only this stage, as a standalone lava-dl netx network.")
@click.option("--format", "fmt", type=click.Choice(["net", "nir"]), default="net",
              show_default=True, help="net: HDF5 for Lava; nir: the stages NIR expresses.")
@opt.seed(0, "PRNG seed stored in the file (default seed of generation runs).")
@user_errors
def export(output, source, stage, fmt, seed):
    """Export a trained spiking VAE to one HDF5 network description (OUTPUT, e.g. model.net).

    Folds and quantizes the model exactly as it runs on Loihi 2 and reports the
    reconstruction MSE of the float model beside the deployed (fixed-point) model.
    """
    from ..exporting import export_model
    res = export_model(output, source, stage=stage, fmt=fmt, seed=seed, on_start=click.echo)
    if fmt == "nir":
        names = ", ".join(item.split(":")[0] for item in res.not_expressible)
        click.echo(f"wrote {output} (NIR graph of the expressible stages)")
        click.echo(f"not expressible in NIR 1.0, left out (reasons in the file's metadata): "
                   f"{names}")
    elif stage:
        click.echo(f"wrote stage '{stage}' as a netx network: {output}")
    else:
        click.echo(f"wrote {output}: {res.size / 1024:.1f} KiB in {res.seconds:.2f} s")
        click.echo(f"reconstruction MSE on {res.n_images} test images: float "
                   f"{res.float_mse:.5f}, deployed fixed-point {res.deploy_mse:.5f} "
                   f"({res.mse_change:+.2f}%)")


@click.command()
@opt.netfile
@click.option("--hardware", is_flag=True,
              help="List every process of the Lava graph generate/reconstruct build: its "
                   "Lava class, placement (neuro-core, host-io or host, with the reason), "
                   "neurons, synapses and host<->chip bits per step and per image.")
@click.option("--mode", type=click.Choice(["reconstruct", "generate"]), default="reconstruct",
              show_default=True, help="With --hardware: which run's graph.")
@opt.json_out(None, "With --hardware: also write the report as JSON to this file.")
@user_errors
def inspect(netfile, hardware, mode, json_out):
    """Summarize a .net file: stages, layers, shapes, neurons, synapses, weight bits;
    with --hardware, what of its Lava graph runs where."""
    from ..export import load
    if json_out and not hardware:
        raise click.UsageError("--json goes with --hardware")
    if json_out:
        from ..outputs import check_output
        check_output(json_out)
    net = load(netfile)
    if not hardware:
        from ..export.inspect import summary
        click.echo(summary(net, netfile))
        return
    from ..loihi_runtime.hardware_report import describe, format_report
    report = describe(net, mode)
    if json_out:
        from ..outputs import write_json
        write_json(report, json_out)
    click.echo(format_report(report))
