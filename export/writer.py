"""Write a DeployNet to one HDF5 `.net` file (atomically), or one stage as a netx file.

Each stage's layers follow lava-dl netx's layout (`layer/<i>/{type, shape, weight,
neuron/*, ...}`), so netx reads every layer type it supports; the decoder's transposed
convolutions use a documented type of our own (`convT`), lowered by loihi_runtime.
A SHA-256 over every dataset and attribute lets the loader reject damaged files.
"""
from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np

from neurovae import prng
from neurovae.hw.net import DeployNet, Layer
from neurovae.fileio import atomic_path

from .format import CLOCK, FORMAT_NAME, FORMAT_VERSION, INPUT_ENCODING, READOUT_SCALING

STR = h5py.string_dtype()


def _str(group, name, value):
    group.create_dataset(name, (1,), "S10", [value.encode("ascii")])


def _neuron(g, layer: Layer):
    p = layer.neuron
    _str(g, "neuron/type", "CUBA")
    for key, val in (("iDecay", p.i_decay), ("vDecay", p.v_decay), ("vThMant", p.vth_mant),
                     ("refDelay", 1)):
        g.create_dataset(f"neuron/{key}", data=np.int64(val))
    g.create_dataset("neuron/gradedSpike", data=False)


def _layer(g, layer: Layer):
    spec = layer.spec
    g.attrs["name"] = np.bytes_(layer.name)
    _str(g, "type", spec.file_type)
    g.create_dataset("shape", data=np.array(layer.out_shape, np.int64))
    # the input layer's convolution takes the graded image bytes: its synapse lives in `drive`
    syn = g.create_group("drive") if spec.host_drive else g
    syn.create_dataset("inShape", data=np.array(layer.in_shape, np.int64))
    syn.create_dataset("weight", data=np.asarray(layer.weight, np.int16))
    if spec.spatial:
        syn.create_dataset("stride", data=np.array([layer.stride] * 2, np.int64))
        syn.create_dataset("padding", data=np.array([layer.padding] * 2, np.int64))
    if spec.spatial and not spec.host_drive:     # netx's conv entries
        w = np.asarray(layer.weight)
        c_in, c_out = spec.channels(w)
        g.create_dataset("inChannels", data=np.int64(c_in))
        g.create_dataset("outChannels", data=np.int64(c_out))
        g.create_dataset("kernelSize", data=np.array(w.shape[2:], np.int64))
        g.create_dataset("dilation", data=np.array([1, 1], np.int64))
        g.create_dataset("groups", data=np.int64(1))
    if layer.bias is not None:
        g.create_dataset("bias", data=np.asarray(layer.bias, np.int16))
    _neuron(g, layer)


def _stage(f, name: str, layers: list, flatten_before_dense: bool = False, **attrs):
    g = f.create_group(name)
    for k, v in attrs.items():
        g.attrs[k] = _attr_value(v)
    i = 0
    for layer in layers:
        if flatten_before_dense and not layer.spec.spatial:
            lg = g.create_group(f"layer/{i}")
            _str(lg, "type", "flatten")
            lg.create_dataset("shape", data=np.array(layers[i - 1].out_shape, np.int64))
            i += 1
        _layer(g.create_group(f"layer/{i}"), layer)
        i += 1
    return g


def _attr_value(v):
    """Attributes are stored with fixed-size types only (strings as fixed-length bytes):
    HDF5's variable-length string heap is where damaged files made reads hang."""
    if isinstance(v, str):
        return np.bytes_(v.encode("utf-8"))
    return v


def _canonical(value) -> bytes:
    a = np.asarray(value)
    return a.dtype.str.encode() + str(a.shape).encode() + a.tobytes()


