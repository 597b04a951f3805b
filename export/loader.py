"""Read and validate a `.net` file into a DeployNet; every problem is a NetFormatError.

Checks: HDF5 readable, format name and version, checksum, required groups and datasets,
integer dtypes and Loihi 2 ranges, shapes chaining stage to stage, finite values.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from neurovae import prng
from neurovae.hw.layers import FILE_TYPES
from neurovae.hw.net import DeployNet, Layer
from neurovae.hw.clock import esvae_clock, fsvae_clock
from neurovae.hw.neuron import (BIAS_MAX, BIAS_MIN, VTH_MAX, WEIGHT_MAX, WEIGHT_MIN,
                             NeuronParams)

from .format import FORMAT_NAME, FORMAT_VERSION, NetFormatError
from .writer import checksum


def _fail(where: str, problem: str):
    raise NetFormatError(f"{where}: {problem}")


def _int(g, key, where, lo=None, hi=None) -> int:
    if key not in g or not isinstance(g[key], h5py.Dataset):
        _fail(where, f"missing dataset '{key}'")
    v = np.asarray(g[key][()])
    if v.dtype.kind not in "iub" or v.size != 1:
        _fail(f"{where}/{key}", f"expected one integer, found {v.dtype} of shape {v.shape}")
    v = int(v.reshape(-1)[0])
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        _fail(f"{where}/{key}", f"{v} outside [{lo}, {hi}]")
    return v


def _ints(g, key, where, shape=None, lo=None, hi=None) -> np.ndarray:
    if key not in g or not isinstance(g[key], h5py.Dataset):
        _fail(where, f"missing dataset '{key}'")
    v = np.asarray(g[key][()])
    if v.dtype.kind not in "iu":
        _fail(f"{where}/{key}", f"expected integers, found {v.dtype}")
    if shape is not None and tuple(v.shape) != tuple(shape):
        _fail(f"{where}/{key}", f"shape {tuple(v.shape)}, expected {tuple(shape)}")
    if v.size and ((lo is not None and v.min() < lo) or (hi is not None and v.max() > hi)):
        _fail(f"{where}/{key}", f"values in [{v.min()}, {v.max()}] outside [{lo}, {hi}]")
    return v.astype(np.int64)


def _weights(g, key, where) -> np.ndarray:
    """Weights on lava-dl's grid: even integers in [-256, 254] (Lava keeps them exactly)."""
    w = _ints(g, key, where, lo=WEIGHT_MIN, hi=WEIGHT_MAX)
    if w.size and (w % 2).any():
        _fail(f"{where}/{key}", "odd weights: lava-dl's 8-bit rule gives even integers, and "
                                "Lava drops the lowest bit of mixed-sign weights")
    return w


def _pair(g, key, where, lo, hi) -> int:
    v = _ints(g, key, where, (2,), lo, hi)
    if v[0] != v[1]:
        _fail(f"{where}/{key}", f"{list(v)}: only equal values along both axes are supported")
    return int(v[0])


def _str(g, key, where) -> str:
    if key not in g or not isinstance(g[key], h5py.Dataset):
        _fail(where, f"missing dataset '{key}'")
    v = g[key][()]
    v = v.reshape(-1)[0] if isinstance(v, np.ndarray) and v.size == 1 else v
    if isinstance(v, bytes):
        return v.decode("ascii", "replace")
    if isinstance(v, str):
        return v
    _fail(f"{where}/{key}", "expected a string")


def _attr(g, key, where, kind=int):
    if key not in g.attrs:
        _fail(where, f"missing attribute '{key}'")
    v = g.attrs[key]
    if kind is int:
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            _fail(where, f"attribute '{key}' must be an integer, found {type(v).__name__}")
        return int(v)
    if kind is str:
        if isinstance(v, bytes):
            v = v.decode("ascii", "replace")
        if not isinstance(v, str):
            _fail(where, f"attribute '{key}' must be a string")
        return v
    return v


def _neuron(g, where) -> NeuronParams:
    if "neuron" not in g or not isinstance(g["neuron"], h5py.Group):
        _fail(where, "missing group 'neuron'")
    n, w = g["neuron"], f"{where}/neuron"
    if _str(n, "type", w) != "CUBA":
        _fail(w, "only CUBA neurons are supported")
    # Loihi's du register holds iDecay - 1 (12 bits) and dv holds vDecay (12 bits)
    return NeuronParams(_int(n, "iDecay", w, 1, 4096), _int(n, "vDecay", w, 0, 4095),
                        _int(n, "vThMant", w, 0, VTH_MAX))


