"""The data sources, one module each; importing a module registers it in ``DATASETS`` (add a source: add a module, import it here)."""

# Import order is registration order, the order in which dataset names are listed in messages.
from . import mnist, fashion_mnist, cifar10, celeba, folder  # noqa: F401
