"""`neurovae verify` without the command line: run a `.net` on lava-sim, the emulator and
the reference on the same inputs and seed and count every spike and pixel that differs;
optionally also the trained float model, which must give lava-sim's latent spikes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import NeurovaeError

MODES = ("reconstruct", "generate")
# tensor backends compared with lava-sim: (label printed, backend run)
TENSOR_REFERENCES = (("emulator", "emulator"), ("reference", "reference"))
FLOAT_LABEL = "float model"
# the float model's tanh runs in float32, the deployed readout's in float64 from integers
IMAGE_TOLERANCE = 1e-5
MISSING = 10 ** 9       # counted as the mismatches of a population one side did not record


@dataclass
class Comparison:
    """One run against lava-sim: per stage [spikes compared, mismatched], and pixels."""

    name: str
    stages: dict = field(default_factory=dict)
    pixels: int = 0
    differ: int = 0
    max_abs: float | None = None    # the float model: largest pixel difference

    @property
    def spike_mismatches(self) -> int:
        return sum(diff for _, diff in self.stages.values())

    @property
    def ok(self) -> bool:
        return self.spike_mismatches == 0 and self.differ == 0


@dataclass
class ModeResult:
    """Every comparison of one mode (reconstruct or generate)."""

    mode: str
    n: int
    seed: int
    n_steps: int
    comparisons: list = field(default_factory=list)


@dataclass
class VerifyResult:
    modes: list = field(default_factory=list)
    checkpoint: str | None = None      # the float model's checkpoint, when one was given
    same_weights: bool | None = None   # does it quantize to the .net's integers?

    def _of(self, floating: bool) -> list:
        return [c for m in self.modes for c in m.comparisons
                if (c.name == FLOAT_LABEL) == floating]

    @property
    def backends_ok(self) -> bool:
        return all(c.ok for c in self._of(False))

    @property
    def float_ok(self) -> bool:
        return all(c.ok for c in self._of(True))

    @property
    def ok(self) -> bool:
        return self.backends_ok and self.float_ok

    @property
    def float_max_abs(self) -> float:
        return max((c.max_abs for c in self._of(True)), default=0.0)


def compare_records(name, got_images, got_records, images, records) -> Comparison:
    """Spikes and pixels of one backend's run against lava-sim's, exactly."""
    cmp = Comparison(name)
    for pop, spikes in got_records.items():
        other = records.get(pop)
        diff = (MISSING if other is None or other.shape != spikes.shape
                else int((other != spikes).sum()))
        stage = cmp.stages.setdefault(pop.split("/")[0], [0, 0])
        stage[0] += int(spikes.sum())
        stage[1] += diff
    cmp.pixels, cmp.differ = images.numel(), int((images != got_images).sum())
    return cmp


@torch.no_grad()
def float_model_run(model, x_bytes, n: int, seed: int):
    """The trained float model's latent spikes (N, latent, S) and images on the deployed
    clock: reconstruct `x_bytes`, or generate `n` images when it is None."""
    images = torch.arange(n if x_bytes is None else len(x_bytes))
    z = model.latent(x_bytes, seed, images)
    return z, model.decode(z)


def compare_float(z, float_images, got_images, got_records) -> Comparison:
    """The float model against lava-sim: latent spikes exactly, pixels within tolerance."""
    cmp = Comparison(FLOAT_LABEL)
    lava_z = torch.as_tensor(np.asarray(got_records["sampler/z"]))
    diff = (MISSING if lava_z.shape != z.shape
            else int((z.double() != lava_z.double()).sum()))
    cmp.stages["sampler"] = [int(lava_z.sum()), diff]
    delta = (float_images.double() - got_images.double()).abs()
    cmp.pixels, cmp.differ = got_images.numel(), int((delta > IMAGE_TOLERANCE).sum())
    cmp.max_abs = float(delta.max()) if delta.numel() else 0.0
    return cmp


def _layer_shapes(net) -> dict:
    return {f"{stage}/{layer.name}": tuple(np.shape(layer.weight))
            for stage, layers in net.stages().items() for layer in layers}


def load_matching_model(source, net, netfile="the .net"):
    """(float model, its DeployNet) of checkpoint `source`, refused with one error unless
    its kind, clock and layer shapes are those of `net`."""
    from . import checkpoint, deploy
    model, _ = checkpoint.load_model(source)
    if model.kind != net.kind:
        raise NeurovaeError(f"{source} holds an {model.kind} model but {netfile} is an "
                            f"{net.kind}; pass the checkpoint it was exported from")
    cfg = model.cfg
    ours = dict(image_shape=(cfg.channels, cfg.image_size, cfg.image_size), T=cfg.T,
                latent=cfg.latent, n_steps=model.n_steps)
    if net.kind == "fsvae":
        ours["k"] = cfg.k
    problems = [f"{key} {value} vs {getattr(net, key)}" for key, value in ours.items()
                if tuple(np.atleast_1d(value)) != tuple(np.atleast_1d(getattr(net, key)))]
    deployed = None
    if not problems:
        deployed = deploy.from_model(model, seed=net.seed)
        mine, theirs = _layer_shapes(deployed), _layer_shapes(net)
        names = list(theirs) + [name for name in mine if name not in theirs]
        problems = [f"layer {name} {mine.get(name)} vs {theirs.get(name)}"
                    for name in names if mine.get(name) != theirs.get(name)]
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more"
                                           if len(problems) > 3 else "")
        raise NeurovaeError(f"{source} does not fit {netfile} (checkpoint vs file: {shown}); "
                            f"pass the checkpoint it was exported from")
    return model, deployed


def _same_weights(a, b) -> bool:
    """Do two DeployNets of one architecture hold the same integers?"""
    layers = all(np.array_equal(la.weight, lb.weight) and
                 np.array_equal(la.bias_per_neuron(), lb.bias_per_neuron())
                 for sa, sb in zip(a.stages().values(), b.stages().values())
                 for la, lb in zip(sa, sb))
    pa, pb = a.prior_linear or {}, b.prior_linear or {}
    return layers and pa.keys() == pb.keys() and all(
        np.array_equal(pa[key], pb[key]) for key in ("weight", "bias", "bounds") if key in pa)


def verify(netfile, n: int = 4, *, seed: int | None = None, mode: str = "both",
           timeout: float | None = None, checkpoint=None, progress: bool = True,
           on_mode=None) -> VerifyResult:
    """Compare lava-sim with the tensor backends (and the float model of `checkpoint`)
    on `n` images per mode; `on_mode(ModeResult)` is called as each mode finishes."""
    from .export import load
    from .loihi_runtime import run
    from .model_data import test_images
    net = load(netfile)
    seed = net.seed if seed is None else seed
    result = VerifyResult(checkpoint=None if checkpoint is None else str(checkpoint))
    model = None
    if checkpoint is not None:
        model, deployed = load_matching_model(checkpoint, net, netfile)
        result.same_weights = _same_weights(deployed, net)
    for m in (MODES if mode == "both" else (mode,)):
        x = test_images(net, n) if m == "reconstruct" else None
        got, rec_got = run(net, "lava-sim", x_bytes=x, n=n, seed=seed, record=True,
                           progress=progress, timeout=timeout)
        res = ModeResult(m, n, seed, net.n_steps)
        for label, backend in TENSOR_REFERENCES:
            ref, rec_ref = run(net, backend, x_bytes=x, n=n, seed=seed, record=True)
            res.comparisons.append(compare_records(label, got, rec_got, ref, rec_ref))
        if model is not None:
            z, images = float_model_run(model, x, n, seed)
            res.comparisons.append(compare_float(z, images, got, rec_got))
        result.modes.append(res)
        if on_mode:
            on_mode(res)
    return result
