"""Every shipped spec: compiles, lints, and its inferred shapes are the real ones.

The reference implementation is the oracle: torchvision's ResNet-18 and a hand-written
CIFAR ResNet-18 load into the compiled modules with strict=True and give torch.equal
outputs.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT, SPECS, one_thread, torchvision_model  # noqa: F401 - an autouse fixture
from reference_models import CifarResNet18
from torch.fx import Interpreter

import archspec
from archspec.ir import lint

# Small inputs keep CPU time low where the spec lets us choose the size.
SMALL = {"unet.yaml": {"H": 32, "W": 32, "base": 8}}


def spec_params(path) -> dict:
    return SMALL.get(path.name, {})


def example_inputs(graph, batch: int = 2, device: str = "cpu") -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, *shape, generator=g).to(device) for shape in graph.inputs.values()]


class ShapeRecorder(Interpreter):
    """Runs the fx graph and records each node's real output shape (batch dropped)."""

    def __init__(self, gm):
        super().__init__(gm)
        self.shapes: dict[str, tuple[int, ...]] = {}

    def run_node(self, n):
        out = super().run_node(n)
        node = n.meta.get("archspec", {}).get("node")
        if node is not None and isinstance(out, torch.Tensor):
            self.shapes[node] = tuple(out.shape[1:])
        return out


@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_spec_compiles_and_shapes_are_real(path):
    graph = archspec.load(path, spec_params(path))
    lint(graph)
    model = archspec.compile(graph).eval()
    for device in ("cpu", "meta"):
        m = model if device == "cpu" else copy.deepcopy(model).to("meta")
        rec = ShapeRecorder(m)
        with torch.no_grad():
            rec.run(*example_inputs(graph, device=device))
        for n in graph.nodes:
            if n.op == "identity":  # emits no fx node: its shape is its input's
                assert n.shape == graph.shape_of(n.inputs[0])
                continue
            assert rec.shapes[n.name] == n.shape, (device, n.name, rec.shapes[n.name], n.shape)


@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
def test_resnet18_is_torchvision_resnet18():
    ref = torchvision_model("resnet18").eval()
    model = archspec.compile(ROOT / "specs/resnet18.yaml").eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert sum(p.numel() for p in model.parameters()) == 11_689_512


def test_resnet18_cifar_is_the_hand_written_one():
    ref = CifarResNet18().eval()
    model = archspec.compile(ROOT / "specs/resnet18_cifar.yaml").eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


def test_plain18_has_no_skips_and_resnet18s_convs():
    plain = archspec.load(ROOT / "specs/plain18.yaml")
    res = archspec.load(ROOT / "specs/resnet18.yaml")
    assert not any(n.op == "add" for n in plain.nodes)
    convs = lambda g: [n.name.replace("plain", "basic") for n in g.nodes if n.op == "conv" and n.provenance == "spec"]  # noqa: E731
    assert convs(plain) == convs(res)


def test_params_override_from_python():
    model = archspec.compile(ROOT / "specs/resnet18_cifar.yaml", params={"num_classes": 100})
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_stack_trace_points_at_the_yaml_line():
    gm = archspec.compile(ROOT / "specs/resnet18.yaml")
    node = next(n for n in gm.graph.nodes if n.name == "layer2_0_conv1")
    text = (ROOT / "specs/resnet18.yaml").read_text().splitlines()
    assert 'specs/resnet18.yaml", line ' in node.meta["stack_trace"]
    line = int(node.meta["stack_trace"].split("line ")[1].split(",")[0])
    assert text[line - 1].strip().startswith("conv1:")
    assert node.meta["archspec"]["shape"] == (128, 28, 28)
    down = next(n for n in gm.graph.nodes if n.name == "layer2_0_downsample_0")
    assert down.meta["archspec"]["provenance"] == "auto"
    assert "(auto projection)" in down.meta["stack_trace"]


def test_code_is_readable_and_in_place_like_a_hand_written_model():
    code = archspec.compile(ROOT / "specs/resnet18.yaml").code
    assert "layer1_0_relu1 = torch.relu_(layer1_0_bn1)" in code and "torch.relu(" not in code
    assert "layer1_0_bn2 += maxpool;  layer1_0_add = layer1_0_bn2" in code
    code = archspec.compile(ROOT / "specs/resnet18.yaml", inplace=False).code
    assert "torch.relu(" in code and "relu_" not in code
    assert "layer1_0_add = layer1_0_bn2 + maxpool" in code


