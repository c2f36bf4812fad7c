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
