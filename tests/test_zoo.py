"""The zoo (specs/zoo.yaml): every entry compiles, trains a step, and its inferred shapes
are the real ones; entries with a counterpart (torchvision, a model of another library
named by ``peer:``, or a hand-written reference in tests/reference_models.py) equal it
exactly; published parameter counts hold; and specs/README.md's table is what the specs
compute.

Regenerate the README table with ``python tests/test_zoo.py --write-readme``.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import one_thread  # noqa: F401 - an autouse fixture

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
README = SPECS / "README.md"
BEGIN, END = "<!-- zoo-table:begin -->", "<!-- zoo-table:end -->"

# Smaller inputs where the spec lets us choose, to keep CPU time low.
SMALL: dict[str, dict[str, Any]] = {
    "resnet.yaml": {"H": 64, "W": 64},
    "densenet.yaml": {"H": 64, "W": 64},
    "unet.yaml": {"H": 32, "W": 32},
    "unetpp.yaml": {"H": 32, "W": 32},
    "resnetd.yaml": {"H": 64, "W": 64},
    "seresnet.yaml": {"H": 64, "W": 64},
    "se_resnet18.yaml": {"H": 64, "W": 64},
    "mobilenet_v2.yaml": {"H": 64, "W": 64},
    "segmentation.yaml": {"H": 64, "W": 64},
    "smp_unet.yaml": {"H": 64, "W": 64},
    "attention_unet.yaml": {"H": 32, "W": 32},
    "unet_tutorial.yaml": {"H": 32, "W": 32},
}
# The whole file takes about 50 s on an otherwise idle 2-core machine, wide_resnet101_2 the
# longest entry; torchvision's and the peers' models are built once per session (tests/helpers.py).


@cache
def zoo() -> list[dict[str, Any]]:
    return yaml.safe_load((SPECS / "zoo.yaml").read_text())["models"]  # type: ignore[no-any-return]


def entries(*, where: Any = None) -> list[Any]:
    out = []
    for e in zoo():
        if where is not None and not where(e):
            continue
        out.append(pytest.param(e, id=e["name"]))
    return out


def small_params(e: dict[str, Any]) -> dict[str, Any]:
    return {**e["params"], **SMALL.get(e["spec"], {})}


# -- the index ----------------------------------------------------------------------------

def test_zoo_indexes_every_spec_once_by_unique_names():
    names = [e["name"] for e in zoo()]
    assert len(names) == len(set(names))
    shipped = {p.name for p in SPECS.glob("*.yaml")} - {"zoo.yaml"}
    assert {e["spec"] for e in zoo()} == shipped
    for e in zoo():
        assert set(e) <= {"name", "spec", "params", "torchvision", "peer", "reference", "paper"}, e
        assert sum(k in e for k in ("torchvision", "peer", "reference")) <= 1, e
        if "peer" in e:
            assert set(e["peer"]) <= {"module", "call", "args", "kwargs"} and {"module", "call"} <= set(e["peer"]), e


# -- every entry: compile, train a step, real shapes; parity with its reference ------------

@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
@pytest.mark.parametrize("entry", entries())
def test_entry(entry):
    """One compile per entry (the big ones take seconds to initialise): a training step
    with real shapes recorded, then, where the entry names one, equality with its reference."""
    import archspec
    from archspec.ir import lint

    graph = archspec.load(SPECS / entry["spec"], small_params(entry))
    lint(graph)
    model = archspec.compile(graph)
    check_train_step_and_shapes(graph, model)
    if any(k in entry for k in ("torchvision", "peer", "reference")):
        check_equals_reference(entry, graph, model)


def check_train_step_and_shapes(graph: Any, model: Any) -> None:
    """Forward and backward on a batch of 2 in training mode; every node's real output
    shape (recorded by an fx Interpreter) is its inferred one; every parameter gets a
    finite gradient; the op rules' parameter count is torch's."""
    import torch
    from torch.fx import Interpreter

    shapes: dict[str, tuple[int, ...]] = {}

    class Recorder(Interpreter):
        def run_node(self, n):  # type: ignore[no-untyped-def]
            out = super().run_node(n)
            node = n.meta.get("archspec", {}).get("node")
            if node is not None and isinstance(out, torch.Tensor):
                shapes[node] = tuple(out.shape[1:])
            return out

    model.train()
    outs = as_tuple(Recorder(model).run(*example_inputs(graph)))
    sum(o.float().square().mean() for o in outs).backward()
    for n in graph.nodes:
        real = shapes[n.name] if n.op != "identity" else graph.shape_of(n.inputs[0])
        assert real == n.shape, (n.name, real, n.shape)
    for k, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k
    assert graph_params(graph) == sum(p.numel() for p in model.parameters())


def check_equals_reference(entry: dict[str, Any], graph: Any, model: Any) -> None:
    """Same state_dict keys in the same order, equal parameter counts, strict loading,
    torch.equal eval outputs."""
    import torch

    torch.manual_seed(0)
    ref = reference(entry).eval()
    model.eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())
    # Random running statistics too, so BN is not an identity and every tensor counts.
    state = {k: (v.uniform_(0.5, 1.5) if k.endswith("running_var") else v.normal_(0, 0.1)
                 if v.is_floating_point() else v) for k, v in ref.state_dict().items()}
    ref.load_state_dict(state, strict=True)
    model.load_state_dict(ref.state_dict(), strict=True)
    (x,) = example_inputs(graph)
    with torch.no_grad():
        out, want = model(x), ref(x)
    if isinstance(want, dict):  # torchvision's segmentation models return {"out": ...}
        assert isinstance(out, dict) and list(out) == list(want)
    for o, w in zip(as_tuple(out), as_tuple(want), strict=True):
        assert torch.isfinite(o).all() and o.std() > 0
        assert torch.equal(o, w)


def as_tuple(out: Any) -> tuple[Any, ...]:
    """A model's outputs as a tuple: one tensor, a tuple, or a dict's values in order."""
    return tuple(out.values()) if isinstance(out, dict) else out if isinstance(out, tuple) else (out,)


def example_inputs(graph: Any, batch: int = 2) -> list[Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, *shape, generator=g) for shape in graph.inputs.values()]


def reference(e: dict[str, Any]) -> Any:
    """A fresh reference model of an entry; torchvision's and the peers' are built once per
    session and copied (tests/helpers.py), as tests/test_import.py round-trips the same ones."""
    from helpers import torchvision_model

    if "torchvision" in e:
        return torchvision_model(e["torchvision"])
    if "peer" in e:
        return peer_model(e["peer"])
    from reference_models import REFERENCES

    return REFERENCES[e["reference"]](**e["params"])


def peer_model(peer: dict[str, Any]) -> Any:
    """The model of another library that a ``peer:`` entry names: the test imports the
    module (a dev dependency) and calls the callable with the entry's args and kwargs.
    Only the tests read ``peer:``; a spec never names code."""
    from helpers import reference_model

    return reference_model(peer["module"], peer["call"], *peer.get("args", []), **peer.get("kwargs", {}))


def peer_call(peer: dict[str, Any]) -> str:
    """How the README writes a peer's constructor: ``timm.create_model('resnet50d')``."""
    args = [repr(a) for a in peer.get("args", [])] + [f"{k}={v!r}" for k, v in peer.get("kwargs", {}).items()]
    return f"{peer['module']}.{peer['call']}({', '.join(args)})"


