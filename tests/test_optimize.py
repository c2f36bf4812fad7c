"""``optimize="inference"`` (archspec/optimize.py): batch norms folded into convs, dropout
dropped, in place without autograd, channels_last; the optimised model computes what the
unoptimised eval model computes, within 1e-5 relative, on every kind of zoo graph."""

from __future__ import annotations

import copy
import operator
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from helpers import one_thread  # noqa: F401 - an autouse fixture
from hypothesis import HealthCheck, given, settings
from strategies import GenSpec, specs
from test_zoo import SPECS
from torch import nn

import archspec
from archspec.cli import main

NARROW = [
    ("resnet.yaml", {"depth": 18, "width": 16, "num_classes": 10, "H": 32, "W": 32}),
    ("resnet.yaml", {"depth": 50, "width": 16, "groups": 2, "width_per_group": 32, "num_classes": 10, "H": 32,
                     "W": 32}),
    ("densenet.yaml", {"growth": 8, "init_features": 16, "num_classes": 10, "H": 32, "W": 32}),
    ("resnet_cifar.yaml", {"n": 2}),
    ("unet.yaml", {"base": 8, "H": 32, "W": 32}),
    ("unet.yaml", {"base": 8, "H": 32, "W": 32, "residual": True, "upsampling": "bilinear"}),
    ("highway.yaml", {}),
    ("siamese.yaml", {}),
    ("mobilenet_v2.yaml", {"num_classes": 10, "H": 32, "W": 32}),  # residual adds with no relu after
    ("se_resnet18.yaml", {"width": 16, "num_classes": 10, "H": 32, "W": 32}),  # an SE product meets the identity
]



def random_state(model: Any) -> dict[str, Any]:
    """Random weights and running statistics, so no batch norm is an identity."""
    torch.manual_seed(0)
    return {k: (v.clone().uniform_(0.5, 1.5) if k.endswith("running_var") else v.clone().normal_(0, 0.2)
                if v.is_floating_point() else v) for k, v in model.state_dict().items()}


def close(a: Any, b: Any, rel: float = 1e-5) -> bool:
    """|a - b| <= rel * max|b|, elementwise over the whole output."""
    return bool((a - b).abs().max() <= rel * b.abs().max())


def eval_and_optimised(source: Any, params: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """The eval model of a spec with random weights, and its optimize="inference" twin
    holding the same weights."""
    ref = archspec.compile(source, params).eval()
    ref.load_state_dict(random_state(ref))
    opt = archspec.compile(source, params)
    opt.load_state_dict(ref.state_dict())
    return ref, archspec.optimize.optimize_for_inference(opt)


@pytest.mark.parametrize(("spec", "params"), NARROW, ids=[f"{s}-{i}" for i, (s, _) in enumerate(NARROW)])
def test_inference_model_equals_the_eval_model(spec: str, params: dict[str, Any], tmp_path: Path):
    from safetensors.torch import save_file

    graph = archspec.load(SPECS / spec, params)
    ref = archspec.compile(graph).eval()
    state = random_state(ref)
    ref.load_state_dict(state)
    save_file(state, tmp_path / "w.safetensors")
    opt = archspec.compile(graph, weights=tmp_path / "w.safetensors", optimize="inference")
    assert not opt.training and not any(p.requires_grad for p in opt.parameters())
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(3, *s, generator=g) for s in graph.inputs.values()]
    with torch.no_grad():
        want, got = ref(*xs), opt(*xs)
    want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and a.is_contiguous() and close(a, b)
    # Every batch norm that follows a conv read by nothing else is gone, unless one of the
    # two modules is shared (Siamese branches) and folding would change the other call.
    calls = Counter(n.module for n in graph.nodes if n.module is not None)
    folded = [n for n in graph.nodes if n.op == "bn" and graph.node(n.inputs[0]).op == "conv"
              and list(graph.consumers()[n.inputs[0]]) == [n.name]
              and calls[n.module] == 1 and calls[graph.node(n.inputs[0]).module] == 1]
    bn_left = {k.rsplit(".", 1)[0] for k in opt.state_dict() if k.endswith("running_mean")}
    assert not bn_left & {n.module for n in folded}
    assert len(bn_left) == len({n.module for n in graph.nodes if n.op == "bn"}) - len(folded)
    if spec.startswith("siamese"):
        assert bn_left and not folded
    if spec.startswith("resnet"):
        assert folded and not bn_left  # every ResNet batch norm follows its own conv


