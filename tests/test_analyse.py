"""Static analysis against torch: MACs against FlopCounterMode, receptive fields against
the gradient of one output pixel, derived input sizes against real forwards."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import ROOT, spec_text
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.analyse import (
    input_constraints,
    load_with_inputs,
    parse_shape,
    receptive_fields,
    summary,
)
from archspec.emit import emit
from archspec.errors import ShapeError, SpecValidationError
from archspec.loader import load_file

TEMPLATES = ROOT / "archspec" / "templates"


def shipped_specs() -> list[Path]:
    """Every spec file in specs/ (an index such as zoo.yaml has no nodes: and is skipped)."""
    return [p for p in sorted((ROOT / "specs").glob("*.yaml"))
            if isinstance(data := load_file(p).data, dict) and "nodes" in data]


SPECS = shipped_specs()
UNET = (TEMPLATES / "unet.yaml").read_text()
UNET_SYMBOLIC = UNET.replace(", H: 128, W: 128", "")


# -- counts ---------------------------------------------------------------------------

def test_resnet18_totals():
    s = summary(ROOT / "specs/resnet18.yaml")
    assert s.params == 11_689_512
    assert s.macs == 1_814_073_344 and round(s.macs / 1e9, 3) == 1.814
    assert s.flops == 2 * s.macs
    assert s.params == sum(p.numel() for p in archspec.compile(ROOT / "specs/resnet18.yaml").parameters())


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_macs_equal_flop_counter(spec: Path):
    """Per node MACs sum to FlopCounterMode's total / 2 (meta tensors: no arithmetic)."""
    g = archspec.load(spec)
    with torch.device("meta"):
        model = emit(g).eval()
        xs = [torch.empty(1, *s) for s in g.inputs.values()]
        with FlopCounterMode(display=False) as counter:
            model(*xs)
    assert summary(g).macs == counter.get_total_flops() // 2
    assert summary(g).params == sum(p.numel() for p in model.parameters())


def zoo_entries() -> list[tuple[str, Path, dict]]:
    """(name, spec, params) of every model in specs/zoo.yaml, when the index exists."""
    index = ROOT / "specs" / "zoo.yaml"
    models = load_file(index).data.get("models") if index.exists() else None
    if not isinstance(models, list):
        return []
    return [(m["name"], ROOT / "specs" / m["spec"], dict(m.get("params") or {})) for m in models
            if isinstance(m, dict) and "name" in m and "spec" in m]


@pytest.mark.slow
@pytest.mark.parametrize("name, spec, params", zoo_entries() or [pytest.param(None, None, None, marks=pytest.mark.skip(
    reason="no zoo index"))], ids=lambda v: v if isinstance(v, str) else "")
def test_zoo_macs_equal_flop_counter(name: str, spec: Path, params: dict):
    g = archspec.load(spec, params)
    with torch.device("meta"):
        model = emit(g).eval()
        with FlopCounterMode(display=False) as counter:
            model(*[torch.empty(1, *s) for s in g.inputs.values()])
    assert summary(g).macs == counter.get_total_flops() // 2, name


def test_shared_modules_count_params_once_and_macs_per_call():
    text = spec_text("""
        archspec: 1
        name: tied
        inputs: {x: [8]}
        nodes:
          a: {op: linear, out: 8}
          b: {share: a}
        outputs: [b]
    """)
    s = summary(text)
    assert s.params == 8 * 8 + 8
    assert s.macs == 2 * 8 * 8


def test_collapse_by_scope():
    s = summary(ROOT / "specs/resnet18.yaml")
    rows = {r.name: r for r in s.collapse(1)}
    assert list(rows)[:5] == ["conv1", "bn1", "relu", "maxpool", "layer1"]
    assert rows["layer2"].op == "basic x2" and rows["layer2"].nodes == 16  # 14 + the projection's conv and bn
    assert rows["layer2"].shape == (128, 28, 28)
    assert sum(r.params for r in rows.values()) == s.params
    assert sum(r.macs for r in s.collapse(2)) == s.macs
    assert [r.name for r in s.collapse(2) if r.name.startswith("layer1")] == ["layer1.0", "layer1.1"]
    assert s.collapse(0) == list(s.rows)


# -- receptive fields ----------------------------------------------------------------------

