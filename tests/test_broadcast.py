"""Broadcasting merges and projections: element-wise merges broadcast per-sample dims of
size 1 as torch does; only a residual ``add`` that cannot broadcast is projected, by the
kinds ``conv``, ``conv_bn``, ``avgpool_conv_bn``, ``zero_pad`` and ``none``. Hand-written
torch modules are the oracle: the same state_dict keys, a strict load, equal outputs."""

from __future__ import annotations

import pytest
import torch
from helpers import one_thread, run_passes, spec_text  # noqa: F401  # one_thread: autouse fixture
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import archspec
from archspec.analyse import receptive_fields, summary
from archspec.cli import main
from archspec.errors import ShapeError
from archspec.names import IDENT_PATTERN
from archspec.ops.base import broadcast
from archspec.ops.merge import PROJECTION_NAME
from archspec.render import to_dot

SE_ATTENTION = spec_text("""
    archspec: 1
    name: gates
    inputs: {x: [8, 12, 12]}
    nodes:
      conv: {op: conv, in: x, out: 8, k: 3}
      pool: {op: adaptive_avgpool, size: 1}
      fc1:  {op: conv, out: 2, k: 1}
      relu: {op: relu}
      fc2:  {op: conv, out: 8, k: 1}
      gate: {op: sigmoid}
      se:   {op: mul, in: [conv, gate]}         # 8x12x12 * 8x1x1
      att:  {op: conv, in: x, out: 1, k: 1}
      amap: {op: sigmoid}
      attn: {op: mul, in: [amap, conv]}         # 1x12x12 * 8x12x12
      sum:  {op: add, in: [se, attn]}
    outputs: [sum, attn]
""")


class Gates(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.fc1 = nn.Conv2d(8, 2, 1)
        self.fc2 = nn.Conv2d(2, 8, 1)
        self.att = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.conv(x)
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(nn.functional.adaptive_avg_pool2d(c, 1)))))
        attn = torch.sigmoid(self.att(x)) * c
        return c * gate + attn, attn


def test_broadcast_rule():
    assert broadcast([(8, 12, 12), (8, 1, 1)]) == (8, 12, 12)
    assert broadcast([(1, 12, 12), (8, 12, 12), (8, 1, 12)]) == (8, 12, 12)
    assert broadcast([(8, 12, 12), (4, 12, 12)]) is None
    assert broadcast([(8,), (8, 1, 1)]) is None  # torch would align (8,) with W: never here
    assert PROJECTION_NAME == IDENT_PATTERN


def test_gates_broadcast_like_torch():
    g = archspec.load(SE_ATTENTION)
    assert g.shape_of("se") == g.shape_of("attn") == g.shape_of("sum") == (8, 12, 12)
    assert not [n for n in g.nodes if n.provenance == "auto"]  # a broadcast is never projected
    model = archspec.compile(SE_ATTENTION).eval()
    ref = Gates().eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        for a, b in zip(model(x), ref(x), strict=True):
            assert torch.equal(a, b)


def test_check_lists_every_broadcast():
    result = archspec.check(SE_ATTENTION)
    assert result.broadcasts == [
        {"node": "se", "op": "mul", "inputs": ["conv", "gate"], "shapes": [[8, 12, 12], [8, 1, 1]],
         "shape": [8, 12, 12], "stretched": {"gate": [1, 2]}},
        {"node": "attn", "op": "mul", "inputs": ["amap", "conv"], "shapes": [[1, 12, 12], [8, 12, 12]],
         "shape": [8, 12, 12], "stretched": {"amap": [0]}},
    ]
    assert result.to_dict()["broadcasts"] == result.broadcasts
    assert result.projections == []


def test_check_prints_every_broadcast(tmp_path):
    from click.testing import CliRunner

    spec = tmp_path / "gates.yaml"
    spec.write_text(SE_ATTENTION)
    out = CliRunner().invoke(main, ["check", str(spec)])
    assert out.exit_code == 0, out.output
    assert "  broadcast mul se: conv 8x12x12, gate 8x1x1 -> 8x12x12 (gate stretches dims 1, 2)\n" in out.output
    assert "  broadcast mul attn: amap 1x12x12, conv 8x12x12 -> 8x12x12 (amap stretches dim 0)\n" in out.output


def test_broadcasting_merges_count_and_draw_right():
    g = archspec.load(SE_ATTENTION)
    s = summary(g)
    model = archspec.compile(SE_ATTENTION).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 8, 12, 12))
    assert s.macs == counter.get_total_flops() // 2
    assert s.params == sum(p.numel() for p in model.parameters())
    f = receptive_fields(g)
    assert f["se"].glob  # the gate averages the whole map: every output sees all of it
    assert f["attn"].size == (3, 3) and not f["attn"].glob  # the map is 1x1 of x; conv is 3x3
    dot = to_dot(g)
    assert "se" in dot and "attn" in dot


