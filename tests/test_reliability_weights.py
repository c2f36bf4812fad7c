"""Weights: compared from the file's metadata before any tensor is read, refused when
they are sparse, quantized or complex, and loaded all or nothing."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from bounded import bounded
from helpers import ROOT

import archspec
from archspec.errors import WeightsError
from archspec.weights import load_weights

SPEC = ("archspec: 1\nname: t\ninputs: {x: [3, 8, 8]}\nnodes:\n  c: {op: conv, in: x, out: 4, k: 3}\n"
        "  f: {op: flatten}\n  l: {op: linear, out: 2}\noutputs: [l]\n")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return archspec.compile(SPEC)


def _state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _unchanged(m: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_a_safetensors_header_claiming_a_huge_tensor_is_refused_unread(tmp_path: Path) -> None:
    # 24 bytes of file whose header claims a 6 GB tensor for c.weight: the data is never read.
    m = _model()
    header = {"c.weight": {"dtype": "F32", "shape": [40000, 40000], "data_offsets": [0, 6_400_000_000]}}
    raw = json.dumps(header).encode()
    p = tmp_path / "w.safetensors"
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    before = _state(m)

    def go() -> str:
        with pytest.raises(WeightsError) as e:
            load_weights(m, p)
        return str(e.value)
    msg = bounded(go, cpu=20, memory=1 << 30)
    assert "mis-shaped" in msg and "c.weight: file 40000x40000, model 4x3x3x3" in msg and "missing" in msg
    assert _unchanged(m, before)


def test_a_zip_bomb_torch_archive_is_refused_unread(tmp_path: Path) -> None:
    # A deflated 1 GB storage is a few MB on disk: the archive's sizes say so first.
    m = _model()
    p = tmp_path / "w.pt"
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"x")
        with z.open("archive/data/0", "w") as f:
            block = b"\0" * (1 << 20)
            for _ in range(1024):
                f.write(block)
    assert p.stat().st_size < 8 << 20

    def go() -> str:
        with pytest.raises(WeightsError, match=r"holds 107374\d+ bytes unpacked, more than the \d+ bytes") as e:
            load_weights(m, p)
        return e.value.fix or ""
    assert "state_dict" in bounded(go, cpu=20, memory=1 << 30)


def _small_archive_claiming(p: Path, m: torch.nn.Module, **claims: torch.Tensor) -> None:
    """A real torch archive of ``m``'s state_dict in which some keys hold other tensors:
    a meta tensor claims any size and stores no byte, so a few KB claim gigabytes."""
    state = {**_state(m), **claims}
    torch.save(state, p)
    assert p.stat().st_size < 64 << 10


@pytest.mark.parametrize(("claim", "message"), [
    (torch.empty(40000, 40000, device="meta"), "mis-shaped (1):\n    c.weight: file 40000x40000, model 4x3x3x3"),
    (torch.zeros(4, 3, 3, 3, dtype=torch.int64), "unsupported (1):\n    c.weight: int64 values for a float32 tensor"),
])
def test_a_torch_archive_is_compared_from_its_pickle_before_any_tensor_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claim: torch.Tensor, message: str) -> None:
    # The archive's pickle names keys, dtypes and shapes; its storages are never read
    # (torch.load is not reached), so a 6 GB claim allocates nothing.
    m = _model()
    p = tmp_path / "w.pt"
    _small_archive_claiming(p, m, **{"c.weight": claim})
    before = _state(m)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load was called")
    monkeypatch.setattr(torch, "load", never)

    def go() -> str:
        with pytest.raises(WeightsError, match="do not match the model") as e:
            load_weights(m, p)
        return str(e.value)
    assert message in bounded(go, cpu=20, memory=1 << 30)
    assert _unchanged(m, before)


def test_a_fitting_torch_archive_still_loads(tmp_path: Path) -> None:
    src, m = _model(), _model()
    with torch.no_grad():
        for v in src.parameters():
            v.add_(1)
    p = tmp_path / "w.pt"
    torch.save(src.state_dict(), p)
    load_weights(m, p)
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in m.state_dict().items())


@pytest.mark.parametrize(("make", "why"), [
    (lambda t: t.to_sparse(), "a sparse_coo tensor"),
    (lambda t: torch.quantize_per_tensor(t, 0.1, 0, torch.qint8), "a quantized tensor"),
    (lambda t: t.to(torch.complex64), "a complex tensor"),
    (lambda t: t.to(torch.int64), "int64 values for a float32 tensor"),
])
@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_unsupported_tensors_are_one_weights_error(tmp_path: Path, make: object, why: str) -> None:
    m = _model()
    state = _state(m)
    state["c.bias"] = make(torch.ones_like(state["c.bias"]))  # type: ignore[operator]
    p = tmp_path / "w.pt"
    torch.save(state, p)
    before = _state(m)
    with pytest.raises(WeightsError, match="1 unsupported") as e:
        load_weights(m, p)
    assert f"c.bias: {why}" in str(e.value)
    assert _unchanged(m, before)


def test_safetensors_integer_weights_are_refused_from_the_header(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    m = _model()
    state = _state(m)
    state["l.weight"] = state["l.weight"].to(torch.int32)
    p = tmp_path / "w.safetensors"
    save_file(state, str(p))
    with pytest.raises(WeightsError, match="l.weight: I32 values for a float32 tensor"):
        load_weights(m, p)


def test_a_failed_copy_leaves_every_parameter_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _model()
    p = tmp_path / "w.pt"
    new = {k: v + 1 for k, v in _state(m).items()}
    torch.save(new, p)
    before = _state(m)
    real = torch.Tensor.copy_
    calls = [0]

    def flaky(self: torch.Tensor, src: torch.Tensor, *a: object, **k: object) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == 2:  # the first tensor is copied, the second fails
            raise RuntimeError("copy failed")
        return real(self, src, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.Tensor, "copy_", flaky)
    with pytest.raises(WeightsError, match="could not be copied into the model: .*copy failed.* .the model is unchanged.$"):
        load_weights(m, p)
    monkeypatch.undo()
    assert _unchanged(m, before)
    load_weights(m, p)
    assert all(torch.equal(v, new[k]) for k, v in m.state_dict().items())


def test_unsupported_weights_exit_2_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "net.yaml").write_text(SPEC)
    state = _state(_model())
    state["c.weight"] = state["c.weight"].to_sparse()
    torch.save(state, tmp_path / "w.pt")
    r = subprocess.run([sys.executable, "-m", "archspec.cli", "build", "net.yaml", "--weights", "w.pt", "-o", "out"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 2, r.stderr
    assert "WeightsError" in r.stderr and "c.weight: a sparse_coo tensor" in r.stderr
