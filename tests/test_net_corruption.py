"""A damaged, edited or foreign `.net` file either loads exactly as written or raises NetFormatError.

The property test corrupts the bytes of a real exported file (truncation, byte flips,
overwritten spans, appended garbage, an empty file) and requires each variant to load
identically to the original or to raise NetFormatError: no other exception, no hang.
The explicit tests edit a copy with h5py, once leaving the stored checksum as it was
(the checksum must catch the edit) and once recomputing it (the semantic validators must
catch it, naming the group at fault).
"""
from __future__ import annotations

import faulthandler
import json
import shutil
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurovae import deploy
from neurovae.config import make_config
from neurovae.export import NetFormatError, load, write, write_stage
from neurovae.export.writer import checksum
from neurovae.models import build_model

SMALL = ["latent=8", "k=4", "enc_channels=8,16", "dec_channels=16,8,8"]
HANG_LIMIT_S = 60          # a load still running after this long is a hang: dump and exit
MAX_SPAN = 4096            # longest overwritten span / appended tail, in bytes


# ---------------------------------------------------------------- fixtures and helpers

def _export(kind: str, folder: Path) -> tuple[Path, deploy.DeployNet]:
    torch.manual_seed(0)
    model = build_model(make_config("mnist-small", kind, SMALL)).eval()
    net = deploy.from_model(model)
    path = folder / f"{kind}.net"
    write(net, path)
    return path, net


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("netfiles")


@pytest.fixture(scope="module")
def fsvae_file(folder):
    path, net = _export("fsvae", folder)
    return path, net


@pytest.fixture(scope="module")
def esvae_file(folder):
    path, _ = _export("esvae", folder)
    return path


@pytest.fixture(scope="module")
def original(fsvae_file):
    """(bytes of the exported file, canonical summary of its load)."""
    path, _ = fsvae_file
    return path.read_bytes(), summary(load(path))


def _array(a):
    if a is None:
        return None
    a = np.asarray(a)
    return (a.dtype.str, a.shape, a.tobytes())


def _layer(layer: deploy.Layer) -> tuple:
    n = layer.neuron
    geometry = None if layer.kind == "dense" else (int(layer.stride), int(layer.padding))
    return (layer.name, layer.kind, tuple(layer.in_shape), tuple(layer.out_shape), geometry,
            _array(np.asarray(layer.weight, np.int64)),
            _array(None if layer.bias is None else np.asarray(layer.bias, np.int64)),
            (int(n.i_decay), int(n.v_decay), int(n.vth_mant)))


def summary(net: deploy.DeployNet) -> tuple:
    """Everything a load yields: root fields, sampler, ESVAE prior, every layer's integers."""
    root = (net.kind, tuple(net.image_shape), net.T, net.latent, net.k, net.n_steps, net.seed,
            json.dumps(net.config, sort_keys=True),
            tuple(sorted((k, repr(v)) for k, v in net.sampler.items())),
            tuple(sorted((k, _array(np.asarray(v, np.int64)))
                         for k, v in net.prior_linear.items())))
    stages = tuple((name, tuple(_layer(l) for l in layers))
                   for name, layers in (("encoder", net.encoder), ("posterior", net.posterior),
                                        ("prior", net.prior), ("decoder", net.decoder),
                                        ("readout", [net.readout])))
    return root, stages


def _load_outcome(path: Path):
    """Load under a hang watchdog; returns the summary or the NetFormatError."""
    faulthandler.dump_traceback_later(HANG_LIMIT_S, exit=True)
    try:
        return summary(load(path))
    except NetFormatError as exc:
        return exc
    finally:
        faulthandler.cancel_dump_traceback_later()


def _edited(src: Path, dst: Path, edit, rechecksum: bool) -> Path:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
        if rechecksum:
            f.attrs["checksum"] = checksum(f)
    return dst


def _error(path: Path) -> str:
    with pytest.raises(NetFormatError) as info:
        load(path)
    return str(info.value)