def test_residual_add_broadcasts_before_it_projects():
    g = run_passes("""
        archspec: 1
        name: t
        inputs: {x: [1, 8, 8]}
        nodes:
          c: {op: conv, in: x, out: 4, k: 3}
          a: {op: add, in: [c, x]}
        outputs: [a]
    """)
    assert g.shape_of("a") == (4, 8, 8) and [n.name for n in g.nodes] == ["c", "a"]


def test_broadcasting_add_with_the_smaller_input_first_runs_out_of_place():
    text = spec_text("""
        archspec: 1
        name: t
        inputs: {x: [4, 6, 6]}
        nodes:
          p: {op: adaptive_avgpool, in: x, size: 1}
          c: {op: conv, in: x, out: 4, k: 3}
          a: {op: add, in: [p, c]}
          r: {op: relu}
        outputs: [r]
    """)
    model = archspec.compile(text).eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        want = torch.relu(nn.functional.adaptive_avg_pool2d(x, 1) + model.c(x))
        assert torch.equal(model(x), want)


def test_mul_that_cannot_broadcast_is_an_error():
    with pytest.raises(ShapeError, match=r"node 'm' \(mul\): mul inputs cannot broadcast: input 0 is 8x8x8, input 1 "
                                         r"is 8x4x4: dim 1 is 8 against 4, and neither is 1") as e:
        run_passes("""
            archspec: 1
            name: t
            inputs: {x: [8, 8, 8]}
            nodes:
              p: {op: maxpool, in: x, k: 2}
              m: {op: mul, in: [x, p]}
            outputs: [m]
        """)
    assert e.value.fix == ("broadcasting stretches only dims of size 1: pool one input to size 1 (adaptive_avgpool "
                           "size: 1), or resample it (upsample, pool, a strided conv) so the sizes agree")


def test_mul_never_grows_a_projection():
    # A gate with the wrong channel count was once mended by a learned 1->C conv.
    with pytest.raises(ShapeError, match=r"mul inputs cannot broadcast: input 0 is 8x8x8, input 1 is 2x1x1: dim 0 "
                                         r"is 8 against 2, and neither is 1"):
        run_passes("""
            archspec: 1
            name: t
            inputs: {x: [8, 8, 8]}
            nodes:
              p: {op: adaptive_avgpool, in: x, size: 1}
              g: {op: conv, out: 2, k: 1}
              m: {op: mul, in: [x, g]}
            outputs: [m]
        """)


def test_ranks_that_differ_do_not_broadcast():
    with pytest.raises(ShapeError, match=r"mul inputs cannot broadcast: input 0 is 8x4x4, input 1 is 8: their ranks "
                                         r"differ \(3 and 1 per-sample dims\); only dims of size 1 of equal-rank "
                                         r"shapes broadcast"):
        run_passes("""
            archspec: 1
            name: t
            inputs: {x: [8, 4, 4]}
            nodes:
              p: {op: adaptive_avgpool, in: x, size: 1}
              f: {op: flatten}
              m: {op: mul, in: [x, f]}
            outputs: [m]
        """)


# -- projections ------------------------------------------------------------------------

def residual(projection: str, defaults: str = "") -> str:
    """x (4x8x8) -> conv/2 -> bn -> add with x: the skip needs stride 2 and 4 -> 8 channels."""
    return spec_text(f"""
        archspec: 1
        name: res
        inputs: {{x: [4, 8, 8]}}
        defaults: {{conv: {{bias: false}}{defaults}}}
        nodes:
          conv1: {{op: conv, in: x, out: 8, k: 3, stride: 2}}
          bn1:   {{op: bn}}
          add:   {{op: add, in: [bn1, x]{projection}}}
        outputs: [add]
    """)


class Res(nn.Module):
    def __init__(self, shortcut: nn.Module | None, name: str = "add_shortcut") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.name = name
        if shortcut is not None:
            self.add_module(name, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = getattr(self, self.name, None)
        if skip is None:  # zero_pad: every other position, 4 zero channels appended
            s = nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, 4))
        else:
            s = skip(x)
        return self.bn1(self.conv1(x)) + s


def _same(spec: str, ref: nn.Module) -> None:
    model = archspec.compile(spec).eval()
    ref.eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-1, 1)
        for name, b in ref.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                b.uniform_(0.5, 1.5)
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))


