"""The `neurovae` command line: train, export, inspect and run spiking VAEs.

User errors (missing data, bad files, bad arguments) print one line `error: ...` and exit
with code 2, before any long work starts. SIGINT/SIGTERM print one line and exit with
128 + the signal number: training saves a checkpoint first, a Lava run stops its runtime.
"""
from __future__ import annotations

import contextlib
import functools
import io
import signal
import sys
from pathlib import Path

import click

from .config import MODELS, PRESETS, ConfigError
from .errors import NeurovaeError
from .loihi_runtime.backends import BACKENDS

EXIT_USER_ERROR = 2
LIGHT_COMMANDS = ("inspect",)   # commands that never import lava-dl (see _quiet_imports)


def user_errors(fn):
    """Turn the project's user-facing errors into one message and exit code 2, and a
    SIGINT/SIGTERM into one line and exit code 128 + signal."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .data import DatasetError
        if fn.__name__ not in LIGHT_COMMANDS:
            _quiet_imports()
        try:
            return fn(*args, **kwargs)
        except (NeurovaeError, ConfigError, DatasetError, _net_error()) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            detail = str(exc) if hasattr(exc, "signum") else "SIGINT: stopped"
            click.echo(f"interrupted: {detail}", err=True)
            sys.exit(128 + signum)
    return wrapper


def _net_error():
    from .export import NetFormatError
    return NetFormatError


def positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter("must be a positive integer")
    return value


def positive_seconds(ctx, param, value):
    if value is not None and not value > 0:
        raise click.BadParameter("must be a positive number of seconds")
    return value


def _quiet_imports():
    """Import lava-dl with its import-time chatter (a Prophesee toolbox notice on stdout,
    torch's CUDA_HOME note on stderr) swallowed, so a command's output is only its own.
    Every command but LIGHT_COMMANDS imports lava-dl anyway (models, emulator, Lava)."""
    if "lava.lib.dl.slayer" in sys.modules:
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with contextlib.suppress(ImportError):
            import lava.lib.dl.slayer  # noqa: F401


class _Main(click.Group):
    """Click usage errors as one line, `error: ... (see 'neurovae CMD --help')`, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            click.echo(f"error: {exc.format_message().rstrip('.')}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(128 + signal.SIGINT)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
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
    """Train a model; writes checkpoint, metrics.jsonl and PNG grids each epoch.

    Ctrl-C (SIGINT) or SIGTERM ends the running batch, saves a checkpoint and exits;
    --resume continues from it to the weights an uninterrupted run reaches.
    """
    from .config import make_config
    extra = list(overrides)
    for key, val in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed),
                     ("data_dir", data_dir)):
        if val is not None:
            extra.append(f"{key}={val}")
    cfg = make_config(preset, model, extra)
    _check_dataset(cfg.dataset, cfg.data_dir)
    if cfg.dataset == "folder" and not any(o.split("=", 1)[0].strip().replace("-", "_")
                                           == "image_size" for o in overrides):
        _check_folder_sizes(cfg.data_dir)
    from .train import train as run_training
    out = Path(out or f"runs/{model}-{preset}")
    last = run_training(cfg, out, resume=resume, progress=not quiet, max_batches=max_batches)
    terms = ", ".join(f"{k} {v:.4f}" for k, v in last.items()
                      if k in ("loss", "mse", "mmd", "kld", "test_mse", "accuracy"))
    click.echo(f"trained {model} ({preset}) for {last.get('epoch', 0)} epochs: {terms}")
    files = [f for f in ("checkpoint.pt", "samples.png", "reconstructions.png", "loss.png")
             if (out / f).exists()]
    click.echo(f"run folder: {out} ({', '.join(files)})")


def _check_dataset(name, data_dir=None):
    from .data import DATASETS
    if name not in DATASETS:
        raise NeurovaeError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise NeurovaeError(f"--data-dir {data_dir} does not exist or is not a folder")


def _check_folder_sizes(data_dir):
    """An image folder of mixed sizes would be silently resized: ask for the size instead."""
    from . import data
    root = data._folder_root(data_dir)
    files = data._folder_files(root)            # refuses non-image files
    sizes = {}
    for f in files:
        sizes.setdefault(data._header_size(f), f)
        if len(sizes) > 1:
            (a, fa), (b, fb) = list(sizes.items())[:2]
            raise NeurovaeError(
                f"images in {root} differ in size ({fa.name} is {a[0]}x{a[1]}, {fb.name} is "
                f"{b[0]}x{b[1]}); pass --set image_size=N to resize them all to N x N")


def _latest_run() -> Path:
    from .errors import CheckpointError
    runs = sorted(Path("runs").glob("*/checkpoint.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise CheckpointError("no trained run under ./runs; train one with 'neurovae train' "
                              "or pass --from RUN_DIR")
    return runs[-1].parent


def _load_net(path):
    from .export import load
    return load(path)


@main.command()
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--from", "source", type=click.Path(), default=None,
              help="Run folder or checkpoint (default: the latest run under ./runs).")
@click.option("--stage", type=click.Choice(["encoder", "posterior", "prior", "decoder",
                                            "readout"]), default=None,
              help="Write only this stage, as a standalone lava-dl netx network.")