def _replace(name: str, value):
    def edit(f):
        del f[name]
        f.create_dataset(name, data=value)
    return edit


def _set(name: str, index, value):
    def edit(f):
        data = f[name][()]
        data[index] = value
        f[name][...] = data
    return edit


def _set_attr(obj: str, key: str, value):
    def edit(f):
        f[obj].attrs[key] = value
    return edit


# ---------------------------------------------------------------- the clean file

def test_clean_file_loads_exactly_what_was_written(fsvae_file, original):
    _, net = fsvae_file
    assert original[1] == summary(net)


# ---------------------------------------------------------------- property: byte damage

def _corrupt(data, blob: bytes) -> tuple[str, bytes]:
    n = len(blob)
    kind = data.draw(st.sampled_from(["truncate", "flip", "zeros", "random", "append", "empty"]),
                     label="corruption")
    if kind == "truncate":
        return kind, blob[:data.draw(st.integers(0, n - 1), label="length")]
    if kind == "flip":
        out = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 8), label="n_flips")):
            at = data.draw(st.integers(0, n - 1), label="offset")
            out[at] ^= data.draw(st.integers(1, 255), label="xor")
        return kind, bytes(out)
    if kind in ("zeros", "random"):
        at = data.draw(st.integers(0, n - 1), label="offset")
        if kind == "zeros":
            span = bytes(data.draw(st.integers(1, MAX_SPAN), label="length"))
        else:
            span = data.draw(st.binary(min_size=1, max_size=MAX_SPAN), label="bytes")
        span = span[:n - at]
        return kind, blob[:at] + span + blob[at + len(span):]
    if kind == "append":
        return kind, blob + data.draw(st.binary(min_size=1, max_size=MAX_SPAN), label="tail")
    return kind, b""