# -- published parameter counts -----------------------------------------------------------

# Exact counts for 10 classes; the papers print them rounded: the ResNet paper to two
# significant figures (0.27M ... 1.7M), the DenseNet and Wide ResNet papers to 0.1M.
EXACT = {"wrn_28_10": 36_479_194, "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
         "resnet110": 1_727_962, "plain20": 269_722, "plain110": 1_727_962, "densenet_bc_100_12": 769_162}


def paper_rounding(name: str, count: int) -> str:
    if name.startswith(("densenet", "wrn")):
        return f"{count / 1e6:.1f}M"
    return f"{float(f'{count / 1e6:.2g}'):g}M"


@pytest.mark.parametrize("name", sorted(EXACT))
def test_published_parameter_counts(name):
    import archspec

    (e,) = [e for e in zoo() if e["name"] == name]
    count = graph_params(archspec.load(SPECS / e["spec"], e["params"]))
    assert count == EXACT[name]
    if "paper" in e:
        assert paper_rounding(name, count) == e["paper"]


def test_every_published_count_is_checked():
    assert {e["name"] for e in zoo() if "paper" in e} <= set(EXACT)


# -- the language features the families rely on --------------------------------------------

def test_resnet_depth_picks_the_block_and_stage_table():
    import archspec

    for depth, layers, block in [(18, [2, 2, 2, 2], "basic"), (50, [3, 4, 6, 3], "bottleneck"),
                                 (152, [3, 8, 36, 3], "bottleneck")]:
        g = archspec.load(SPECS / "resnet.yaml", {"depth": depth, "H": 64, "W": 64})
        repeats = {s.path: s for s in g.scopes if s.kind == "repeat"}
        assert [repeats[f"layer{k}"].count for k in (1, 2, 3, 4)] == layers
        assert {repeats[f"layer{k}"].block for k in (1, 2, 3, 4)} == {block}
        assert ("layer1.0.conv3" in g.index()) == (block == "bottleneck")
    # A custom stage table through the derived param.
    g = archspec.load(SPECS / "resnet.yaml", {"depth": 50, "layers": [1, 1, 1, 1], "H": 64, "W": 64})
    assert "layer4.0.conv3" in g.index() and "layer4.1.conv1" not in g.index()