def _layer(g, where, in_shape, name_default) -> Layer:
    kind = _str(g, "type", where)
    spec = FILE_TYPES.get(kind)
    if spec is None:
        _fail(where, f"unsupported layer type '{kind}'")
    out_shape = tuple(_ints(g, "shape", where, lo=1, hi=1 << 20))
    bias = _ints(g, "bias", where, lo=BIAS_MIN, hi=BIAS_MAX) if "bias" in g else None
    neuron = _neuron(g, where)
    name = _attr(g, "name", where, str) if "name" in g.attrs else name_default
    stride = pad = 0
    if spec.host_drive:
        if "drive" not in g:
            _fail(where, "input layer lacks its 'drive' group (the first conv, on graded image bytes)")
        d, wd = g["drive"], f"{where}/drive"
        w = _weights(d, "weight", wd)
        in_shape = tuple(_ints(d, "inShape", wd, shape=(3,), lo=1, hi=1 << 16))
        stride, pad = _pair(d, "stride", wd, 1, 8), _pair(d, "padding", wd, 0, 8)
    else:
        w = _weights(g, "weight", where)
    if spec.spatial and not spec.host_drive:
        if "inShape" in g:   # a flat population (dense output) viewed as (C, H, W)
            stored = tuple(_ints(g, "inShape", where, (3,), 1, 1 << 16))
            if int(np.prod(stored)) != int(np.prod(in_shape)):
                _fail(f"{where}/inShape", f"{stored} does not match the previous layer's "
                                          f"{int(np.prod(in_shape))} neurons")
            in_shape = stored
        stride, pad = _pair(g, "stride", where, 1, 8), _pair(g, "padding", where, 0, 8)
        if _pair(g, "dilation", where, 1, 1) != 1 or _int(g, "groups", where, 1, 1) != 1:
            _fail(where, "only dilation 1 and groups 1 are supported")
        if w.ndim == 4 and tuple(_ints(g, "kernelSize", where, (2,))) != tuple(w.shape[2:]):
            _fail(f"{where}/kernelSize", f"does not match the weight's kernel {w.shape[2:]}")
        if w.ndim == 4 and ((_int(g, "inChannels", where), _int(g, "outChannels", where))
                            != tuple(spec.channels(w))):
            _fail(where, "inChannels/outChannels do not match the weight")
    if not spec.spatial:
        if w.ndim != 2 or w.shape != (int(np.prod(out_shape)), int(np.prod(in_shape))):
            _fail(f"{where}/weight", f"shape {w.shape} does not connect {int(np.prod(in_shape))} "
                                      f"inputs to {int(np.prod(out_shape))} neurons")
    else:
        if w.ndim != 4 or len(in_shape) != 3 or w.shape[2] != w.shape[3]:
            _fail(f"{where}/weight", f"expected a 4-D square kernel over a (C, H, W) input, found "
                                      f"weight {w.shape} and input {in_shape}")
        c_in = spec.channels(w)[0]
        if c_in != in_shape[0]:
            _fail(f"{where}/weight", f"kernel takes {c_in} channels, input has {in_shape[0]}")
        expect = spec.out_shape(in_shape, w, stride, pad)
        if tuple(out_shape) != expect:
            _fail(f"{where}/shape", f"{tuple(out_shape)} but the kernel gives {expect}")
    if bias is not None and bias.size not in (out_shape[0], int(np.prod(out_shape))):
        _fail(f"{where}/bias", f"{bias.size} values for {out_shape} neurons")
    return Layer(name, spec.name, tuple(int(x) for x in in_shape),
                 tuple(int(x) for x in out_shape), w, neuron, stride=stride, padding=pad,
                 bias=bias)


