"""The one error type of the data package, so that the CLI can show any dataset problem as one line."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset is missing or unusable; the message names the problem and the fix (shown to the user in one line, CLI exit 2)."""
