"""The package passes its type checker: mypy, configured in pyproject.toml, reports nothing."""

from __future__ import annotations

import pytest
from helpers import mypy_process

pytest.importorskip("mypy", reason="mypy comes with the dev extra: pip install -e '.[dev]'")


@pytest.mark.slow
def test_mypy_reports_no_error() -> None:
    """``python -m mypy`` from the repository root; tests/conftest.py starts it at the start
    of the session, so it has usually finished by the time this test runs."""
    proc = mypy_process()
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stdout + stderr
    assert "Success: no issues found" in stdout
