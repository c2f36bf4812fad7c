"""archspec.weights: safe state_dict files, one clear error for any mismatch, never a
partial load."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import archspec
from archspec.errors import WeightsError
from archspec.weights import load_weights, read_state_dict, save_weights

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "resnet_cifar.yaml"


def model(**params):
    torch.manual_seed(len(params))
    return archspec.compile(SPEC, params or None)


def snapshot(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_round_trip(tmp_path, suffix):
    src = model()
    with torch.no_grad():  # make the buffers differ from a fresh model's too
        for k, v in src.state_dict().items():
            if k.endswith("running_var"):
                v.uniform_(0.5, 1.5)
            elif k.endswith("running_mean"):
                v.normal_(0, 0.1)
            elif k.endswith("num_batches_tracked"):
                v.fill_(7)
    path = save_weights(src, tmp_path / f"w{suffix}")
    dst = model(width=16)  # same architecture, different init
    assert not same(snapshot(dst), snapshot(src))
    load_weights(dst, path)
    assert same(snapshot(dst), snapshot(src))
    x = torch.randn(2, 3, 32, 32)
    out = src.eval()(x)
    assert torch.isfinite(out).all() and torch.equal(out, dst.eval()(x))


def test_compile_and_plain_torch_save_files(tmp_path):
    src = model()
    torch.save(src.state_dict(), tmp_path / "plain.pt")
    torch.save({"state_dict": src.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    for name in ("plain.pt", "wrapped.pth"):
        m = archspec.compile(SPEC, weights=tmp_path / name)
        assert same(snapshot(m), snapshot(src))


def test_mismatch_is_one_error_listing_everything_and_loads_nothing(tmp_path):
    src = model(num_classes=100)  # fc is mis-shaped
    state = dict(src.state_dict())
    del state["layer1.0.conv1.weight"], state["bn1.bias"]  # missing
    state["head.weight"] = torch.zeros(3)  # unexpected
    state["layer1.0.bn1.bias"] = torch.zeros(16)  # right shape: would load if loading were partial
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    dst = model()
    before = snapshot(dst)
    with pytest.raises(WeightsError) as e:
        load_weights(dst, path)
    msg = str(e.value)
    assert "2 missing, 1 unexpected, 2 mis-shaped" in msg and "the model is unchanged" in msg
    assert "missing (2):\n    bn1.bias\n    layer1.0.conv1.weight" in msg
    assert "unexpected (1):\n    head.weight" in msg
    assert "fc.weight: file 100x64, model 10x64" in msg and "fc.bias: file 100, model 10" in msg
    assert same(snapshot(dst), before)  # nothing copied, not even the matching keys
    assert e.value.fix is not None


def test_long_lists_are_cut(tmp_path):
    path = tmp_path / "empty.safetensors"
    save_file({"x": torch.zeros(1)}, path)
    with pytest.raises(WeightsError) as e:
        load_weights(model(), path)
    n = sum(not k.endswith("num_batches_tracked") for k in model().state_dict())  # those may be absent
    assert f"missing ({n}):" in str(e.value) and f"... and {n - 20} more" in str(e.value)


def test_num_batches_tracked_may_be_absent(tmp_path):
    """Old checkpoints (torchvision's ImageNet weights) predate the BN counter; torch
    accepts them, so do we."""
    src = model()
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, tmp_path / "old.safetensors")
    dst = model()
    load_weights(dst, tmp_path / "old.safetensors")
    assert same({k: v for k, v in snapshot(dst).items() if k in state}, state)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_bearing_checkpoint_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": Evil()}, path)
    with pytest.raises(WeightsError, match="refused: it is not a weights-only checkpoint"):
        load_weights(model(), path)
    assert "pwned" not in capsys.readouterr().out
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(WeightsError, match="refused"):
        read_state_dict(raw)
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize("content,match", [
    (b"not a safetensors file", "not a readable safetensors file"),
])
def test_corrupt_safetensors(tmp_path, content, match):
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=match):
        load_weights(model(), path)


def test_bad_paths_and_contents(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(model(), tmp_path / "nope.pt")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(WeightsError, match="unknown suffix"):
        load_weights(model(), tmp_path / "w.npz")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="holds a list, not a state_dict"):
        load_weights(model(), tmp_path / "list.pt")
    torch.save({k: 1.0 for k in model().state_dict()}, tmp_path / "floats.pt")
    with pytest.raises(WeightsError, match="not a tensor"):
        load_weights(model(), tmp_path / "floats.pt")


def test_ddp_prefix_gets_a_hint(tmp_path):
    state = {f"module.{k}": v for k, v in model().state_dict().items()}
    save_file(state, tmp_path / "ddp.safetensors")
    with pytest.raises(WeightsError) as e:
        load_weights(model(), tmp_path / "ddp.safetensors")
    assert "module." in (e.value.fix or "")


def test_cli_build_weights(tmp_path):
    from click.testing import CliRunner

    from archspec.cli import main

    good = save_weights(model(), tmp_path / "good.safetensors")
    r = CliRunner().invoke(main, ["build", str(SPEC), "--weights", str(good), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    bad = save_weights(model(num_classes=7), tmp_path / "bad.safetensors")
    r = CliRunner().invoke(main, ["build", str(SPEC), "--weights", str(bad), "-o", str(tmp_path / "out2")])
    assert r.exit_code == 2 and "WeightsError" in r.output and "fc.weight: file 7x64, model 10x64" in r.output