def _stage(f, stage: str, in_shape) -> list:
    if stage not in f or not isinstance(f[stage], h5py.Group):
        _fail(stage, "missing group")
    g = f[stage]
    if "layer" not in g:
        _fail(stage, "missing 'layer' group")
    lg = g["layer"]
    keys = sorted(lg.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if not keys or any(not k.isdigit() for k in keys) or [int(k) for k in keys] != list(range(len(keys))):
        _fail(f"{stage}/layer", f"layers must be numbered 0..n-1, found {keys}")
    layers, shape = [], tuple(in_shape)
    for k in keys:
        where = f"{stage}/layer/{k}"
        if not isinstance(lg[k], h5py.Group):
            _fail(where, "expected a group")
        if _str(lg[k], "type", where) == "flatten":
            shape = (int(np.prod(shape)),)
            continue
        layer = _layer(lg[k], where, shape, f"{stage}{k}")
        if not layer.spec.host_drive and layer.n_in != int(np.prod(shape)):
            _fail(where, f"takes {layer.n_in} inputs but the previous layer gives "
                         f"{int(np.prod(shape))}")
        if layer.spec.host_drive and tuple(layer.in_shape) != tuple(in_shape):
            _fail(where, f"drive takes images {layer.in_shape}, the file says {tuple(in_shape)}")
        layers.append(layer)
        shape = layer.out_shape
    return layers


def _prescan(f) -> None:
    """Refuse variable-length data before reading any value: this format never writes it,
    and HDF5 can hang reading a damaged variable-length heap."""
    def check(name, obj):
        for k in obj.attrs.keys():
            if obj.attrs.get_id(k).dtype.kind == "O":
                _fail(name or "/", f"attribute '{k}' has a variable-length type, which this "
                                   f"format never writes")
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "O":
            _fail(name, "variable-length dataset, which this format never writes")
    f.visititems(check)


def _read(f, path) -> DeployNet:
    for k in f.attrs.keys():
        if f.attrs.get_id(k).dtype.kind == "O":
            if k == "format":
                _fail("/", "not a neurovae network (its format attribute is a variable-length "
                           "string, which neurovae never writes); "
                           "a plain netx or other HDF5 file cannot be deployed as a VAE")
            _fail("/", f"attribute '{k}' has a variable-length type, which this format never "
                       f"writes")
    if f.attrs.get("format") in (f"{FORMAT_NAME}-stage", f"{FORMAT_NAME}-stage".encode()):
        _fail("/", "this is a single-stage netx file (export --stage); pass the whole-model .net")
    name = f.attrs.get("format")
    name = name.decode() if isinstance(name, bytes) else name
    if name != FORMAT_NAME:
        _fail("/", f"not a neurovae network (format attribute {name!r}); a plain netx or other "
                   f"HDF5 file cannot be deployed as a VAE. Export one with 'neurovae export'")
    version = _attr(f, "format_version", "/")
    if version > FORMAT_VERSION:
        _fail("/", f"written by a newer neurovae (format version {version}); this version reads "
                   f"up to {FORMAT_VERSION}. Upgrade neurovae")
    if version < 1:
        _fail("/", f"invalid format version {version}")
    if version < FORMAT_VERSION:
        _fail("/", f"format version {version} runs on the old single clock, which this neurovae "
                   f"no longer runs (version {FORMAT_VERSION}: the phase clock of stock Lava "
                   f"processes). Retrain the model with this version and export it again")
    _prescan(f)
    stored = _attr(f, "checksum", "/", str)
    if stored != checksum(f):
        _fail("/", "checksum mismatch: the file was modified or damaged after export; re-export it")
    kind = _attr(f, "model_kind", "/", str)
    if kind not in ("fsvae", "esvae"):
        _fail("/", f"unknown model_kind {kind!r}")
    if _attr(f, "prng_algorithm", "/", str) != prng.ALGORITHM:
        _fail("/", f"PRNG {f.attrs['prng_algorithm']!r} is not this neurovae's {prng.ALGORITHM}")
    T, C, k = (_attr(f, key, "/") for key in ("T", "latent", "k"))
    S, seed = _attr(f, "n_steps", "/"), _attr(f, "prng_seed", "/")
    img_raw = np.asarray(f.attrs.get("image_shape", []))
    if img_raw.dtype.kind not in "iu":
        _fail("/", f"image_shape must be integers, found {img_raw.dtype}")
    img = tuple(int(x) for x in img_raw.reshape(-1))
    if len(img) != 3 or min(img) < 1 or not (0 < T <= 4096 and 0 < C <= 65536 and 0 < k <= 1024
                                             and 0 < S <= 1 << 16):
        _fail("/", f"implausible sizes: image_shape {img}, T {T}, latent {C}, k {k}, n_steps {S}")
    leak = f.attrs.get("readout_leak")
    if not isinstance(leak, (float, np.floating)) or not np.isfinite(leak) or not 0 <= leak <= 1:
        _fail("/", f"readout_leak {leak!r} must be a finite fraction")
    enc = _stage(f, "encoder", img)
    if enc[0].kind != "input" or enc[-1].out_shape != (C,):
        _fail("encoder", f"must start with the input layer and end in {C} latent neurons")
    net = DeployNet(kind=kind, image_shape=img, T=T, latent=C, k=k, n_steps=S, encoder=enc,
                    decoder=[], readout=None, seed=seed)
    try:
        net.config = json.loads(_attr(f, "config_json", "/", str))
    except json.JSONDecodeError:
        _fail("/", "config_json is not valid JSON")
    if "sampler" not in f:
        _fail("sampler", "missing group")
    sm = {key: (int(v) if isinstance(v, (int, np.integer)) else
                v.decode() if isinstance(v, bytes) else v) for key, v in f["sampler"].attrs.items()}
    if kind == "fsvae":
        net.posterior = _stage(f, "posterior", (2 * C,))
        net.prior = _stage(f, "prior", (C,))
        for st, layers in (("posterior", net.posterior), ("prior", net.prior)):
            if len(layers) != 3 or layers[-1].out_shape != (C * k,):
                _fail(st, f"must be 3 dense layers ending in {C}*{k} candidates")
        if sm.get("type") != "pick" or sm.get("k") != k or sm.get("T") != T:
            _fail("sampler", f"an FSVAE sampler must be type 'pick' with k={k} and T={T}")
        if S != fsvae_clock(T).n_steps:
            _fail("/", f"n_steps {S} is not the FSVAE clock's {fsvae_clock(T).n_steps} for T={T}")
    else:
        clock = esvae_clock(T)
        if sm.get("type") != "window" or not all(isinstance(sm.get(x), int) for x in
                                                 ("window_start", "sample_start", "T")):
            _fail("sampler", "an ESVAE sampler must be type 'window' with window_start, "
                             "sample_start and T")
        if sm["T"] != T:
            _fail("sampler", f"T {sm['T']} differs from the model's T {T}")
        if (S, sm["window_start"], sm["sample_start"]) != (
                clock.n_steps, clock.window_start, clock.sample_start):
            _fail("sampler", f"windows do not fit the ESVAE clock for T={T}")
        if "prior" not in f:
            _fail("prior", "missing group")
        net.prior_linear = _esvae_prior(f["prior"], C, T)
    net.sampler = sm
    net.decoder = _stage(f, "decoder", (C,))
    readout = _stage(f, "readout", net.decoder[-1].out_shape)
    if len(readout) != 1 or readout[0].out_shape != img:
        _fail("readout", f"must be one conv layer giving the image shape {img}")
    net.readout = readout[0]
    net.readout.kind = "readout"
    return net


MAX_PRIOR_COMPONENTS = 4096


def _esvae_prior(p, C: int, T: int) -> dict:
    """ESVAE's prior: one Gaussian, or with `bounds` (K-1,) a mixture of K (section 8)."""
    lead = ()
    prior = {}
    if "bounds" in p:
        b = _ints(p, "bounds", "prior", None, 0, 1 << 32)
        if b.ndim != 1 or len(b) + 1 > MAX_PRIOR_COMPONENTS:
            _fail("prior/bounds", f"must be a vector of K-1 bounds, K <= {MAX_PRIOR_COMPONENTS}")
        if (np.diff(b) < 0).any():
            _fail("prior/bounds", "bounds must not decrease (cumulative component weights)")
        prior["bounds"], lead = b, (len(b) + 1,)
    prior.update(weight=_ints(p, "weight", "prior", lead + (C, C), -(1 << 30), 1 << 30),
                 bias=_ints(p, "bias", "prior", lead + (C,), -(1 << 40), 1 << 40),
                 thresholds=_ints(p, "thresholds", "prior", (T,)))
    return prior


def load(path) -> DeployNet:
    """Load and validate a whole-model `.net` file."""
    p = Path(path)
    if p.is_dir():
        raise NetFormatError(f"{p} is a folder; pass a .net file")
    if not p.is_file():
        raise NetFormatError(f"{p}: no such file; export one with 'neurovae export {p.name}'")
    try:
        with h5py.File(p, "r") as f:
            return _read(f, p)
    except NetFormatError as exc:
        raise NetFormatError(f"{p}: {exc}") from None
    except Exception as exc:   # h5py reports damage through many exception types
        msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise NetFormatError(f"{p}: not a readable HDF5 .net file ({msg}); re-export it") from None