BLOCK_EXPR = """
archspec: 1
name: pick
params: {kind: a}
inputs: {x: [4]}
blocks:
  a: {nodes: {fc: {op: linear, out: 2}}}
  b: {nodes: {fc: {op: linear, out: 3}}}
nodes:
  one: {block: "${'a' if kind == 'a' else kind}"}
  many: {block: $kind, repeat: 2, in: x}
outputs: [one, many]
"""


def test_block_may_be_an_expression():
    import archspec
    from archspec.errors import SpecValidationError

    g = archspec.load(BLOCK_EXPR)
    assert g.node("one.fc").shape == (2,) and g.node("many.1.fc").shape == (2,)
    assert archspec.load(BLOCK_EXPR, {"kind": "b"}).node("one.fc").shape == (3,)
    with pytest.raises(SpecValidationError, match="unknown block 'c'") as e:
        archspec.load(BLOCK_EXPR, {"kind": "c"})
    assert e.value.loc is not None and e.value.loc.line == 10
    with pytest.raises(SpecValidationError, match="must evaluate to a block name, got 3"):
        archspec.load(BLOCK_EXPR.replace("${'a' if kind == 'a' else kind}", "${1 + 2}"))


def test_unknown_depth_is_a_located_spec_error():
    import archspec
    from archspec.errors import ArchSpecError

    with pytest.raises(ArchSpecError) as e:
        archspec.load(SPECS / "resnet.yaml", {"depth": 42})
    assert e.value.loc is not None and "layers" in str(e.value)


def test_plain_cifar_nets_drop_every_skip_and_keep_the_parameters():
    import archspec

    res = archspec.load(SPECS / "resnet_cifar.yaml", {"n": 3})
    plain = archspec.load(SPECS / "resnet_cifar.yaml", {"n": 3, "residual": False})
    assert sum(n.op == "add" for n in res.nodes) == 9 and not any(n.op == "add" for n in plain.nodes)
    assert [n.name for n in res.nodes if n.provenance == "auto"] == ["layer2.0.downsample", "layer3.0.downsample"]
    assert {n.op for n in res.nodes if n.provenance == "auto"} == {"zero_pad"}
    assert graph_params(res) == graph_params(plain)


def test_unet_variants_keep_the_default_names():
    import archspec

    base = archspec.load(SPECS / "unet.yaml", {"H": 32, "W": 32})
    assert base.node("up.0.up").op == "conv_transpose" and not any(n.provenance == "auto" for n in base.nodes)
    bil = archspec.load(SPECS / "unet.yaml", {"H": 32, "W": 32, "upsampling": "bilinear"})
    assert bil.node("up.0.resize").attrs["mode"] == "bilinear" and bil.node("up.0.up").op == "conv"
    res = archspec.load(SPECS / "unet.yaml", {"H": 32, "W": 32, "residual": True})
    assert res.node("down.0.conv.add").op == "add" and res.node("down.0.conv.proj.0").op == "conv"
    # Every double conv changes the channel count, so each gets a 1x1 conv-bn projection.
    assert sum(n.provenance == "auto" for n in res.nodes) == 2 * (4 + 1 + 4)