def measured_field(graph: archspec.Graph, node: str, positions: int = 1) -> tuple[int, ...]:
    """The extent of the input pixels that reach one output pixel (the max over a few
    neighbouring pixels when ``positions > 1``), by autograd.

    Weights and inputs are positive and the model in eval mode, so nothing cancels and
    every ReLU passes its gradient; max-pooling is swapped for average pooling over the
    same window (a max routes the gradient to one element only).
    """
    model = emit(graph.replace(outputs=(node,))).double().eval()
    swap = {F.max_pool1d: F.avg_pool1d, F.max_pool2d: F.avg_pool2d, F.max_pool3d: F.avg_pool3d}
    for n in model.graph.nodes:
        if n.op == "call_function" and n.target in swap:
            n.target = swap[n.target]
            n.kwargs = {k: v for k, v in n.kwargs.items() if k != "dilation"}
    model.graph.eliminate_dead_code()
    model.recompile()
    with torch.no_grad():
        for m in model.modules():
            for name, p in m.named_parameters(recurse=False):
                p.uniform_(0.5, 1.0)
                if name == "weight" and p.dim() > 1:
                    p /= p[0].numel()  # keep activations O(1) through depth
                elif name == "bias":
                    p.fill_(0.01)
    (shape,) = graph.inputs.values()
    x = (torch.rand(1, *shape, dtype=torch.float64) + 0.5).requires_grad_(True)
    y = model(x)
    spatial = y.shape[2:]
    best = [0] * len(spatial)
    for off in itertools.product(range(positions), repeat=len(spatial)):
        idx = tuple(s // 2 + o for s, o in zip(spatial, off, strict=True))
        (grad,) = torch.autograd.grad(y[(0, slice(None), *idx)].sum(), x, retain_graph=True)
        nz = grad[0].abs().sum(0).nonzero()
        for d in range(len(spatial)):
            best[d] = max(best[d], int(nz[:, d].max() - nz[:, d].min() + 1))
    return tuple(best)


BRANCHES = spec_text("""
    archspec: 1
    name: branches
    doc: Two paths of different reach joined by a concat; the field is the longer one's.
    inputs: {x: [2, 48, 48]}
    nodes:
      a:   {op: conv, in: x, out: 2, k: 3}
      b:   {op: conv, in: x, out: 2, k: 5, dilation: 2}
      cat: {op: concat, in: [a, b]}
      c:   {op: conv, out: 2, k: 3}
    outputs: [c]
""")

DOWN_UP = spec_text("""
    archspec: 1
    name: down_up
    doc: A pooled path up-sampled back, joined with a 1x1 path (mixed strides, a skip).
    inputs: {x: [2, 64, 64]}
    nodes:
      skip: {op: conv, in: x, out: 2, k: 1}
      pool: {op: maxpool, in: x, k: 2}
      mid:  {op: conv, out: 2, k: 3}
      up:   {op: upsample, scale: 2, mode: nearest}
      cat:  {op: concat, in: [skip, up]}
      out:  {op: conv, out: 2, k: 3}
    outputs: [out]
""")

RESIDUAL = spec_text("""
    archspec: 1
    name: residual
    doc: A strided residual block whose skip is a projection, then a 7x7 conv.
    inputs: {x: [2, 80, 80]}
    nodes:
      c1:  {op: conv, in: x, out: 4, k: 3, stride: 2}
      c2:  {op: conv, out: 4, k: 3}
      add: {op: add, in: [c2, x]}
      c3:  {op: conv, out: 4, k: 7}
    outputs: [c3]
""")


@pytest.mark.parametrize("source, params, size, node, expect", [
    (BRANCHES, {}, None, "c", (11, 11)),
    (DOWN_UP, {}, None, "out", (8, 8)),
    (RESIDUAL, {}, None, "c3", (19, 19)),
    (ROOT / "specs/resnet18.yaml", {}, (3, 160, 160), "layer2.1.relu2", (99, 99)),
    (ROOT / "specs/resnet18_cifar.yaml", {}, (3, 64, 64), "layer2.0.add", (17, 17)),
    (UNET, {"depth": 2, "base": 4}, (3, 128, 128), "head", (44, 44)),
], ids=["concat", "down-up", "residual", "resnet18", "resnet18_cifar", "unet"])
def test_receptive_field_matches_gradient(source, params, size, node, expect):
    g = load_with_inputs(source, params, {None: size} if size else None)
    f = receptive_fields(g)[node]
    assert f is not None and f.size == expect
    # Several output positions where up-sampling makes the alignment matter.
    assert measured_field(g, node, positions=2 if "up" in g.name or "unet" in g.name else 1) == expect


def test_effective_stride_and_global_fields():
    g = archspec.load(ROOT / "specs/resnet18.yaml")
    f = receptive_fields(g)
    assert f["layer4.1.relu2"].size == (435, 435) and f["layer4.1.relu2"].stride == (32, 32)
    assert f["fc"].glob and f["fc"].size == (224, 224) and f["fc"].stride is None
    assert f["x"].size == (1, 1)
    up = receptive_fields(archspec.load(DOWN_UP))["up"]
    assert up.stride == (Fraction(1), Fraction(1)) and receptive_fields(archspec.load(DOWN_UP))["pool"].stride == (2, 2)


def test_upsampling_gives_fractional_stride():
    text = spec_text("""
        archspec: 1
        name: up
        inputs: {x: [1, 8, 8]}
        nodes:
          up: {op: upsample, in: x, scale: 2, mode: bilinear}
        outputs: [up]
    """)
    f = receptive_fields(archspec.load(text))["up"]
    assert f.stride == (Fraction(1, 2), Fraction(1, 2)) and f.size == (2, 2)
    assert summary(text).to_dict()["nodes"][0]["receptive_field"] == {"size": [2, 2], "stride": [0.5, 0.5],
                                                                       "global": False}


# -- input-size constraints ----------------------------------------------------------------

def runs(model: torch.nn.Module, shape: tuple[int, ...]) -> bool:
    try:
        with torch.no_grad():
            model(torch.empty(1, *shape, device="meta"))
    except RuntimeError:
        return False
    return True


def test_unet_sizes_divisible_by_16_and_real_forwards_agree():
    c = input_constraints(UNET_SYMBOLIC)
    assert [str(r) for r in c.rules] == ["H divisible by 16", "W divisible by 16"]
    assert c.separable and c.base == {"H": 224, "W": 224}
    small = input_constraints(UNET_SYMBOLIC, {"depth": 2, "base": 4})
    (h, w) = small.rules
    assert (h.kind, h.minimum, h.modulus, h.residue) == ("progression", 4, 4, 0)
    with torch.device("meta"):
        model = archspec.compile(UNET_SYMBOLIC, {"depth": 2, "base": 4, "H": 32, "W": 32})
    for v in range(1, 41):
        assert runs(model, (3, v, 32)) == h.holds(v), v
        assert runs(model, (3, 32, v)) == w.holds(v), v


def test_valid_convs_give_a_minimum_and_a_modulus():
    text = spec_text("""
        archspec: 1
        name: valid
        inputs: {x: [1, H]}
        nodes:
          c1: {op: conv, in: x, out: 2, k: 5, padding: valid}
          p:  {op: maxpool, k: 2}
          c2: {op: conv, out: 2, k: 3, padding: valid}
          up: {op: upsample, scale: 2}
          cat: {op: concat, in: [up, up]}
        outputs: [cat]
    """)
    (h,) = input_constraints(text).rules
    assert str(h) == "H >= 10"  # 5-wide conv, pool, 3-wide conv: at least one output
    with torch.device("meta"):
        model = archspec.compile(text, {"H": 64})
    for v in range(1, 30):
        assert runs(model, (1, v)) == h.holds(v), v


def test_resnet_sizes_and_a_residue():
    text = (ROOT / "specs/resnet18.yaml").read_text().replace("[3, 224, 224]", "[3, H, W]")
    assert [str(r) for r in input_constraints(text).rules] == ["H >= 1", "W >= 1"]
    odd = spec_text("""
        archspec: 1
        name: odd
        inputs: {x: [1, H]}
        nodes:
          a:   {op: conv, in: x, out: 1, k: 3, stride: 2, padding: 0}
          b:   {op: conv, in: x, out: 1, k: 2, stride: 2, padding: 0}
          cat: {op: concat, in: [a, b]}
        outputs: [cat]
    """)
    (h,) = input_constraints(odd).rules
    assert str(h) == "H >= 3 and H % 2 == 1"


def test_exact_size_and_size_dependent_weights():
    exact = spec_text("""
        archspec: 1
        name: exact
        inputs: {x: [1, H, W]}
        nodes:
          flat: {op: flatten, in: x}
          grid: {op: reshape, shape: [4, 8, 8]}
        outputs: [grid]
    """)
    c = input_constraints(exact)
    assert [str(r) for r in c.rules] == ["H = 16 (the only valid size up to 64)", "W = 16 (the only valid size up to 64)"]
    assert not c.separable
    assert "sizes interact" in c.lines()[-1]
    head = spec_text("""
        archspec: 1
        name: head
        inputs: {x: [3, H, W]}
        nodes:
          conv: {op: conv, in: x, out: 4, k: 3, stride: 2}
          flat: {op: flatten}
          fc:   {op: linear, out: 10}
        outputs: [fc]
    """)
    c = input_constraints(head)
    assert [str(r) for r in c.rules] == ["H >= 1", "W >= 1"]
    assert c.size_dependent == ("H", "W")
    assert any("only at the size it was built for" in line for line in c.lines())
    with torch.device("meta"):
        model = archspec.compile(head, {"H": 32, "W": 32})
    assert runs(model, (3, 32, 32)) and not runs(model, (3, 34, 32)) and not runs(model, (3, 32, 30))


def test_exact_single_size():
    text = spec_text("""
        archspec: 1
        name: one
        inputs: {x: [1, H], y: [1, 12]}
        nodes:
          cat: {op: concat, in: [x, y]}
        outputs: [cat]
    """)
    (h,) = input_constraints(text).rules
    assert h.kind == "exact" and str(h) == "H = 12 (the only valid size up to 64)"


def test_no_valid_size_is_reported():
    text = spec_text("""
        archspec: 1
        name: never
        inputs: {x: [2, H], y: [3, H]}
        defaults:
          projection: {kind: none}
        nodes:
          add: {op: add, in: [x, y]}
        outputs: [add]
    """)
    c = input_constraints(text)
    assert not c.ok and c.lines()[0].startswith("no input size tried gives a valid graph (H tried in 1..")
    assert "the projection policy is 'none'" in c.error.message and c.tried == "H=224"


def test_constraint_errors():
    with pytest.raises(SpecValidationError, match="the spec has no symbolic input sizes"):
        input_constraints(ROOT / "specs/resnet18.yaml")
    with pytest.raises(SpecValidationError, match=r"input 'x' has symbolic size 'H' with no value") as e:
        archspec.check(UNET_SYMBOLIC)
    assert "pass -p H=<size>" in (e.value.fix or "")
    g = archspec.load(UNET_SYMBOLIC, {"H": 64, "W": 32})  # -p binds a symbolic size
    assert g.inputs["x"] == (3, 64, 32) and "H" not in g.params


def test_parse_shape_and_input_binding_errors():
    assert parse_shape("3x450x600") == (None, (3, 450, 600))
    assert parse_shape("y=1X8") == ("y", (1, 8))
    for bad in ("3x0x4", "3xHx4", "", "=3x4", "1 y=3x4"):
        with pytest.raises(SpecValidationError, match="--input expects CxHxW or name=CxHxW with positive sizes"):
            parse_shape(bad)
    two = spec_text("""
        archspec: 1
        name: two
        inputs: {x: [1, 8], y: [1, 8]}
        nodes:
          add: {op: add, in: [x, y]}
        outputs: [add]
    """)
    with pytest.raises(SpecValidationError, match=r"the spec has 2 inputs \(x, y\); name the one --input sets"):
        load_with_inputs(two, None, {None: (1, 8)})
    with pytest.raises(SpecValidationError, match="--input names 'z', which is not an input of the spec"):
        load_with_inputs(two, None, {"z": (1, 8)})
    with pytest.raises(SpecValidationError, match=r"--input gives x 3 dims \(1x8x8\), the spec 2 \(1x8\)"):
        load_with_inputs(two, None, {"x": (1, 8, 8)})
    with pytest.raises(ShapeError, match="node 'add' \\(add\\)"):
        load_with_inputs(two, {}, {"x": (1, 9)})
    assert load_with_inputs(two, None, {"y": (1, 8)}).inputs == {"x": (1, 8), "y": (1, 8)}
    with pytest.raises(archspec.ArchSpecError, match="input shapes cannot be applied to an already built graph"):
        load_with_inputs(archspec.load(two), None, {"y": (1, 8)})
    # a size named by a param takes the value, so expressions that use it agree
    g = load_with_inputs(UNET, {"depth": 2, "base": 4}, {None: (1, 64, 32)})
    assert g.inputs["x"] == (1, 64, 32) and g.params["in_channels"] == 1 and g.params["H"] == 64


def test_size_rule_fits_and_wording():
    from archspec.analyse import _fit

    assert str(_fit("H", [5, 9, 13, 17, 21, 25, 29], 30)) == "H >= 5 and H % 4 == 1"
    assert str(_fit("H", [8, 16, 24, 32], 32)) == "H divisible by 8"
    assert str(_fit("H", [3, 7, 30], 64)) == "H in {3, 7, 30} (all valid sizes up to 64)"
    irregular = _fit("H", [*range(1, 6), *range(9, 12), 20, 40, 41], 64)
    assert str(irregular) == "H: no simple pattern; valid sizes up to 64: 1-5, 9-11, 20, 40-41"
    assert irregular.holds(10) and not irregular.holds(6)
    assert str(_fit("H", [], 64)) == "H: no size in 1..64 gives a valid graph"


# -- receptive fields through the layout ops -------------------------------------------------

SIZE_ONLY = spec_text("""
    archspec: 1
    name: size_only
    doc: Ops sized by another node; the size sources see far more than the data paths.
    inputs: {x: [2, 40, 40]}
    nodes:
      deep:  {op: conv, in: x, out: 2, k: 7, dilation: 5}
      pool:  {op: avgpool, in: x, k: 2}
      mid:   {op: conv, out: 2, k: 3}
      up:    {op: upsample, in: [mid, deep]}
      a:     {op: conv, in: up, out: 2, k: 3}
      p:     {op: pad, padding: [2, 2, 2, 2], mode: reflect}
      b:     {op: conv, out: 8, k: 3, stride: 2}
      ps:    {op: pixel_shuffle, factor: 2}
      c:     {op: conv, out: 2, k: 3}
      small: {op: conv, in: deep, out: 2, k: 5, stride: 2, padding: 0}
      cr:    {op: crop, in: [c, small]}
      out:   {op: conv, out: 2, k: 3}
    outputs: [out]
""")


@pytest.mark.parametrize("node, expect", [("up", (6, 6)), ("a", (8, 8)), ("b", (10, 10)), ("ps", (10, 10)),
                                          ("c", (12, 12)), ("cr", (12, 12)), ("out", (14, 14))])
def test_receptive_field_through_size_inputs_pad_crop_and_pixel_shuffle(node: str, expect: tuple[int, int]) -> None:
    """The size sources (``deep``: a field of 31) pass nothing; pad and crop move a field
    without widening it; pixel_shuffle halves the stride."""
    g = archspec.load(SIZE_ONLY)
    f = receptive_fields(g)[node]
    assert f is not None and f.size == expect
    assert measured_field(g, node, positions=2) == expect
    assert receptive_fields(g)["deep"].size == (31, 31)


def test_receptive_field_follows_a_permute() -> None:
    """After swapping H and W, a kernel along the node's first spatial dim widens the
    input's W: the field is listed in the node's own dims."""
    g = archspec.load(spec_text("""
        archspec: 1
        name: permuted
        inputs: {x: [2, 24, 24]}
        nodes:
          a: {op: conv, in: x, out: 2, k: [5, 1]}
          t: {op: permute, dims: [0, 2, 1]}
          b: {op: conv, out: 2, k: [3, 1]}
          c: {op: permute, dims: [1, 2, 0]}
          m: {op: mean, in: b, dims: [2]}
          g: {op: mean, in: b, dims: [1, 2]}
        outputs: [c, m, g]
    """))
    f = receptive_fields(g)
    assert f["t"].size == (1, 5) and f["b"].size == (3, 5)
    measured = measured_field(g, "b")  # in the input's dims (H, W)
    assert measured[::-1] == f["b"].size
    assert f["c"] is None  # channels moved into space: no field
    # a mean over one spatial dim sees all 24 positions of it: 5 + 23, counted past the
    # border as a conv's field is; a mean over both is global
    assert f["m"].size == (3, 28) and f["g"].glob


def test_check_pauses_the_cycle_collector_and_restores_it():
    import gc

    from archspec.api import _cycle_collection_paused

    seen = []
    with _cycle_collection_paused():
        seen.append(gc.isenabled())
    assert seen == [False] and gc.isenabled()
    archspec.check(ROOT / "specs/resnet18_cifar.yaml")
    assert gc.isenabled()
    with pytest.raises(archspec.ArchSpecError):
        archspec.check("archspec: 1\nname: broken\n")
    assert gc.isenabled()
    gc.disable()  # a caller that paused it keeps it paused
    try:
        archspec.check(ROOT / "specs/resnet18_cifar.yaml")
        assert not gc.isenabled()
    finally:
        gc.enable()
