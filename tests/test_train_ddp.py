"""Two gloo processes through torchrun (`archspec train --nproc 2`) on the CPU, against one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from helpers import ROOT
from safetensors.torch import load_file
from test_train import TINY, run_cli, write_spec

from archspec.train.commands import _forward
from archspec.train.dist import torchrun_command

NO_BN = TINY.replace("bn: true}", "bn: false}")  # batch norm statistics differ per process


def test_two_processes_equal_one_on_the_same_global_batch(tmp_path: Path):
    spec = write_spec(tmp_path, NO_BN)
    common = [str(spec), "--data", "synthetic:128", "--epochs", "2", "--batch-size", "32", "--device", "cpu"]
    r = subprocess.run([sys.executable, "-m", "archspec", "train", *common, "--nproc", "2", "--out",
                        str(tmp_path / "ddp")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "4 steps of 32 per epoch, cpu, 2 processes" in r.stdout
    assert r.stdout.count("done: ") == 1  # rank 0 alone reports
    info = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert (info["world_size"], info["replicas_identical"], info["status"]) == (2, True, "complete")
    run_cli("train", *common, "--out", tmp_path / "one")
    ddp, one = load_file(str(tmp_path / "ddp" / "last.safetensors")), load_file(str(tmp_path / "one" / "last.safetensors"))
    assert ddp.keys() == one.keys()
    for k in one:  # the gradient is averaged in two halves instead of one: equal up to rounding
        torch.testing.assert_close(ddp[k], one[k], rtol=1e-5, atol=1e-6)


def test_nproc_forwards_the_command_to_torchrun(tmp_path: Path):
    args = _forward(tmp_path / "s.yaml", "cells", None, tmp_path / "o", True, None, None, {"depth": 3, "up": "x"},
                    {"epochs": 2, "amp": "bf16", "channels_last": True, "augment": False, "lr": None}, False)
    assert args == [str(tmp_path / "s.yaml"), "-p", "depth=3", "-p", 'up="x"', "--data", "cells", "--out",
                    str(tmp_path / "o"), "--epochs", "2", "--amp", "bf16", "--channels-last", "--no-augment", "--force"]
    cmd = torchrun_command(4, args)
    assert cmd[:7] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4", "-m"]
    assert cmd[7:9] == ["archspec", "train"]