@settings(max_examples=500, deadline=timedelta(seconds=5), database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_damaged_file_loads_identically_or_raises_net_format_error(original, folder, data):
    blob, expected = original
    kind, damaged = _corrupt(data, blob)
    path = folder / "damaged.net"
    path.write_bytes(damaged)
    try:
        outcome = _load_outcome(path)
    except Exception as exc:   # anything but NetFormatError is a loader bug
        raise AssertionError(f"LOADER BUG: {kind} damage raised {type(exc).__name__}: {exc} "
                             f"instead of NetFormatError") from exc
    if isinstance(outcome, NetFormatError):
        assert str(outcome), "NetFormatError without a message"
        return
    assert outcome == expected, (f"LOADER BUG: {kind} damage was accepted but loads a different "
                                 f"network than the one written")


def test_empty_file_is_rejected(folder):
    path = folder / "empty.net"
    path.write_bytes(b"")
    assert "not a readable HDF5" in _error(path)


def test_appended_garbage_still_loads_identically(original, folder):
    blob, expected = original
    path = folder / "tail.net"
    path.write_bytes(blob + b"\xde\xad\xbe\xef" * 1000)
    assert summary(load(path)) == expected


# ---------------------------------------------------------------- explicit edits

# (id, edit, words the message must contain once the checksum is recomputed)
EDITS = [
    ("missing-group", lambda f: f.__delitem__("decoder"), ["decoder", "missing"]),
    ("float-weights", _replace("decoder/layer/1/weight", np.zeros((16, 8, 4, 4), np.float32)),
     ["decoder/layer/1/weight", "integers"]),
    ("nan-in-float-dataset",
     _replace("posterior/layer/0/bias", np.full(16, np.nan)), ["posterior/layer/0/bias"]),
    ("weight-300", _set("encoder/layer/1/weight", (0, 0, 0, 0), 300),
     ["encoder/layer/1/weight", "300"]),
    ("vthmant-2**17", _replace("decoder/layer/0/neuron/vThMant", np.int64(2 ** 17)),
     ["decoder/layer/0/neuron/vThMant", "131072"]),
    ("vthmant-negative", _replace("prior/layer/2/neuron/vThMant", np.int64(-1)),
     ["prior/layer/2/neuron/vThMant"]),
    ("bad-shape-chain", _replace("encoder/layer/1/shape", np.array([16, 8, 8], np.int64)),
     ["encoder/layer/1"]),
    ("bad-dense-shape", _replace("decoder/layer/0/shape", np.array([100], np.int64)),
     ["decoder/layer/0"]),
    ("unknown-layer-type", _replace("posterior/layer/1/type", np.array([b"conv3d"], "S10")),
     ["posterior/layer/1", "conv3d"]),
    ("layer-gap", lambda f: f.move("decoder/layer/2", "decoder/layer/5"), ["decoder/layer"]),
    ("readout-shape", _replace("readout/layer/0/shape", np.array([2, 28, 28], np.int64)),
     ["readout/layer/0"]),
    ("bias-size", _replace("prior/layer/0/bias", np.zeros(5, np.int16)), ["prior/layer/0/bias"]),
    ("sampler-k", _set_attr("sampler", "k", 3), ["sampler"]),
    ("missing-drive", lambda f: f.__delitem__("encoder/layer/0/drive"), ["encoder/layer/0"]),
]


@pytest.mark.parametrize("name, edit, words", EDITS, ids=[e[0] for e in EDITS])
def test_edit_without_new_checksum_fails_the_checksum(fsvae_file, folder, name, edit, words):
    path = _edited(fsvae_file[0], folder / f"{name}-stale.net", edit, rechecksum=False)
    assert "checksum mismatch" in _error(path)


@pytest.mark.parametrize("name, edit, words", EDITS, ids=[e[0] for e in EDITS])
def test_edit_with_new_checksum_is_caught_by_the_validators(fsvae_file, folder, name, edit,
                                                             words):
    path = _edited(fsvae_file[0], folder / f"{name}-resummed.net", edit, rechecksum=True)
    msg = _error(path)
    assert "checksum" not in msg
    for word in words:
        assert word in msg, f"message does not name {word!r}: {msg}"


@pytest.mark.parametrize("rechecksum", [False, True])
def test_newer_format_version_asks_for_an_upgrade(fsvae_file, folder, rechecksum):
    path = _edited(fsvae_file[0], folder / f"v2-{rechecksum}.net",
                   _set_attr("/", "format_version", 2), rechecksum)
    msg = _error(path).lower()
    assert "newer" in msg and "upgrade" in msg, msg


def test_plain_netx_file_is_not_a_neurovae_network(folder):
    path = folder / "netx.net"
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g.create_dataset("type", data=np.array([b"input"], "S10"))
        g.create_dataset("shape", data=np.array([1, 28, 28], np.int64))
        g.create_dataset("neuron/type", data="CUBA")
        for key, val in (("iDecay", 4096), ("vDecay", 1024), ("vThMant", 80), ("refDelay", 1)):
            g.create_dataset(f"neuron/{key}", data=np.int64(val))
    assert "not a neurovae network" in _error(path)


def test_single_stage_file_is_refused_with_a_pointer(fsvae_file, folder):
    path = folder / "encoder-stage.net"
    write_stage(fsvae_file[1], "encoder", path)
    assert "single-stage" in _error(path)


def test_text_file_is_rejected(folder):
    path = folder / "notes.net"
    path.write_text("this is not an HDF5 file\n" * 20)
    assert "not a readable HDF5" in _error(path)


def test_missing_path_is_rejected(folder):
    msg = _error(folder / "nowhere" / "model.net")
    assert "no such file" in msg


def test_directory_is_rejected(folder):
    with pytest.raises(NetFormatError):
        load(folder)


def test_esvae_edits_name_their_group(esvae_file, folder):
    path = _edited(esvae_file, folder / "esvae-noprior.net",
                   lambda f: f.__delitem__("prior"), rechecksum=True)
    assert "prior" in _error(path)
    path = _edited(esvae_file, folder / "esvae-window.net",
                   _set_attr("sampler", "sample_start", 1000), rechecksum=True)
    assert "sampler" in _error(path)
    path = _edited(esvae_file, folder / "esvae-thresholds.net",
                   _replace("prior/thresholds", np.zeros(3, np.int64)), rechecksum=True)
    assert "prior/thresholds" in _error(path)


# ---------------------------------------------------------------- loader gaps found here
# Each edit below keeps a valid checksum but makes the file contradict itself or Lava's
# ranges; the loader accepts it today. The assertion message says what is wrong.

GAPS = [
    ("odd-weight", "fsvae", _set("encoder/layer/1/weight", (0, 0, 0, 0), 3),
     "encoder/layer/1/weight", "an odd weight (3) is accepted, but weights are even integers "
                               "(float x 64 on lava-dl's 2/64 grid)"),
    ("idecay-0", "fsvae", _replace("encoder/layer/1/neuron/iDecay", np.int64(0)),
     "encoder/layer/1/neuron/iDecay", "iDecay 0 is accepted, but netx maps du = iDecay - 1 "
                                      "and Lava's du is 12-bit unsigned: iDecay must be 1..4096"),
    ("vdecay-4096", "fsvae", _replace("encoder/layer/1/neuron/vDecay", np.int64(4096)),
     "encoder/layer/1/neuron/vDecay", "vDecay 4096 is accepted, but Lava's dv is 12-bit "
                                      "unsigned: vDecay must be 0..4095"),
    ("kernelsize-mismatch", "fsvae", _replace("encoder/layer/1/kernelSize",
                                              np.array([5, 5], np.int64)),
     "encoder/layer/1/kernelSize", "kernelSize [5, 5] contradicting a 3x3 weight is accepted"),
    ("asymmetric-stride", "fsvae", _replace("encoder/layer/1/stride", np.array([2, 1], np.int64)),
     "encoder/layer/1/stride", "stride [2, 1] is accepted and read as 2 (only element 0 is "
                               "used); netx would build a (1, 2)-strided conv"),
    ("dilation-2", "fsvae", _replace("encoder/layer/1/dilation", np.array([2, 2], np.int64)),
     "encoder/layer/1/dilation", "dilation [2, 2] is accepted and ignored; the emulator uses 1"),
    ("groups-2", "fsvae", _replace("encoder/layer/1/groups", np.int64(2)),
     "encoder/layer/1/groups", "groups 2 is accepted and ignored; the emulator uses 1"),
    ("esvae-sampler-T", "esvae", _set_attr("sampler", "T", 5),
     "sampler", "sampler T 5 with root T 8 is accepted; the emulator's sampling window and "
                "(draw mod T) use sampler T while the prior thresholds use root T"),
    ("readout-leak-nan", "fsvae", _set_attr("/", "readout_leak", np.nan),
     "readout_leak", "readout_leak NaN is accepted (the root attribute is never checked "
                     "against readout/layer/0/neuron/vDecay / 4096)"),
    ("group-for-dataset", "fsvae",
     lambda f: (f.__delitem__("encoder/layer/1/neuron/iDecay"),
                f.create_group("encoder/layer/1/neuron/iDecay")),
     "encoder/layer/1/neuron", "a group where a dataset belongs is reported as 'not a readable "
                               "HDF5 .net file' instead of naming the group"),
]


@pytest.mark.parametrize("name, model, edit, where, problem", GAPS, ids=[g[0] for g in GAPS])
def test_self_contradicting_file_is_rejected(fsvae_file, esvae_file, folder, name, model, edit,
                                             where, problem):
    src = fsvae_file[0] if model == "fsvae" else esvae_file
    path = _edited(src, folder / f"gap-{name}.net", edit, rechecksum=True)
    try:
        load(path)
    except NetFormatError as exc:
        assert where in str(exc), f"LOADER BUG: message does not name {where!r}: {problem}; " \
                                  f"got: {exc}"
    else:
        raise AssertionError(f"LOADER BUG: {problem}")
