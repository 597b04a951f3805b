"""The data a command runs a model on: checks of --dataset/--data-dir, and the model's
test images, read the same way by reconstruct, verify, evaluate and profile."""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import NeurovaeError


def check_dataset(name: str, data_dir=None) -> None:
    """Refuse an unknown dataset name or a --data-dir that is not a folder, before any work."""
    from .data import DATASETS
    if name not in DATASETS:
        raise NeurovaeError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise NeurovaeError(f"--data-dir {data_dir} does not exist or is not a folder")


def check_folder_sizes(data_dir) -> None:
    """An image folder of mixed sizes would be silently resized: ask for the size instead."""
    from .data.image_files import header_size
    from .data.sources.folder import folder_files, folder_root
    root = folder_root(data_dir)
    files = folder_files(root)                  # refuses non-image files
    sizes = {}
    for f in files:
        sizes.setdefault(header_size(f), f)
        if len(sizes) > 1:
            (a, fa), (b, fb) = list(sizes.items())[:2]
            raise NeurovaeError(
                f"images in {root} differ in size ({fa.name} is {a[0]}x{a[1]}, {fb.name} is "
                f"{b[0]}x{b[1]}); pass --set image_size=N to resize them all to N x N")


def test_set(config: dict, image_shape, dataset: str | None = None, data_dir=None):
    """The test split a model is measured on, as an ImageSet at the model's image shape.

    `dataset` defaults to the one the model was trained on (`config`, a training config as
    a dict); `data_dir` defaults to the training one when the dataset is the model's own.
    """
    from . import data
    own = config.get("dataset", "mnist")
    name = dataset or own
    if data_dir is None and name == own:
        data_dir = config.get("data_dir")
    channels, size = image_shape[0], image_shape[1]
    return data.load_images(name, "test", data_dir, size, channels)


def test_images(net, n: int, dataset: str | None = None, data_dir=None) -> torch.Tensor:
    """The first `n` test images (fewer if the split is smaller) of a `.net` model's
    dataset, as uint8 (n, C, H, W)."""
    test = test_set(net.config, net.image_shape, dataset, data_dir)
    return test.tensor(torch.arange(min(n, len(test))))


test_set.__test__ = test_images.__test__ = False   # not pytest tests, despite the names
