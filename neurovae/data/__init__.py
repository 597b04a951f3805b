"""Image datasets as uint8 ``(C, H, W)`` tensors, read offline from the registered sources, with one-line user-facing errors.

Sources (one module each under ``sources/``): mnist, fashion-mnist, cifar10, celeba, folder.
"""

from .api import dataset_channels, load_images, wants_flip
from .cache import clear_cache
from .errors import DatasetError
from .idx import read_idx_images, read_idx_labels
from .imageset import ImageSet
from .registry import DATASETS, SPLITS, Source, register
from .transforms import random_flip

from . import sources  # registers every source in DATASETS
from .sources.fashion_mnist import DEFAULT_DIRS as FASHION_MNIST_DIRS  # overridable, e.g. in tests
from .sources.folder import IMAGE_EXTENSIONS


__all__ = [
    "DATASETS",
    "SPLITS",
    "FASHION_MNIST_DIRS",
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "ImageSet",
    "Source",
    "dataset_channels",
    "load_images",
    "read_idx_images",
    "read_idx_labels",
    "random_flip",
    "register",
    "wants_flip",
    "clear_cache",
]
