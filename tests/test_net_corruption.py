"""A damaged, edited or foreign `.net` file either loads exactly as written or raises NetFormatError.

The property test corrupts the bytes of a real exported file (truncation, byte flips,
overwritten spans, appended garbage, an empty file) and requires each variant to load
identically to the original or to raise NetFormatError: no other exception, no hang.
The explicit tests edit a copy with h5py, once leaving the stored checksum as it was
(the checksum must catch the edit) and once recomputing it (the semantic validators must
catch it, naming the group at fault).
"""
from __future__ import annotations

import itertools
import json
import os
import pickle
import select
import shutil
import signal
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from neurovae import deploy
from neurovae.config import make_config
from neurovae.export import NetFormatError, load, write, write_stage
from neurovae.export.writer import checksum
from neurovae.models import build_model

SMALL = ["latent=8", "k=4", "enc_channels=8,16", "dec_channels=16,8,8"]
HANG_LIMIT_S = 5           # a load still running after this long is a hang
MAX_SPAN = 4096            # longest overwritten span / appended tail, in bytes
_serial = itertools.count()


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


class Original(tuple):
    """(bytes of the exported file, canonical summary of its load), with a short repr."""

    def __repr__(self) -> str:
        return f"<exported FSVAE .net, {len(self[0])} bytes>"


@pytest.fixture(scope="module")
def original(fsvae_file):
    path, _ = fsvae_file
    return Original((path.read_bytes(), summary(load(path))))


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