PROJECTIONS = {
    "conv": lambda bias: nn.Conv2d(4, 8, 1, stride=2, bias=bias),
    "conv_bn": lambda bias: nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=bias), nn.BatchNorm2d(8)),
    "avgpool_conv_bn": lambda bias: nn.Sequential(
        nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False), nn.Conv2d(4, 8, 1, bias=bias), nn.BatchNorm2d(8)),
    "zero_pad": lambda bias: None,
}


@pytest.mark.parametrize("kind, bias", [(k, b) for k in PROJECTIONS for b in (False, True) if k != "zero_pad" or not b])
def test_projection_kind_on_the_merge_matches_torch(kind: str, bias: bool):
    # The merge's own policy wins over defaults.projection, key by key (name comes from defaults).
    spec = residual(f", projection: {{kind: {kind}, bias: {str(bias).lower()}}}",
                    ", projection: {kind: none, name: shortcut}")
    shortcut = PROJECTIONS[kind](bias)
    _same(spec, Res(shortcut))
    g = archspec.load(spec)
    auto = [n for n in g.nodes if n.provenance == "auto"]
    assert {n.projection.kind for n in auto if n.projection} == {kind}
    assert archspec.check(spec).projections[0]["kind"] == kind


def test_projection_kind_from_defaults_with_bias_and_name():
    spec = residual("", ", projection: {kind: conv, name: proj, bias: true}")
    _same(spec, Res(nn.Conv2d(4, 8, 1, stride=2, bias=True), name="add_proj"))


def test_conv_projection_inside_a_block_is_one_module():
    text = spec_text("""
        archspec: 1
        name: preact
        inputs: {x: [4, 8, 8]}
        defaults: {projection: {kind: conv, name: shortcut}}
        blocks:
          pre:
            params: [out, {stride: 1}]
            nodes:
              bn:   {op: bn}
              relu: {op: relu}
              conv: {op: conv, out: $out, k: 3, stride: $stride, bias: false}
              add:  {op: add, in: [conv, input]}
        nodes:
          layer: {block: pre, repeat: 2, in: x, args: {out: 8, stride: "${2 if i == 0 else 1}"}}
        outputs: [layer]
    """)
    keys = list(archspec.compile(text).state_dict())
    assert "layer.0.shortcut.weight" in keys and not [k for k in keys if k.startswith("layer.1.shortcut")]
    assert "layer.0.shortcut.bias" not in keys


def test_none_on_one_merge_makes_its_mismatch_an_error():
    with pytest.raises(ShapeError, match=r"node 'add' \(add\): input 'x' is 4x8x8 but input 0 is 8x4x4, and the "
                                         r"projection policy is 'none'") as e:
        run_passes(residual(", projection: {kind: none}"))
    assert e.value.fix == ("make the shapes equal, or set a projection kind (projection: {kind: conv_bn} on the node "
                           "or in defaults)")


def test_projection_on_a_mul_is_refused():
    with pytest.raises(archspec.SpecValidationError, match=r"unknown field 'projection'"):
        archspec.load(spec_text("""
            archspec: 1
            name: t
            inputs: {x: [4, 8, 8]}
            nodes:
              m: {op: mul, in: [x, x], projection: {kind: conv}}
            outputs: [m]
        """))


def test_projection_kind_is_checked_on_the_merge():
    with pytest.raises(archspec.SpecValidationError,
                       match=r"nodes.add.projection.kind: Input should be 'conv', 'conv_bn', 'avgpool_conv_bn', "
                             r"'zero_pad' or 'none'"):
        archspec.load(residual(", projection: {kind: conv_nb}"))


def test_a_ratio_that_is_not_whole_is_an_error():
    # A stride-3 conv maps 16 to ceil(16/3) = 6, but 16/6 is no whole ratio: the docs promise an error.
    with pytest.raises(ShapeError, match=r"node 'add' \(add\): input 'x' is 4x16x16 but input 0 is 4x6x6: the spatial "
                                         r"ratio 16/6 is not a whole number") as e:
        run_passes("""
            archspec: 1
            name: t
            inputs: {x: [4, 16, 16]}
            nodes:
              c:   {op: conv, in: x, out: 4, k: 3, stride: 3}
              add: {op: add, in: [c, x]}
            outputs: [add]
        """)
    assert e.value.fix == "change a stride or padding so the sizes divide evenly"


