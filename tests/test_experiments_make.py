"""make degradation: the four CIFAR networks trained by archspec train and drawn by
archspec plot, here on generated data for one epoch."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

NETS = ("plain20", "plain56", "resnet20", "resnet56")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_degradation_on_synthetic_data(tmp_path: Path):
    pytest.importorskip("archspec.train", reason="archspec train is not part of this checkout yet")
    r = subprocess.run(["make", "-s", "degradation", "DATA=synthetic:32", "EPOCHS=1", f"RUNS={tmp_path}",
                        f"ARCHSPEC={sys.executable} -m archspec", "TRAIN_FLAGS=--batch-size 16"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    for net in NETS:
        with (tmp_path / net / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [row["epoch"] for row in rows] == ["1"] and float(rows[0]["train_loss"]) > 0, net
        assert f"{net}: 1 epochs" in r.stdout
    assert (tmp_path / "degradation.png").read_bytes().startswith(b"\x89PNG")
    run_json = (tmp_path / "plain56" / "run.json").read_text()
    assert '"n": 9' in run_json and '"residual": false' in run_json