@click.option("--format", "fmt", type=click.Choice(["net", "nir"]), default="net",
              show_default=True, help="net: HDF5 for Lava; nir: the stages NIR expresses.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="PRNG seed stored in the file (default seed of generation runs).")
@user_errors
def export(output, source, stage, fmt, seed):
    """Export a trained spiking VAE to one HDF5 network description (OUTPUT, e.g. model.net).

    Folds and quantizes the model exactly as it runs on Loihi 2 and reports the
    reconstruction MSE of the float model beside the deployed (fixed-point) model.
    """
    import time
    _check_output(output)
    from . import checkpoint, data, deploy
    from .emulator import Emulator
    from .errors import CheckpointError
    src = Path(source) if source else _latest_run()
    model, state = checkpoint.load_model(src)
    if model.kind not in ("fsvae", "esvae"):
        raise CheckpointError(f"{src} holds an {model.kind} model; only the spiking models "
                              f"(fsvae, esvae) deploy to Lava")
    click.echo(f"exporting {model.kind} from {src} ({checkpoint.describe(state)})")
    t0 = time.time()
    net = deploy.from_model(model, seed=seed)
    if fmt == "nir":
        from .export.nir_export import write_nir
        skipped = write_nir(net, output)
        names = ", ".join(item.split(":")[0] for item in skipped)
        click.echo(f"wrote {output} (NIR graph of the expressible stages)")
        click.echo(f"not expressible in NIR 1.0, left out (reasons in the file's metadata): {names}")
        return
    if stage:
        from .export import write_stage
        write_stage(net, stage, output)
        click.echo(f"wrote stage '{stage}' as a netx network: {output}")
        return
    from .export import write
    write(net, output)
    seconds = time.time() - t0
    cfg = model.cfg
    test = data.load_images(cfg.dataset, "test", cfg.data_dir, cfg.image_size, cfg.channels)
    x = test.tensor(__import__("torch").arange(min(64, len(test))))
    target = x.double() / 127.5 - 1
    float_mse = float(((model.reconstruct(x, seed=seed).double() - target) ** 2).mean())
    deploy_img, _ = Emulator(net).run(x, len(x), seed)
    deploy_mse = float(((deploy_img - target) ** 2).mean())
    size = Path(output).stat().st_size
    click.echo(f"wrote {output}: {size / 1024:.1f} KiB in {seconds:.2f} s")
    click.echo(f"reconstruction MSE on {len(x)} test images: float {float_mse:.5f}, "
               f"deployed fixed-point {deploy_mse:.5f} "
               f"({100 * (deploy_mse - float_mse) / max(float_mse, 1e-12):+.2f}%)")


@main.command()
@click.argument("netfile", type=click.Path())
@user_errors
def inspect(netfile):
    """Summarize a .net file: stages, layers, shapes, neurons, synapses, weight bits."""
    from .export.inspect import summary
    click.echo(summary(_load_net(netfile), netfile))


BACKEND_HELP = ("lava-sim: Lava's CPU simulator (fixed_pt); loihi2: Loihi 2 through Intel's "
                "Lava extension; emulator: the same fixed-point graph as batched tensor code "
                "(fast); torch: the step-by-step reference. All give the same spikes.")
TIMEOUT_HELP = ("Stop a Lava run (lava-sim, loihi2) that takes longer than this, compile "
                "included: its processes are ended and nothing is written.")


def _check_output(path):
    """The output path as a Path, or a NeurovaeError if it cannot be written (checked
    before any work, with a probe file: permission bits say nothing for root)."""
    from .fileio import unwritable_reason
    out = Path(path)
    if out.is_dir():
        raise NeurovaeError(f"cannot write {out}: it is a folder; give a file name")
    reason = unwritable_reason(out.parent)
    if reason:
        raise NeurovaeError(f"cannot write {out}: {reason}; choose another output path")
    return out


def _save_npy(array, path):
    import numpy as np
    from .fileio import atomic_path
    with atomic_path(path, ".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


@main.command()
@click.argument("netfile", type=click.Path())
@click.option("-n", "n", type=int, default=64, show_default=True, callback=positive,
              help="Number of images.")
@click.option("--seed", type=int, default=None, help="PRNG seed (default: the file's).")
@click.option("--backend", type=click.Choice(BACKENDS), default="lava-sim",
              show_default=True, help=BACKEND_HELP)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="samples.png",
              show_default=True, help="PNG grid of the samples.")
@click.option("--npy", type=click.Path(dir_okay=False), default=None,
              help="Also save the images (n, C, H, W) in [-1, 1] as .npy.")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              callback=positive_seconds, help=TIMEOUT_HELP)
@user_errors
def generate(netfile, n, seed, backend, output, npy, timeout):
    """Generate images from the prior of a .net model (the spiking sampler and decoder)."""
    import time
    out = _check_output(output)
    if npy:
        _check_output(npy)
    net = _load_net(netfile)
    from . import plots
    from .loihi_runtime import run
    seed = net.seed if seed is None else seed
    t0 = time.time()
    images, _ = run(net, backend, n=n, seed=seed, progress=True, timeout=timeout)
    plots.save_grid(images.float(), out)
    if npy:
        _save_npy(images.numpy(), npy)
    click.echo(f"generated {n} images on {backend} in {time.time() - t0:.1f} s -> {out}")