@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
def test_deepcopy_compile_export():
    model = archspec.compile(ROOT / "specs/resnet18_cifar.yaml").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
        assert torch.equal(copy.deepcopy(model)(x), want)
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        assert torch.allclose(compiled(x), want, atol=1e-5)
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), want, atol=1e-5)


@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
def test_a_few_sgd_steps_lower_the_loss():
    torch.manual_seed(0)
    model = archspec.compile(ROOT / "specs/unet.yaml", params={"H": 16, "W": 16, "base": 4, "depth": 2})
    x = torch.randn(4, 3, 16, 16)
    y = torch.randint(0, 2, (4, 16, 16))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9, losses


def test_init_policies():
    g = archspec.load(ROOT / "specs/resnet18.yaml")
    assert g.init["scheme"] == "kaiming_normal"
    text = (ROOT / "specs/resnet18_cifar.yaml").read_text().replace(
        "init: {scheme: kaiming_normal}", "init: {scheme: kaiming_normal, zero_init_residual: true}")
    model = archspec.compile(text)
    assert torch.count_nonzero(model.get_submodule("layer1.0.bn2").weight) == 0
    assert torch.all(model.get_submodule("layer1.0.bn1").weight == 1)
    w = model.get_submodule("layer3.1.conv1").weight
    assert abs(w.std().item() - (2 / (256 * 9)) ** 0.5) < 0.003  # kaiming fan_out
    assert model.get_submodule("fc").bias.count_nonzero() > 0  # zero_linear_bias is off


def test_densenet_has_torchvisions_init():
    # torchvision's DenseNet: kaiming_normal_(conv.weight) (fan_in), norms 1 and 0, linear bias 0
    torch.manual_seed(0)
    model = archspec.compile(ROOT / "specs/densenet.yaml", {"H": 32, "W": 32})
    w = model.get_submodule("features.denseblock3.denselayer5.conv2").weight  # 128 in, 32 out, 3x3
    assert abs(w.std().item() - (2 / (128 * 9)) ** 0.5) < 0.002 and abs(w.mean().item()) < 0.002
    w = model.get_submodule("features.conv0").weight
    assert abs(w.std().item() - (2 / (3 * 49)) ** 0.5) < 0.01
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 121 and all(torch.all(m.weight == 1) and not m.bias.any() for m in norms)
    fc = model.get_submodule("classifier")
    assert not fc.bias.any() and fc.weight.abs().max() <= 1 / fc.in_features ** 0.5  # bias zeroed, weight default


def test_check_is_fast_and_leaves_torch_out():
    # CPU time of the command (archspec's import included), so a loaded machine does not
    # make the bound flaky; the wall clock gets a generous bound of its own.
    code = ("import sys, time; t = time.process_time(); from archspec.cli import main; "
            "sys.argv = ['archspec', 'check', 'specs/resnet18.yaml']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print('elapsed', time.process_time() - t)")
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert r.returncode == 0, r.stderr
    assert "output fc: 1000" in r.stdout
    elapsed = float(r.stdout.split("elapsed")[1])
    assert elapsed < 0.5, f"check took {elapsed:.3f} s of CPU"
    assert wall < 3.0


def test_convs_the_policy_redraws_are_built_without_a_draw():
    from archspec.emit import _NoDefaultInit

    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    with _NoDefaultInit():
        conv = torch.nn.Conv2d(3, 8, 3)  # kaiming_uniform_ and uniform_ skipped: no random draw
        conv.bias.data.fill_(1)  # a tensor method: runs as usual
        torch.nn.init.uniform_(conv.bias, 2, 3)  # an initialiser a mode can override: skipped
        assert torch.all(conv.bias == 1)
        assert torch.nn.init._calculate_fan_in_and_fan_out(conv.weight) == (27, 72)  # helpers still run
    assert torch.equal(torch.rand(3), want) and conv.weight.shape == (8, 3, 3, 3)
