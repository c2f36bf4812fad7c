"""Export: the standalone model.py of every shipped spec runs without archspec and gives
torch.equal outputs; TorchScript and torch.export programs load back and agree."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import ROOT, spec_text
from test_analyse import SPECS

import archspec
from archspec.analyse import load_with_inputs
from archspec.errors import ArchSpecError, OutputError
from archspec.export import constructor, example_inputs, export, python_source
from archspec.ops import REGISTRY, Op, OpAttrs

RUNNER = """
import importlib.util, json, sys
sys.modules["archspec"] = None  # any `import archspec` in model.py fails
import torch
torch.manual_seed(0)
for job in json.load(open(sys.argv[1])):
    spec = importlib.util.spec_from_file_location("model_" + job["name"], job["model"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.Model().eval()
    state = torch.load(job["state"], weights_only=True)
    model.load_state_dict(state, strict=True)
    assert list(model.state_dict()) == list(state), "state_dict key order differs"
    inputs = torch.load(job["inputs"], weights_only=True)
    with torch.no_grad():
        out = model(*inputs)
    torch.save(out, job["out"])
print("ok")
"""


@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
def test_standalone_python_of_every_spec(tmp_path: Path):
    """One fresh interpreter, isolated (-I), archspec blocked, runs every exported model."""
    jobs, expected = [], {}
    for spec in SPECS:
        g = _small(spec)
        model = archspec.compile(g).eval()
        with torch.no_grad():  # non-trivial BN statistics, so eval mode is really tested
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        d = tmp_path / spec.stem
        export(g, "python", d / "model.py", model=model)
        inputs = example_inputs(g, batch=1)
        torch.save(model.state_dict(), d / "state.pt")
        torch.save(inputs, d / "inputs.pt")
        with torch.no_grad():
            expected[spec.stem] = model(*inputs)
        jobs.append({"name": spec.stem, "model": str(d / "model.py"), "state": str(d / "state.pt"),
                     "inputs": str(d / "inputs.pt"), "out": str(d / "out.pt")})
        assert "archspec" not in (d / "model.py").read_text().split('"""', 2)[2]  # only the docstring names it
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "run.py").write_text(RUNNER)
    r = subprocess.run([sys.executable, "-I", str(tmp_path / "run.py"), str(tmp_path / "jobs.json")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for job in jobs:
        got = torch.load(job["out"], weights_only=True)
        want = expected[job["name"]]
        if isinstance(want, dict):  # outputs by name: the same keys in the same order
            assert list(got) == list(want), job["name"]
            pairs: Sequence[Any] = [(got[k], want[k]) for k in want]
        else:
            pairs = zip(got, want, strict=True) if isinstance(want, tuple) else [(got, want)]
        for a, b in pairs:
            assert torch.equal(a, b), job["name"]


def _small(spec: Path) -> archspec.Graph:
    """The spec at 64x64 where it is larger and allows it: the same code, a quicker test."""
    g = archspec.load(spec)
    small = {k: (s[0], 64, 64) for k, s in g.inputs.items() if len(s) == 3 and min(s[1:]) > 64}
    try:
        return load_with_inputs(spec, None, small) if small else g
    except ArchSpecError:
        return g


def test_python_source_reads_like_a_hand_written_model():
    g = archspec.load(ROOT / "specs/resnet18.yaml")
    src = python_source(g, archspec.compile(g))
    assert "class Resnet18(nn.Module):" in src and "\nModel = Resnet18\n" in src
    assert "self.layer2[0].downsample.append(nn.Conv2d(64, 128, kernel_size=(1, 1), stride=(2, 2), padding=(0, 0), bias=False))" in src
    assert "layer1_0_bn2 += maxpool\n        layer1_0_add = layer1_0_bn2  # (N, 64, 56, 56)" in src
    assert "layer1_0_relu2 = torch.relu_(layer1_0_add)" in src
    assert "fc = self.fc(flatten)  # (N, 1000)" in src
    compile(src, "model.py", "exec")


def test_zero_pad_helper_is_copied_into_the_file(tmp_path: Path):
    text = (ROOT / "specs/resnet18_cifar.yaml").read_text().replace(
        "projection: {kind: conv_bn, name: downsample}", "projection: {kind: zero_pad}")
    g = archspec.load(text)
    model = archspec.compile(g).eval()
    src = python_source(g, model)
    assert "def zero_pad_shortcut(" in src
    ns: dict[str, Any] = {}
    exec(compile(src, "model.py", "exec"), ns)  # noqa: S102 - our own generated code
    clone = ns["Model"]().eval()
    clone.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))


def test_constructors_rebuild_modules_exactly():
    from torch import nn

    for m in [nn.Conv2d(4, 8, 3, padding="same", dilation=2, groups=2, padding_mode="reflect"),
              nn.Conv1d(2, 2, 5, stride=2, bias=False), nn.ConvTranspose3d(2, 4, 2, stride=2, output_padding=1),
              nn.BatchNorm1d(3, eps=1e-3, momentum=None), nn.LayerNorm([4, 5], elementwise_affine=False),
              nn.GroupNorm(2, 4), nn.InstanceNorm2d(3, affine=True), nn.Linear(3, 4, bias=False), nn.Dropout(0.25),
              nn.PReLU(), nn.PReLU(3, init=0.1)]:
        rebuilt = eval(constructor(m, "m"), {"nn": nn})  # noqa: S307 - our own generated code
        assert repr(rebuilt) == repr(m)
        assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == [(k, v.shape) for k, v in m.state_dict().items()]
    # A module of no known constructor is exported only as its default construction.
    assert constructor(nn.PReLU(3, init=0.1), "m") == "nn.PReLU(num_parameters=3, init=0.1)"
    with pytest.raises(ArchSpecError, match=r"cannot export module 'm' \(Softplus\) as standalone Python"):
        constructor(nn.Softplus(beta=2), "m")


class _Custom(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _ModAttrs(OpAttrs):
    variant: str = "custom"


class _ModuleOp(Op):
    name = "export_test_module"
    Attrs = _ModAttrs
    stateless = False

    def infer(self, a: Any, shapes: Any) -> Any:
        return shapes[0]

    def module(self, a: Any, shapes: Any) -> Any:
        return _Custom() if a.variant == "custom" else torch.nn.MultiheadAttention(4, 1)


def _lambda_call(self: Any, a: Any, shapes: Any, args: Any) -> Any:
    return (lambda t: t), (args[0],), {}


def _complex_call(self: Any, a: Any, shapes: Any, args: Any) -> Any:
    return torch.add, (args[0],), {"other": 1 + 2j}


class _FnOp(Op):
    name = "export_test_fn"
    Attrs = _ModAttrs

    def infer(self, a: Any, shapes: Any) -> Any:
        return shapes[0]

    def call(self, a: Any, shapes: Any, args: Any) -> Any:
        return (_lambda_call if a.variant == "lambda" else _complex_call)(self, a, shapes, args)


@pytest.fixture
def custom_ops():
    REGISTRY.register(_ModuleOp)
    REGISTRY.register(_FnOp)
    yield
    REGISTRY.unregister("export_test_module")
    REGISTRY.unregister("export_test_fn")


def _one_node(op: str, kind: str) -> str:
    return spec_text(f"""
        archspec: 1
        name: custom
        inputs: {{x: [4, 4]}}
        nodes:
          a: {{op: {op}, variant: {kind}}}
        outputs: [a]
    """)


@pytest.mark.parametrize("op, kind, message", [
    ("export_test_module", "custom", r"cannot export module 'a' as standalone Python: it is a test_export\._Custom, "
                                     "not a torch.nn module"),
    ("export_test_module", "mha", r"cannot export module 'a' \(MultiheadAttention\) as standalone Python"),
    ("export_test_fn", "lambda", r"cannot export the function test_export\._lambda_call\.<locals>\.<lambda> as standalone Python"),
    ("export_test_fn", "complex", r"cannot write the constant \(1\+2j\) \(complex\) as Python"),
])
def test_what_python_export_refuses(custom_ops, op: str, kind: str, message: str):
    g = archspec.load(_one_node(op, kind))
    with pytest.raises(ArchSpecError, match=message) as e:
        python_source(g, archspec.compile(g))
    assert e.value.fix is None or "--to torchscript" in e.value.fix


@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
def test_torchscript_and_export_programs_load_and_agree(tmp_path: Path):
    g = archspec.load(ROOT / "specs/resnet18_cifar.yaml", {"width": 8})
    model = archspec.compile(g).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
    ts = export(g, "torchscript", tmp_path / "m.ts", model=model)
    with torch.no_grad():
        assert torch.allclose(_jit_load(ts)(x), want, atol=1e-5)
    ep = export(g, "export", tmp_path / "m.pt2", model=model)
    program = torch.export.load(io.BytesIO(ep.read_bytes()))
    for batch in (1, 2, 5):  # traced at 2, the batch size is free
        (ex,) = example_inputs(g, batch)
        with torch.no_grad():
            assert torch.allclose(program.module()(ex), model(ex), atol=1e-5)
    with pytest.raises(OutputError, match="exists"):
        export(g, "export", tmp_path / "m.pt2", model=model)
    export(g, "export", tmp_path / "m.pt2", model=model, force=True)


def test_export_format_and_onnx_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    g = archspec.load(ROOT / "specs/resnet18_cifar.yaml", {"width": 8})
    with pytest.raises(ArchSpecError, match="unknown export format 'tflite'"):
        export(g, "tflite", tmp_path / "m")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("onnx") else real(name, *a))
    with pytest.raises(ArchSpecError, match="ONNX export needs onnx and onnxscript, which are not installed") as e:
        export(g, "onnx", tmp_path / "m.onnx")
    assert "pip install 'archspec[onnx]'" in (e.value.fix or "")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.skipif(not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
                    reason="the onnx extra is not installed")
def test_onnx_runs_in_onnxruntime(tmp_path: Path):  # pragma: no cover - optional extra
    import onnxruntime

    g = archspec.load(ROOT / "specs/resnet18_cifar.yaml", {"width": 8})
    model = archspec.compile(g).eval()
    path = export(g, "onnx", tmp_path / "m.onnx", model=model)
    session = onnxruntime.InferenceSession(str(path))
    for batch in (1, 3):
        (x,) = example_inputs(g, batch)
        (got,) = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            assert torch.allclose(torch.from_numpy(got), model(x), atol=1e-4)


def _jit_load(path: Path) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream
        return torch.jit.load(str(path))


def test_an_export_limit_is_its_own_error_and_exit_code(custom_ops, tmp_path: Path):
    from click.testing import CliRunner

    from archspec.cli import main
    from archspec.errors import ExportError

    g = archspec.load(_one_node("export_test_module", "mha"))
    with pytest.raises(ExportError, match=r"cannot export module 'a' \(MultiheadAttention\) as standalone Python"):
        python_source(g, archspec.compile(g))
    spec = tmp_path / "custom.yaml"
    spec.write_text(_one_node("export_test_module", "mha"))
    r = CliRunner().invoke(main, ["export", str(spec), "-o", str(tmp_path / "m.py")])
    # The spec is valid (check passes): the format cannot write it, which is not exit 2.
    assert r.exit_code == 3, r.output
    assert "ExportError: cannot export module 'a' (MultiheadAttention) as standalone Python" in r.output
    assert not (tmp_path / "m.py").exists()
    assert CliRunner().invoke(main, ["check", str(spec)]).exit_code == 0