class LoadWorker:
    """`load` in a forked worker process, so a load that never returns can be stopped.

    HDF5 can loop forever inside its C code on damaged metadata, out of reach of any
    Python-level timeout; the worker is killed and replaced when a load overruns
    HANG_LIMIT_S. Each call returns ("summary", s), ("NetFormatError", message),
    ("other", "Type: message"), ("crash", how) or ("hang", how).
    """

    def __init__(self):
        self.pid = None
        self._start()

    def _start(self):
        to_child, self._cmd = os.pipe()
        self._res, from_child = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                              # the worker: serve until EOF
            os.close(self._cmd)
            os.close(self._res)
            try:
                self._serve(os.fdopen(to_child, "rb"), os.fdopen(from_child, "wb"))
            finally:
                os._exit(0)
        os.close(to_child)
        os.close(from_child)

    @staticmethod
    def _serve(requests, replies):
        for line in requests:
            try:
                out = ("summary", summary(load(line.decode().rstrip("\n"))))
            except NetFormatError as exc:
                out = ("NetFormatError", str(exc))
            except BaseException as exc:               # noqa: BLE001 - reported to the test
                out = ("other", f"{type(exc).__name__}: {exc}")
            data = pickle.dumps(out)
            replies.write(len(data).to_bytes(8, "little") + data)
            replies.flush()

    def _restart(self):
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self._cmd)
        os.close(self._res)
        self._start()

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            ready, _, _ = select.select([self._res], [], [], HANG_LIMIT_S)
            if not ready:
                raise TimeoutError
            chunk = os.read(self._res, n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def __call__(self, path: Path):
        os.write(self._cmd, f"{path}\n".encode())
        try:
            size = int.from_bytes(self._read(8), "little")
            return pickle.loads(self._read(size))
        except TimeoutError:
            self._restart()
            return "hang", f"load() still running after {HANG_LIMIT_S} s"
        except EOFError:
            _, status = os.waitpid(self.pid, 0)
            os.close(self._cmd)
            os.close(self._res)
            self._start()
            return "crash", f"the loading process died (wait status {status})"

    def close(self):
        os.close(self._cmd)
        os.close(self._res)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


@pytest.fixture(scope="module")
def worker():
    w = LoadWorker()
    yield w
    w.close()


def _edited(src: Path, dst: Path, edit, rechecksum: bool) -> Path:
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
        if rechecksum:
            f.attrs["checksum"] = np.bytes_(checksum(f).encode())
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

def _corrupt(data, blob: bytes) -> tuple[str, bytes, str]:
    """(kind, damaged bytes, where) for one drawn corruption of `blob`."""
    n = len(blob)
    kind = data.draw(st.sampled_from(["truncate", "flip", "zeros", "random", "append", "empty"]),
                     label="corruption")
    if kind == "truncate":
        length = data.draw(st.integers(0, n - 1), label="length")
        return kind, blob[:length], f"cut to {length} of {n} bytes"
    if kind == "flip":
        out, flips = bytearray(blob), []
        for _ in range(data.draw(st.integers(1, 8), label="n_flips")):
            at = data.draw(st.integers(0, n - 1), label="offset")
            mask = data.draw(st.integers(1, 255), label="xor")
            out[at] ^= mask
            flips.append(f"{at}^{mask:#04x}")
        return kind, bytes(out), "bytes " + ", ".join(flips)
    if kind in ("zeros", "random"):
        at = data.draw(st.integers(0, n - 1), label="offset")
        if kind == "zeros":
            span = bytes(data.draw(st.integers(1, MAX_SPAN), label="length"))
        else:
            span = data.draw(st.binary(min_size=1, max_size=MAX_SPAN), label="bytes")
        span = span[:n - at]
        return (kind, blob[:at] + span + blob[at + len(span):],
                f"offsets {at}..{at + len(span) - 1} overwritten")
    if kind == "append":
        tail = data.draw(st.binary(min_size=1, max_size=MAX_SPAN), label="tail")
        return kind, blob + tail, f"{len(tail)} bytes appended"
    return kind, b"", "empty file"


# derandomize (implies database=None): every run of the same command on the same tree draws
# the same 500 examples, seeded from this test's source, so a failure seen once recurs on a
# rerun. Hypothesis also mixes in constants from the loaded neurovae modules: a whole-suite
# run can differ from a one-file run in a few examples.
@settings(max_examples=500, deadline=timedelta(seconds=HANG_LIMIT_S + 3), derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],   # a hang is slow to shrink
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_damaged_file_loads_identically_or_raises_net_format_error(original, folder, worker,
                                                                  data):
    blob, expected = original
    kind, damaged, where = _corrupt(data, blob)
    # a fresh name (and inode) each time: HDF5 recognises an already-open file by its inode
    path = folder / f"damaged-{next(_serial)}.net"
    path.write_bytes(damaged)
    outcome, detail = worker(path)
    if (outcome == "NetFormatError" and detail) or (outcome == "summary" and detail == expected):
        path.unlink()
        return
    kept = folder / f"loader-bug-{kind}.net"
    path.replace(kept)
    if outcome == "summary":
        raise AssertionError(f"LOADER BUG: {kind} damage ({where}) was accepted but loads a "
                             f"different network than the one written. File kept at {kept}")
    raise AssertionError(f"LOADER BUG: {kind} damage ({where}) gave {outcome}: {detail!r}; "
                         f"NetFormatError expected. Damaged file kept at {kept}")


def test_zeroed_global_heap_entry_is_rejected_not_hung(original, folder, worker):
    """Variable-length strings live in an HDF5 global heap; HDF5 loops forever on a heap
    object whose header reads index 0, size 0. The writer never stores variable-length data,
    so this file is made by hand: its 'format' attribute rewritten as a variable-length
    string, then the heap object's header zeroed. The loader must refuse it, not hang."""
    blob, _ = original
    src = folder / "vlen.net"
    src.write_bytes(blob)
    with h5py.File(src, "r+") as f:
        f.attrs["format"] = "neurovae-net"          # a Python str: variable-length
    vlen = src.read_bytes()
    at = vlen.find(b"GCOL")
    assert at >= 0, "h5py stored no global heap for a variable-length string"
    assert "variable-length" in _error(src)
    damaged = bytearray(vlen)
    damaged[at + 16:at + 32] = bytes(16)        # the first heap object's 16-byte header
    path = folder / "zeroed-heap-entry.net"
    path.write_bytes(bytes(damaged))
    outcome, detail = worker(path)
    assert outcome == "NetFormatError", (
        f"LOADER BUG: zeroing the header of the first global-heap object (file offsets "
        f"{at + 16}..{at + 31}) gave {outcome}: {detail!r}; NetFormatError expected")


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
    path = _edited(fsvae_file[0], folder / f"v3-{rechecksum}.net",
                   _set_attr("/", "format_version", 3), rechecksum)
    msg = _error(path).lower()
    assert "newer" in msg and "upgrade" in msg, msg


def test_old_clock_format_asks_for_a_retrained_model(fsvae_file, folder):
    path = _edited(fsvae_file[0], folder / "v1.net", _set_attr("/", "format_version", 1), True)
    msg = _error(path)
    assert "version 1" in msg and "old single clock" in msg and "Retrain" in msg, msg


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
     "encoder/layer/1/neuron/iDecay", "iDecay 0 is accepted, but Lava's du = iDecay - 1 is "
                                      "12-bit unsigned (the Lava graph clamps it to 0, keeping "
                                      "4095/4096 of u where the emulator keeps all): iDecay "
                                      "must be 1..4096"),
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
        message = None
    except NetFormatError as exc:
        message = str(exc)
    assert message is not None, f"LOADER BUG: {problem}"
    assert where in message, f"LOADER BUG: {problem}; got: {message}"
