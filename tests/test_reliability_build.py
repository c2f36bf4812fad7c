"""build and export stay within memory: parameters checked against the memory available
before anything is allocated, and torch.export traced on inputs that hold no data."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import torch  # imported here, so the limited children below inherit it mapped
from bounded import bounded

import archspec
from archspec.errors import LimitError, OutputError

api: Any = importlib.import_module("archspec.api")
export: Any = importlib.import_module("archspec.export")

# Inside every limit `check` applies: 2^31 - 2^16 elements per sample (8 GiB of float32,
# 17 GiB for the traced batch of 2), a handful of parameters.
BIG_INPUT = ("archspec: 1\nname: big\ninputs: {x: [1, 32767, 65536]}\nnodes:\n"
             "  c: {op: conv, in: x, out: 2, k: 1, stride: 64}\n  p: {op: adaptive_avgpool, size: 1}\n"
             "  f: {op: flatten}\n  l: {op: linear, out: 2}\noutputs: [l]\n")
BIG_PARAMS = ("archspec: 1\nname: wide\ninputs: {x: [16]}\nnodes:\n"
              "  a: {op: linear, in: x, out: 65536}\n  b: {op: linear, out: 16384}\n  c: {op: linear, out: 16384}\n"
              "outputs: [c]\n")  # 1.34e9 parameters: 5 GiB of float32, under the default --max-params


def test_export_traces_a_huge_input_without_allocating_it(tmp_path: Path) -> None:
    def go() -> int:
        out = export.export(archspec.load(BIG_INPUT), "export", tmp_path / "big.pt2")
        return out.stat().st_size
    assert bounded(go, cpu=60, memory=2 << 30, wall=300) > 0


def test_build_refuses_parameters_larger_than_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    assert archspec.check(BIG_PARAMS).graph is not None  # within the default limits
    monkeypatch.setattr(api, "available_memory", lambda: 4 << 30)
    with pytest.raises(LimitError, match=r"building 'wide' needs 5\.0 GiB for its 1,343,324,160 float32 parameters, "
                                         r"more than the 4\.0 GiB of memory available") as e:
        bounded(lambda: archspec.compile(BIG_PARAMS), cpu=20, memory=1 << 30)
    assert "--max-params" in (e.value.fix or "")
    with pytest.raises(LimitError, match="building 'wide' needs"):
        bounded(lambda: export.export(archspec.load(BIG_PARAMS), "python", Path("/nonexistent/m.py")), cpu=20,
                memory=1 << 30)


def test_torchscript_tracing_a_huge_input_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "available_memory", lambda: 8 << 30)
    with pytest.raises(LimitError, match=r"tracing 'big' for TorchScript needs a batch of inputs of 16\.0 GiB"):
        export._check_trace_memory(archspec.load(BIG_INPUT))


def test_a_torchscript_write_torch_aborts_is_one_output_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch.jit, "save", boom)
    spec = "archspec: 1\nname: t\ninputs: {x: [3, 8, 8]}\nnodes:\n  c: {op: conv, in: x, out: 4, k: 3}\noutputs: [c]\n"
    with pytest.raises(OutputError, match="TorchScript could not write 't': .enforce fail") as e:
        export.export(archspec.load(spec), "torchscript", tmp_path / "m.pt")
    assert "--to export" in (e.value.fix or "")
    assert list(tmp_path.iterdir()) == []
