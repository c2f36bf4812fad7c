"""The package passes its type checker: mypy, configured in pyproject.toml, reports nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT

pytest.importorskip("mypy", reason="mypy comes with the dev extra: pip install -e '.[dev]'")


@pytest.mark.slow
def test_mypy_reports_no_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout
