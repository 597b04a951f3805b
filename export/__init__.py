"""neurovae.export: trained model -> one HDF5 `.net` file, and its validating loader."""
from .format import FORMAT_NAME, FORMAT_VERSION, NetFormatError
from .loader import load
from .writer import write, write_stage

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "NetFormatError", "load", "write", "write_stage"]