def checksum(f: h5py.File) -> str:
    """SHA-256 over every dataset's bytes and every attribute (dtype, shape, raw bytes)."""
    h = hashlib.sha256()

    def attrs(obj):
        for k in sorted(obj.attrs):
            if k != "checksum":
                h.update(k.encode() + _canonical(obj.attrs[k]))

    def visit(name, obj):
        h.update(name.encode())
        attrs(obj)
        if isinstance(obj, h5py.Dataset):
            h.update(_canonical(obj[()]))
    attrs(f)
    f.visititems(visit)
    return h.hexdigest()


class _Attrs:
    """Attribute writer that stores strings as fixed-length bytes."""

    def __init__(self, attrs):
        self._a = attrs

    def __setitem__(self, key, value):
        self._a[key] = _attr_value(value)


def write(net: DeployNet, path) -> None:
    """Write the whole deployable VAE to `path` (temp name, then rename)."""
    with atomic_path(path, ".net") as tmp:
        with h5py.File(tmp, "w") as f:
            a = _Attrs(f.attrs)
            a["format"], a["format_version"] = FORMAT_NAME, FORMAT_VERSION
            a["model_kind"], a["T"], a["latent"], a["k"] = net.kind, net.T, net.latent, net.k
            a["image_shape"] = np.array(net.image_shape, np.int64)
            a["n_steps"], a["clock"] = net.n_steps, CLOCK
            a["prng_algorithm"], a["prng_seed"] = prng.ALGORITHM, net.seed
            a["input_encoding"], a["readout_scaling"] = INPUT_ENCODING, READOUT_SCALING
            a["readout_leak"] = net.readout.neuron.v_decay / 4096
            a["config_json"] = json.dumps(net.config)
            _stage(f, "encoder", net.encoder, flatten_before_dense=True,
                   description="input layer (graded image bytes) -> stride-2 convs -> dense")
            if net.kind == "fsvae":
                _stage(f, "posterior", net.posterior,
                       inputs="layer/0 takes concat(encoder output, sampler z); z arrives "
                              "4 steps later (the loop's latency), the encoder within the step")
                _stage(f, "prior", net.prior, inputs="layer/0 takes sampler z, 4 steps later")
            else:
                g = f.create_group("prior")
                mixture = "bounds" in net.prior_linear
                g.attrs["type"] = np.bytes_(b"mixture_linear_sigmoid_rate" if mixture
                                            else b"linear_sigmoid_rate")
                g.attrs["eps"] = np.bytes_(b"irwin-hall-4: sum over j<4 of (draw(seed^salt, image, "
                                           b"step=j, latent) >> 16) - 131072")
                if mixture:
                    g.attrs["component"] = np.bytes_(
                        b"#(bounds <= draw(seed^salt, image, step=4, neuron=0))")
                for key in ("weight", "bias", "thresholds") + (("bounds",) if mixture else ()):
                    g.create_dataset(key, data=np.asarray(net.prior_linear[key], np.int64))
            s = f.create_group("sampler")
            for k, v in net.sampler.items():
                s.attrs[k] = _attr_value(v)
            _stage(f, "decoder", net.decoder, description="dense -> stride-2 convT blocks")
            _stage(f, "readout", [net.readout],
                   description="3x3 conv into non-firing LIF integrators; bias per channel")
            f.attrs["checksum"] = np.bytes_(checksum(f).encode())


def write_stage(net: DeployNet, stage: str, path) -> None:
    """Write one stage as a standalone netx network (layers at the root)."""
    layers = net.stages().get(stage)
    if not layers:
        from .format import NetFormatError
        raise NetFormatError(f"stage '{stage}' has no layers in a {net.kind} model; stages: "
                             + ", ".join(k for k, v in net.stages().items() if v))
    with atomic_path(path, ".net") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = np.bytes_(f"{FORMAT_NAME}-stage".encode())
            f.attrs["stage"] = np.bytes_(stage.encode())
            _stage(f, "tmp", layers, flatten_before_dense=(stage == "encoder"))
            f.move("tmp/layer", "layer")
            del f["tmp"]