@main.command()
@click.argument("netfile", type=click.Path())
@click.option("--dataset", default=None, help="Dataset of the images (default: the model's).")
@click.option("--data-dir", type=click.Path(), default=None)
@click.option("-n", "n", type=int, default=16, show_default=True, callback=positive)
@click.option("--seed", type=int, default=None, help="PRNG seed (default: the file's).")
@click.option("--backend", type=click.Choice(BACKENDS), default="lava-sim",
              show_default=True, help=BACKEND_HELP)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="recon.png",
              show_default=True, help="PNG: originals above their reconstructions.")
@click.option("--npy", type=click.Path(dir_okay=False), default=None,
              help="Also save the reconstructions (n, C, H, W) in [-1, 1] as .npy.")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              callback=positive_seconds, help=TIMEOUT_HELP)
@user_errors
def reconstruct(netfile, dataset, data_dir, n, seed, backend, output, npy, timeout):
    """Reconstruct the first N test images through encoder, spiking sampler and decoder."""
    import time
    out = _check_output(output)
    if npy:
        _check_output(npy)
    if dataset is not None or data_dir is not None:
        _check_dataset(dataset or "mnist", data_dir)
    net = _load_net(netfile)
    import torch
    from . import data, plots
    from .loihi_runtime import run
    seed = net.seed if seed is None else seed
    cfg = net.config
    c, h, _ = net.image_shape
    test = data.load_images(dataset or cfg.get("dataset", "mnist"), "test",
                            data_dir or cfg.get("data_dir"), h, c)
    x = test.tensor(torch.arange(min(n, len(test))))
    t0 = time.time()
    images, _ = run(net, backend, x_bytes=x, seed=seed, progress=True, timeout=timeout)
    target = x.double() / 127.5 - 1
    mse = float(((images - target) ** 2).mean())
    plots.save_pairs(target.float(), images.float(), out)
    if npy:
        _save_npy(images.numpy(), npy)
    click.echo(f"reconstructed {len(x)} images on {backend} in {time.time() - t0:.1f} s: "
               f"MSE {mse:.5f} -> {out}")


@main.command()
@click.argument("netfile", type=click.Path())
@click.option("-n", "n", type=int, default=4, show_default=True, callback=positive,
              help="Images per mode (reconstruction and generation).")
@click.option("--seed", type=int, default=None, help="PRNG seed (default: the file's).")
@click.option("--mode", type=click.Choice(["both", "reconstruct", "generate"]), default="both",
              show_default=True)
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              callback=positive_seconds, help=TIMEOUT_HELP + " Applies to each lava-sim run.")
@user_errors
def verify(netfile, n, seed, mode, timeout):
    """Run lava-sim, the emulator and the torch reference on the same inputs and compare
    every spike and output pixel with lava-sim's.

    Prints per-stage mismatch counts; exits 1 on any mismatch.
    """
    net = _load_net(netfile)
    import torch
    from . import data
    from .loihi_runtime import run
    seed = net.seed if seed is None else seed
    cfg = net.config
    c, h, _ = net.image_shape
    modes = ["reconstruct", "generate"] if mode == "both" else [mode]
    bad = 0
    for m in modes:
        x = None
        if m == "reconstruct":
            test = data.load_images(cfg.get("dataset", "mnist"), "test", cfg.get("data_dir"),
                                    h, c)
            x = test.tensor(torch.arange(min(n, len(test))))
        got, rec_got = run(net, "lava-sim", x_bytes=x, n=n, seed=seed, record=True,
                           progress=True, timeout=timeout)
        click.echo(f"{m}: {n} images, seed {seed}, {net.n_steps} steps each")
        for backend in ("emulator", "torch"):
            ref, rec_ref = run(net, backend, x_bytes=x, n=n, seed=seed, record=True)
            stages: dict[str, list[int]] = {}
            for name, spikes in rec_got.items():
                other = rec_ref.get(name)
                diff = -1 if other is None or other.shape != spikes.shape else int((other != spikes).sum())
                stage = stages.setdefault(name.split("/")[0], [0, 0])
                stage[0] += int(spikes.sum())
                stage[1] += diff if diff >= 0 else 10 ** 9
                bad += diff != 0
            pix = int((ref != got).sum())
            bad += pix != 0
            click.echo(f"  {backend} vs lava-sim:")
            for stage, (count, diff) in stages.items():
                click.echo(f"    {stage:9} {count:9d} spikes  {diff:6d} mismatched")
            click.echo(f"    {'images':9} {ref.numel():9d} pixels  {pix:6d} differ")
    if bad:
        click.echo("MISMATCH: the backends do not agree spike for spike", err=True)
        sys.exit(1)
    click.echo("OK: lava-sim, the emulator and the torch reference agree spike for spike")


from . import cli_eval  # noqa: E402
cli_eval.register(main, user_errors, positive, _check_output)

if __name__ == "__main__":
    main()
