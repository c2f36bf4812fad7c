"""The errors a training run can raise: each an ArchSpecError, so the CLI exits 2."""

from __future__ import annotations

from ..errors import ArchSpecError


class DataError(ArchSpecError):
    """A data source that is unknown, missing, malformed, or does not fit the spec."""


class RunError(ArchSpecError):
    """A run folder, device or setting that the run cannot use."""