def test_folding_skips_convs_read_twice_and_shared_convs():
    text = """
archspec: 1
name: t
inputs: {x: [3, 8, 8]}
nodes:
  conv: {op: conv, out: 4, k: 3}
  bn:   {op: bn}
  side: {op: relu, in: conv}       # conv read twice: its bn stays
  twin: {op: conv, in: x, out: 4, k: 3}
  tbn:  {op: bn}
  drop: {op: dropout, p: 0.5}
  out:  {op: add, in: [bn, side, drop]}
outputs: [out]
"""
    model = archspec.compile(text, optimize="inference")
    assert sorted(k for k in model.state_dict() if k.endswith("running_mean")) == ["bn.running_mean"]
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    ref, opt = eval_and_optimised(text)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert close(opt(x), ref(x))


def test_unknown_level_is_an_error():
    with pytest.raises(archspec.ArchSpecError, match="unknown optimize level 'fast'"):
        archspec.compile(SPECS / "resnet18_cifar.yaml", optimize="fast")


def test_export_optimize_inference(tmp_path: Path):
    from safetensors.torch import save_file

    spec = SPECS / "resnet18_cifar.yaml"
    ref = archspec.compile(spec, {"width": 8}).eval()
    ref.load_state_dict(random_state(ref))
    save_file(ref.state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "m.ts"
    r = CliRunner().invoke(main, ["export", str(spec), "--to", "torchscript", "--optimize", "inference",
                                  "-p", "width=8", "--weights", str(tmp_path / "w.safetensors"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream
        loaded = torch.jit.load(str(out))
    assert not any(k.endswith("running_mean") for k in loaded.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert close(loaded(x), ref(x))
    # torch.export: traced with every fused conv on its plain path (conv, add into the identity, relu)
    r = CliRunner().invoke(main, ["export", str(spec), "--to", "export", "--optimize", "inference", "-p", "width=8",
                                  "--weights", str(tmp_path / "w.safetensors"), "-o", str(tmp_path / "m.pt2")])
    assert r.exit_code == 0, r.output
    program = torch.export.load(tmp_path / "m.pt2").module()  # and no warning about its weights
    with torch.no_grad():
        assert close(program(x), ref(x))
    r = CliRunner().invoke(main, ["export", str(spec), "--optimize", "inference", "-o", str(tmp_path / "m.py")])
    assert r.exit_code == 2
    assert "--to python writes the spec's own modules" in r.output and "--to torchscript" in r.output
    assert not (tmp_path / "m.py").exists()


def test_residual_add_relu_fused_and_every_conv_on_onednn():
    from archspec.onednn import OneDNNConv2d

    spec = SPECS / "resnet.yaml"
    params = {"depth": 50, "width": 8, "num_classes": 10, "H": 32, "W": 32}
    ref, opt = eval_and_optimised(spec, params)
    targets = Counter(n.target for n in opt.graph.nodes if n.op == "call_function")
    # Each bottleneck's residual add and relu run in its last conv's pass, into the identity.
    assert not targets[operator.iadd] and not targets[torch.relu_]
    into = [n for n in opt.graph.nodes if n.op == "call_module" and len(n.args) == 2]
    assert len(into) == 16 and all(n.target.endswith("conv3") for n in into)
    convs = [m for m in opt.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 53 and all(type(m) is OneDNNConv2d for m in convs)
    # The relu after the stem, after each bottleneck's first two convs and after its residual
    # add runs in a conv's pass.
    assert sum(m.relu for m in convs) == 1 + 16 * 3
    assert not any(n.target is torch.relu_ and n.args[0].op == "call_module"
                   for n in opt.graph.nodes if n.op == "call_function")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert close(opt(x), ref(x))
        # torch.compile traces the plain convolution (fake tensors have no oneDNN kernel)
        assert close(torch.compile(opt, backend="eager", fullgraph=True)(x), ref(x))
        # off the CPU (the meta device stands in for a GPU here) every fused conv takes the plain
        # path: conv, then the add into the identity and the relu
        away = copy.deepcopy(opt).to("meta")
        assert away(x.to("meta")).shape == (2, 10)


@pytest.mark.parametrize("kw", [{}, {"stride": 2, "padding": 1}, {"groups": 4, "padding": 2, "dilation": 2},
                                {"bias": False, "stride": (2, 1), "padding": (1, 0)}])
def test_onednn_conv_equals_conv2d(kw: dict[str, Any]):
    from archspec.onednn import OneDNNConv2d

    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3 if kw else 1, **kw).eval()
    fast = OneDNNConv2d.from_conv(conv)
    assert fast is not None and fast.weight is conv.weight and fast.state_dict().keys() == conv.state_dict().keys()
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        for inp in (x, x.contiguous(memory_format=torch.channels_last), x[0], x.double()):
            want = conv.double()(inp) if inp.dtype == torch.float64 else conv.float()(inp)
            got = fast.double()(inp) if inp.dtype == torch.float64 else fast.float()(inp)
            assert got.shape == want.shape and close(got, want)
        fast.relu = True  # the fused relu, on oneDNN's path and on the plain one
        for inp in (x.float(), x.contiguous(memory_format=torch.channels_last).float(), x[0].float()):
            got, want = fast.float()(inp), torch.relu(conv.float()(inp))
            assert got.shape == want.shape and close(got, want) and (got >= 0).all()
    assert OneDNNConv2d.from_conv(nn.Conv2d(2, 2, 3, padding="same")) is None
    assert OneDNNConv2d.from_conv(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")) is None


@pytest.mark.parametrize("relu", [False, True])
def test_onednn_conv_accumulates_into_the_other_operand(relu: bool):
    from archspec.onednn import OneDNNConv2d

    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3, padding=1).eval()
    fast = OneDNNConv2d.from_conv(conv)
    assert fast is not None
    fast.relu = relu
    x, other = torch.randn(2, 8, 9, 9), torch.randn(2, 12, 9, 9)
    with torch.no_grad():
        for fmt in (torch.contiguous_format, torch.channels_last):
            o = other.contiguous(memory_format=fmt)
            want = conv(x) + other
            want = torch.relu(want) if relu else want
            got = fast(x.contiguous(memory_format=fmt), o)
            assert close(got, want) and got.data_ptr() == o.data_ptr()  # oneDNN's sum post-op, in place
        # the plain path (another dtype, an unbatched input) computes the same
        got = fast.double()(x.double(), other.double())
        assert close(got, (torch.relu(want) if relu else want).double())
        fast.float()
        assert close(fast(x[0], other[0]), want[0])


@pytest.mark.parametrize(("spec", "params"), [NARROW[0], NARROW[4]], ids=["resnet", "unet"])
def test_inference_model_follows_autocast(spec: str, params: dict[str, Any]):
    """Under CPU autocast the fused convs give way to the plain one, which autocast casts:
    every output has the eval model's dtype (a U-Net ends in a conv) and bf16's accuracy."""
    ref, opt = eval_and_optimised(SPECS / spec, params)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = ref(x), opt(x)
    assert want.dtype == got.dtype == torch.bfloat16
    assert close(got.float(), want.float(), rel=0.05)
    with torch.no_grad():  # and outside autocast, float32 and the eval model's outputs again
        assert opt(x).dtype == torch.float32 and close(opt(x), ref(x))


FUSE_INTO = """
archspec: 1
name: t
inputs: {x: [3, 8, 8]}
nodes:
  stem: {op: conv, out: 4, k: 3}
  r:    {op: relu}
  c1:   {op: conv, out: 4, k: 3}
  c2:   {op: conv, out: 4, k: 3}
{early}  sum:  {op: add, in: [c2, r]}
  out:  {op: relu}
"""


@pytest.mark.parametrize(("early", "tail", "into"), [
    ("", "outputs: [out]", "r"),                                 # the add reads r last: written into r
    ("  early: {op: conv, in: r, out: 4, k: 1}\n", "outputs: [out, early]", "r"),  # a fresh tensor read before
    ("", "  late: {op: conv, in: r, out: 4, k: 1}\noutputs: [out, late]", None),  # r read after the add
    ("  flat: {op: flatten, in: r}\n", "outputs: [out, flat]", None),  # a view of r, read before, is an output
    ("", "outputs: [out, r]", None),                              # r itself is an output
], ids=["last-reader", "fresh-reader-before", "read-later", "view", "output"])
def test_conv_add_fused_only_into_a_tensor_nothing_reads_afterwards(early: str, tail: str, into: str | None):
    text = FUSE_INTO.replace("{early}", early) + tail + "\n"
    ref, opt = eval_and_optimised(text)
    fused = [n for n in opt.graph.nodes if n.op == "call_module" and len(n.args) == 2]
    assert [n.args[1].meta["archspec"]["node"] for n in fused] == ([into] if into else [])
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want, got = ref(x), opt(x)
    for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,),
                    strict=True):
        assert close(a, b)


def test_conv_add_not_fused_into_the_convs_own_input():
    # conv(r) + r: oneDNN would overwrite r while the conv still reads it
    text = FUSE_INTO.replace("{early}", "").replace("c2:   {op: conv, out: 4, k: 3}", "c2:   {op: conv, in: r, out: 4, k: 3}") \
        .replace("  c1:   {op: conv, out: 4, k: 3}\n", "") + "outputs: [out]\n"
    ref, opt = eval_and_optimised(text)
    assert not [n for n in opt.graph.nodes if n.op == "call_module" and len(n.args) == 2]
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert close(opt(x), ref(x))


def test_onednn_conv_keeps_its_reordered_weight_current():
    import pickle

    from archspec.onednn import OneDNNConv2d

    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 3, padding=1).eval().requires_grad_(False)
    fast = OneDNNConv2d.from_conv(conv)
    assert fast is not None
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        assert close(fast(x), conv(x)) and fast._packed is not None
        packed = fast._packed[1]
        assert close(fast(x), conv(x)) and fast._packed[1] is packed  # made once
        assert close(fast(x[:1, :, :5]), conv(x[:1, :, :5]))  # another input shape
        conv.weight.mul_(-2)  # the shared parameter changes in place: made again
        assert close(fast(x), conv(x))
        state = {k: v * 3 for k, v in conv.state_dict().items()}
        fast.load_state_dict(state)  # copied into the parameters in place
        assert close(fast(x), nn.functional.conv2d(x, state["weight"], state["bias"], padding=1))
        for twin in (copy.deepcopy(fast), pickle.loads(pickle.dumps(fast))):
            assert twin._packed is None and close(twin(x), fast(x))
        fast.double()  # moved: the copy is dropped, not kept beside the new weight
        assert fast._packed is None and close(fast(x.double()), fast.float()(x).double())
    # Under autograd the plain oneDNN convolution runs, and gradients flow to the input.
    xg = x.clone().requires_grad_(True)
    fast(xg).sum().backward()
    xr = x.clone().requires_grad_(True)
    nn.functional.conv2d(xr, state["weight"], state["bias"], padding=1).sum().backward()
    assert xg.grad is not None and xr.grad is not None and close(xg.grad, xr.grad)


def test_residual_add_left_unfused_runs_anywhere_and_pickles(tmp_path: Path):
    # SE-ResNet: the SE product, not a conv, meets the identity, so 5 adds stay an in-place
    # add and relu (no CPU-only op such as aten._add_relu_, which has no CUDA kernel)
    params = {"width": 16, "num_classes": 10, "H": 32, "W": 32}
    ref, opt = eval_and_optimised(SPECS / "se_resnet18.yaml", params)
    pairs = [n for n in opt.graph.nodes if n.target is torch.relu_ and n.args[0].target is operator.iadd]
    assert len(pairs) == 5
    x = torch.randn(2, 3, 32, 32)
    torch.save(opt, tmp_path / "m.pt")  # a pickled GraphModule is traced again on load
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    with torch.no_grad():
        assert close(opt(x), ref(x)) and close(loaded(x), ref(x))


@pytest.mark.slow  # `make test` runs it, `make quick` does not
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], database=None,
          max_examples=60)
@given(specs())
def test_generated_specs_optimise_to_the_same_function(g: GenSpec) -> None:
    # Residual adds whose skip is read by the branch too, chains, dense repeats, concats that
    # reread their input, projections: whatever is fused or overwritten, the function stays.
    ref, opt = eval_and_optimised(g.text)
    x = torch.randn(2, *g.data["inputs"]["x"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ref(x), opt(x)
    assert got.shape == want.shape and close(got, want)