def test_highway_gate_carries_the_input_when_closed():
    """With the gate bias very negative (t ~ 0) every highway layer passes its input on:
    the network reduces to fc(relu(proj(x)))."""
    import torch

    import archspec

    model = archspec.compile(SPECS / "highway.yaml", {"depth": 3, "width": 8, "in_features": 5}).eval()
    with torch.no_grad():
        for i in range(3):
            model.get_submodule(f"layers.{i}.gate").weight.zero_()
            model.get_submodule(f"layers.{i}.gate").bias.fill_(-1e4)
        x = torch.randn(4, 5)
        assert torch.equal(model(x), model.fc(torch.relu(model.proj(x))))


def test_siamese_branches_share_one_set_of_weights():
    import torch

    import archspec

    model = archspec.compile(SPECS / "siamese.yaml").eval()
    assert not any(k.startswith("right.") for k in model.state_dict())
    a, b = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32)
    prob_ab, ea, eb = model(a, b)
    prob_ba, eb2, ea2 = model(b, a)
    assert torch.equal(ea, ea2) and torch.equal(eb, eb2)
    assert torch.allclose(prob_ab, prob_ba)  # the product head is symmetric


# -- the README table ---------------------------------------------------------------------

def graph_params(graph: Any) -> int:
    """Learnable parameters of a checked graph, from the op rules (no torch)."""
    from archspec.ops import REGISTRY

    shapes = {k: tuple(v) for k, v in graph.inputs.items()}
    total = 0
    for n in graph.nodes:
        shapes[n.name] = n.shape
        if n.module is not None and "share" not in n.meta:
            op = REGISTRY.get(n.op)
            total += op.params(op.Attrs.model_validate(dict(n.attrs)), [shapes[i] for i in n.inputs])
    return total


def graph_macs(graph: Any) -> int:
    """Multiply-accumulates per sample: the sum of every node's op.macs."""
    from archspec.ops import REGISTRY

    shapes = {k: tuple(v) for k, v in graph.inputs.items()}
    total = 0
    for n in graph.nodes:
        op = REGISTRY.get(n.op)
        total += op.macs(op.Attrs.model_validate(dict(n.attrs)), [shapes[i] for i in n.inputs], n.shape)
        shapes[n.name] = n.shape
    return total


def _si(x: int) -> str:
    return f"{x / 1e9:.2f} G" if x >= 1e9 else f"{x / 1e6:.1f} M" if x >= 1e6 else f"{x / 1e3:.1f} K"


def zoo_table() -> str:
    import archspec

    lines = ["| model | spec | params (`-p`) | input | parameters | MACs | equals |",
             "|---|---|---|---|---:|---:|---|"]
    for e in zoo():
        g = archspec.load(SPECS / e["spec"], e["params"])
        p = " ".join(f"{k}={v if not isinstance(v, bool) else str(v).lower()}" for k, v in e["params"].items())
        inp = ", ".join("x".join(map(str, s)) for s in g.inputs.values())
        eq = (f"`torchvision.models.{e['torchvision']}`" if "torchvision" in e
              else f"`{peer_call(e['peer'])}`" if "peer" in e
              else f"`tests/reference_models.py: {e['reference']}`" if "reference" in e else "")
        paper = f" (paper: {e['paper']})" if "paper" in e else ""
        lines.append(f"| {e['name']} | [{e['spec']}]({e['spec']}) | {p and f'`{p}`'} | {inp} | "
                     f"{graph_params(g):,}{paper} | {_si(graph_macs(g))} | {eq} |")
    return "\n".join(lines) + "\n"


def readme_with_table(text: str, table: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    assert pattern.search(text), f"{README} lacks the {BEGIN} ... {END} markers"
    return pattern.sub(lambda _: f"{BEGIN}\n{table}{END}", text)


def test_readme_table_matches_the_specs():
    text = README.read_text()
    assert readme_with_table(text, zoo_table()) == text, "run: python tests/test_zoo.py --write-readme"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-readme"]:
        sys.exit("usage: python tests/test_zoo.py --write-readme")
    README.write_text(readme_with_table(README.read_text(), zoo_table()))
    print(f"wrote {README}")