@pytest.mark.parametrize("size, stages, stride", [(57, 2, 4), (7, 1, 2), (32, 1, 2)])
def test_stride_two_roundings_are_whole(size: int, stages: int, stride: int):
    """Odd sizes halved by stride-2 layers (57 -> 29 -> 15) are projected with the whole stride."""
    convs = "\n".join(f"          c{i}: {{op: conv, out: 4, k: 3, stride: 2}}" for i in range(stages))
    g = run_passes(f"""
        archspec: 1
        name: t
        inputs: {{x: [4, {size}, {size}]}}
        nodes:
          i: {{op: identity, in: x}}
{convs}
          add: {{op: add, in: [c{stages - 1}, x]}}
        outputs: [add]
    """)
    proj = next(n for n in g.nodes if n.op == "conv" and n.provenance == "auto")
    assert proj.attrs["stride"] == stride and g.shape_of("add") == g.shape_of(f"c{stages - 1}")


# -- receptive fields after stacked up-sampling ------------------------------------------

def field_at_every_alignment(graph: archspec.Graph, node: str, period: int) -> list[int]:
    """The measured extent along H of the input pixels that reach output pixel (i, i), for
    ``period`` consecutive i around the middle (every alignment of a 2**depth up-sampling),
    by autograd through the real model: positive weights and inputs, eval mode, max-pools
    swapped for average pools over the same windows (a max routes its gradient to one element)."""
    import torch.nn.functional as F

    from archspec.emit import emit

    model = emit(graph.replace(outputs=(node,))).double().eval()
    for n in model.graph.nodes:
        if n.op == "call_function" and n.target is F.max_pool2d:
            n.target = F.avg_pool2d
            n.kwargs = {k: v for k, v in n.kwargs.items() if k != "dilation"}
    model.recompile()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() > 1:
                p.fill_(1.0 / p[0].numel())
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.01)
    (shape,) = graph.inputs.values()
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    y = model(x)
    mid = y.shape[2] // 2
    out = []
    for i in range(mid, mid + period):
        (grad,) = torch.autograd.grad(y[0, :, i, i].sum(), x, retain_graph=True)
        rows = grad[0].abs().sum(0).sum(1).nonzero()
        assert rows.min() > 0 and rows.max() < shape[1] - 1, "the field reaches the border: grow the input"
        out.append(int(rows.max() - rows.min() + 1))
    return out


STACKED_UP = spec_text("""
    archspec: 1
    name: stacked_up
    inputs: {x: [1, 64, 64]}
    nodes:
      p1: {op: avgpool, k: 2}
      p2: {op: avgpool, k: 2}
      u1: {op: conv_transpose, out: 1, k: 2, stride: 2}
      c1: {op: conv, out: 1, k: 3}
      u2: {op: conv_transpose, out: 1, k: 2, stride: 2}
      c2: {op: conv, out: 1, k: 3}
    outputs: [c2]
""")


def test_field_after_stacked_upsampling_is_the_widest_alignment():
    g = archspec.load(STACKED_UP)
    measured = field_at_every_alignment(g, "c2", 4)
    assert sorted(set(measured)) == [8, 12]  # even and odd outputs see different spans
    assert receptive_fields(g)["c2"].size == (12, 12) == (max(measured),) * 2  # was 10: the average


UNET = (archspec.__path__[0] + "/templates/unet.yaml")


@pytest.mark.parametrize("depth, size", [(3, 160), (4, 288)])
@pytest.mark.parametrize("upsampling", ["transposed", "bilinear"])
def test_unet_field_matches_the_gradient_at_every_alignment(depth: int, size: int, upsampling: str):
    from archspec.analyse import load_with_inputs

    g = load_with_inputs(UNET, {"depth": depth, "base": 1, "in_channels": 1, "num_classes": 1,
                                "upsampling": upsampling}, {None: (1, size, size)})
    measured = field_at_every_alignment(g, "head", 2 ** depth)
    assert receptive_fields(g)["head"].size == (max(measured),) * 2, measured


def test_shipped_unet_field():
    # Under-reported as 200 when fields of up-sampled paths were averaged over alignments.
    assert receptive_fields(archspec.load(archspec.__path__[0] + "/../specs/unet.yaml"))["head"].size == (204, 204)


def test_concat_dim_1_written_pytorch_style_says_dims_count_per_sample():
    with pytest.raises(ShapeError, match=r"concat: input 1 is 8x16x16 but input 0 is 4x16x16; all dims except dim 1 "
                                         r"\(dims count per sample, the batch is not counted: channels are dim 0, and "
                                         r"dim 1 is H\) must match") as e:
        run_passes("""
            archspec: 1
            name: t
            inputs: {x: [4, 16, 16]}
            nodes:
              a:   {op: conv, in: x, out: 8, k: 3}
              cat: {op: concat, in: [x, a], dim: 1}
            outputs: [cat]
        """)
    assert e.value.fix == "write dim: 0 (or leave dim out) to concatenate channels"
