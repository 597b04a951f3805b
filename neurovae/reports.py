"""`neurovae evaluate` and `neurovae profile` without the command line: a model's quality
report (MSE, FID, AE-FD, classifier IS) and its hardware cost report."""
from __future__ import annotations

from .errors import NeurovaeError
from .outputs import check_output, write_json


def quality_report(netfile=None, checkpoints=(), *, dataset=None, data_dir=None,
                   backend="emulator", n=1000, seed=0, ae=None, classifier=None,
                   json_out=None, samples=None, progress=True, on_start=None,
                   recon_fid=False) -> dict:
    """Evaluate a `.net` on `backend` and/or float checkpoints on the first n test images
    and n generated ones; writes `json_out` and the `samples` grid when given.

    Returns {"dataset", "n", "backend", "seed", "results": [one dict per model]}, the
    first model's generated images under results[0]["samples"] (not written to the JSON).
    `recon_fid` adds each model's reconstruction FID (:func:`neurovae.evaluate.evaluate`).
    `on_start(line)` is told what is evaluated once everything is loaded.
    """
    from . import checkpoint, evaluate as ev
    from .export import load
    from .metrics import aefd
    from .model_data import test_set
    if not netfile and not checkpoints:
        raise NeurovaeError("nothing to evaluate: give a .net file and/or --checkpoint RUN")
    for path in (json_out, samples):
        if path:
            check_output(path)
    subjects, shape, cfg = [], None, None
    if netfile:
        net = load(netfile)
        shape, cfg = tuple(net.image_shape), net.config
        subjects.append(ev.deployed(net, backend, seed, progress=progress))
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
    test = test_set(cfg, shape, dataset, data_dir)
    ae_model = aefd.load_autoencoder(ae, channels=channels, image_size=size,
                                     dataset=dataset) if ae else None
    clf = ev.load_classifier(classifier) if classifier else None
    n = min(n, len(test))
    if on_start:
        on_start(f"evaluating on {n} {dataset} test images ...")
    ref = ev.fid_reference(test, dataset, n, data_dir, size, channels, progress=progress)
    results = [ev.evaluate(s, test, n, ae_model, clf, ref, progress=progress,
                           recon_fid=recon_fid) for s in subjects]
    report = {"dataset": dataset, "n": n, "backend": backend, "seed": seed,
              "results": results}
    if samples and "samples" in results[0]:
        from .plots import save_grid
        save_grid(results[0]["samples"].float(), samples)
    if json_out:
        write_json(dict(report, results=[{k: v for k, v in r.items() if k != "samples"}
                                         for r in results]), json_out)
    return report


def cost_report(netfile, n=16, *, mode="reconstruct", backend="emulator", seed=0,
                dataset=None, data_dir=None, json_out="profile.json",
                chart="profile.png") -> dict:
    """Run n images through a `.net` (`mode` reconstruct or generate), count its spikes
    and return the cost profile (neurovae.profile); writes it as JSON and a bar chart."""
    from .export import load
    from .loihi_runtime import run
    from .model_data import test_images
    from .profile import profile, save_chart
    for path in (json_out, chart):
        check_output(path)
    net = load(netfile)
    x = test_images(net, n, dataset, data_dir) if mode == "reconstruct" else None
    _, records = run(net, backend, x_bytes=x, n=n, seed=seed, record=True)
    report = profile(net, records, n if x is None else len(x), x_bytes=x)
    write_json(report, json_out)
    save_chart(report, chart)
    return report
