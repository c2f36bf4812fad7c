"""The spec language, one construct at a time, with lint() after every pass."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import run_passes, spec_text

import archspec
from archspec.errors import GraphError, IncludeError, SpecValidationError

VEC = """
archspec: 1
name: t
inputs: {x: [4]}
"""


def names(g):
    return [n.name for n in g.nodes]


def test_implicit_previous_input_and_in():
    g = run_passes(VEC + "nodes:\n  a: {op: linear, out: 3}\n  b: {op: relu}\n  c: {op: add, in: [b, a]}\noutputs: [c]\n")
    assert g.node("a").inputs == ("x",) and g.node("b").inputs == ("a",) and g.node("c").inputs == ("b", "a")


def test_edges_chains_and_fan_in():
    g = run_passes(VEC + spec_text("""
        nodes:
          a: {op: relu}
          b: {op: tanh}
          c: {op: concat}
          d: {op: sigmoid}
        edges:
          - x -> a -> b
          - b, a -> c -> d
        outputs: [d]
        """))
    assert g.node("c").inputs == ("b", "a")  # written order is concat's channel order
    assert g.node("c").shape == (8,)
    assert g.node("d").inputs == ("c",)


def test_in_and_edges_together_is_an_error():
    with pytest.raises(GraphError, match="node 'b' gets inputs from both in: and edges:"):
        run_passes(VEC + "nodes:\n  a: {op: relu}\n  b: {op: relu, in: a}\nedges: [a -> b]\noutputs: [b]\n")


def test_bad_edge_syntax():
    with pytest.raises(GraphError, match=r"edge 'a' is not a chain like 'a -> b'"):
        run_passes(VEC + "nodes:\n  a: {op: relu}\nedges: [a]\noutputs: [a]\n")


def test_forward_reference_is_ordered_topologically():
    g = run_passes(VEC + "nodes:\n  b: {op: relu, in: a}\n  a: {op: tanh, in: x}\noutputs: [b]\n")
    assert names(g) == ["a", "b"]


def test_several_inputs_and_outputs_by_name():
    text = spec_text("""
        archspec: 1
        name: two
        inputs: {left: [4], right: [6]}
        nodes:
          l: {op: linear, in: left, out: 5}
          r: {op: linear, in: right, out: 5}
          s: {op: add, in: [l, r]}
        outputs: [s, r]
        """)
    model = archspec.compile(text)
    out = model(left=torch.randn(2, 4), right=torch.randn(2, 6))
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 5), (2, 5)]


def test_block_with_named_inputs_and_defaults():
    g = run_passes(VEC + spec_text("""
        blocks:
          gate:
            params: [out, {act: true}]
            inputs: [x, g]
            nodes:
              h: {op: linear, in: x, out: $out}
              t: {op: sigmoid, in: g}
              m: {op: mul, in: [h, t]}
        nodes:
          a: {op: linear, out: 3}
          b: {block: gate, in: {x: x, g: a}, args: {out: 3}}
        outputs: [b]
        """))
    assert g.node("b.m").inputs == ("b.h", "b.t")
    assert g.node("b.h").inputs == ("x",)


def test_block_inputs_must_all_be_connected():
    with pytest.raises(GraphError, match="block 'gate' input 'g' is not connected"):
        run_passes(VEC + spec_text("""
            blocks:
              gate:
                inputs: [x, g]
                nodes: {m: {op: mul, in: [x, g]}}
            nodes:
              b: {block: gate, in: {x: x}}
            outputs: [b]
            """))


def test_blocks_using_blocks_and_groups_as_scopes():
    g = run_passes(VEC + spec_text("""
        blocks:
          inner:
            params: [w]
            nodes: {fc: {op: linear, out: $w}}
          outer:
            nodes:
              first: {block: inner, args: {w: 6}}
              second: {block: inner, args: {w: 4}}
        nodes:
          features:
            nodes:
              o: {block: outer}
              r: {op: relu}
          head: {op: linear, out: 2}
        outputs: [head]
        """))
    assert names(g) == ["features.o.first.fc", "features.o.second.fc", "features.r", "head"]
    assert {s.path: s.kind for s in g.scopes} == {"features": "group", "features.o": "block",
                                                  "features.o.first": "block", "features.o.second": "block"}


def test_repeat_chain_with_names_and_prev_and_index():
    g = run_passes(VEC + spec_text("""
        params: {depth: 3}
        blocks:
          fc: {params: [w], nodes: {l: {op: linear, out: $w}}}
          mix:
            params: [w]
            inputs: [x, skip]
            nodes:
              c: {op: concat, in: [x, skip]}
              l: {op: linear, out: $w}
        nodes:
          enc: {block: fc, repeat: $depth, names: "stage{i+1}", args: {w: "${4 * (i + 1)}"}}
          dec: {block: mix, repeat: $depth, in: {x: prev, skip: "enc[${depth - 1 - i}]"}, args: {w: 2}}
        outputs: [dec]
        """))
    assert [n.shape for n in g.nodes if n.name.startswith("enc")] == [(4,), (8,), (12,)]
    assert g.node("enc.stage2.l").inputs == ("enc.stage1.l",)
    assert g.node("dec.0.c").inputs == ("enc.stage3.l", "enc.stage3.l")
    assert g.node("dec.1.c").inputs == ("dec.0.l", "enc.stage2.l")
    assert g.node("dec.2.c").inputs == ("dec.1.l", "enc.stage1.l")
    rep = next(s for s in g.scopes if s.path == "enc")
    assert (rep.kind, rep.count, rep.connect) == ("repeat", 3, "chain")


def test_repeat_dense_concatenates_everything_before():
    g = run_passes(VEC + spec_text("""
        blocks:
          layer: {nodes: {l: {op: linear, out: 2}}}
        nodes:
          d: {block: layer, repeat: 3, connect: dense}
        outputs: [d]
        """))
    assert g.node("d.1.l").inputs == ("d.cat1",)
    assert g.node("d.cat2").inputs == ("x", "d.0.l", "d.1.l")
    assert g.node("d.cat").shape == (4 + 3 * 2,)


def test_index_out_of_range():
    with pytest.raises(GraphError, match=r"'r\[5\]': 'r' has 2 instances \(0..1\)"):
        run_passes(VEC + "blocks: {b: {nodes: {l: {op: relu}}}}\nnodes:\n  r: {block: b, repeat: 2}\n"
                         "  o: {op: relu, in: 'r[5]'}\noutputs: [o]\n")


def test_prev_outside_a_repeat():
    with pytest.raises(GraphError, match="'prev' is only meaningful inside a repeat"):
        run_passes(VEC + "nodes:\n  o: {op: relu, in: prev}\noutputs: [o]\n")


def test_when_false_becomes_identity():
    g = run_passes(VEC + "params: {act: false}\nnodes:\n  a: {op: relu, when: $act}\n  b: {op: tanh}\noutputs: [b]\n")
    assert g.node("a").op == "identity" and g.node("a").meta["disabled"]
    g = run_passes(VEC + "params: {act: false}\nnodes:\n  a: {op: relu, when: $act}\n  b: {op: tanh}\noutputs: [b]\n",
                   {"act": True})
    assert g.node("a").op == "relu"


def test_when_must_be_boolean():
    with pytest.raises(SpecValidationError, match="when: must be true or false, got 3"):
        run_passes(VEC + "nodes:\n  a: {op: relu, when: '${1 + 2}'}\noutputs: [a]\n")


def test_share_ties_an_op_and_a_whole_block():
    text = VEC.replace("inputs: {x: [4]}", "inputs: {x: [4], y: [4]}") + spec_text("""
        blocks:
          tower: {nodes: {a: {op: linear, out: 3}, b: {op: relu}, c: {op: linear, out: 2}}}
        nodes:
          left: {block: tower, in: x}
          right: {share: left, in: y}
          p: {op: linear, in: x, out: 4}
          q: {share: p, in: y}
          d: {op: add, in: [left, right]}
        outputs: [d, q]
        """)
    g = run_passes(text)
    assert g.node("right.a").module == "left.a" and g.node("q").module == "p"
    model = archspec.compile(text)
    assert "right" not in {k.split(".")[0] for k in model.state_dict()}
    x = torch.randn(2, 4)
    d, q = model(x, x)
    assert torch.equal(d, 2 * model.get_submodule("left")(x) if False else d)  # shapes and run
    left_only = model.get_submodule("left.c")(torch.relu(model.get_submodule("left.a")(x)))
    assert torch.allclose(d, 2 * left_only)
    assert torch.equal(q, model.get_submodule("p")(x))


def test_shared_module_needs_matching_inputs():
    with pytest.raises(archspec.ShapeError, match="shared module 'p' was built for input 4, but 'q' gives it 3"):
        run_passes(VEC + "nodes:\n  p: {op: linear, out: 3}\n  q: {share: p, in: p}\noutputs: [q]\n")


def test_use_blocks_from_a_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.yaml").write_text("archspec: 1\nblocks:\n  mlp: {nodes: {l: {op: linear, out: 2}}}\n")
    spec = tmp_path / "net.yaml"
    spec.write_text(VEC.lstrip() + "use: [lib/blocks.yaml]\nnodes:\n  m: {block: mlp}\noutputs: [m]\n")
    assert archspec.check(spec).outputs == {"m.l": (2,)}


@pytest.mark.parametrize("path, message", [
    ("../outside.yaml", r"reaches outside the spec's folder \('..'\)"),
    ("/etc/passwd", "is an absolute path"),
    ("missing.yaml", "does not exist"),
])
def test_use_is_confined_to_the_spec_folder(tmp_path, path, message):
    spec = tmp_path / "net.yaml"
    spec.write_text(VEC.lstrip() + f"use: ['{path}']\nnodes:\n  m: {{op: relu}}\noutputs: [m]\n")
    with pytest.raises(IncludeError, match=message):
        archspec.check(spec)


def test_use_refuses_symlinks(tmp_path):
    (tmp_path / "secret.yaml").write_text("archspec: 1\nblocks: {}\n")
    d = tmp_path / "specs"
    d.mkdir()
    os.symlink(tmp_path / "secret.yaml", d / "link.yaml")
    spec = d / "net.yaml"
    spec.write_text(VEC.lstrip() + "use: [link.yaml]\nnodes:\n  m: {op: relu}\noutputs: [m]\n")
    with pytest.raises(IncludeError, match="goes through a symlink"):
        archspec.check(spec)


def test_include_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("archspec: 1\nuse: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("archspec: 1\nuse: [a.yaml]\n")
    spec = tmp_path / "net.yaml"
    spec.write_text(VEC.lstrip() + "use: [a.yaml]\nnodes:\n  m: {op: relu}\noutputs: [m]\n")
    with pytest.raises(IncludeError, match=r"use: includes 'a.yaml' twice \(an include cycle\?\)"):
        archspec.check(spec)


def test_defaults_apply_unless_the_node_says_otherwise():
    g = run_passes(spec_text("""
        archspec: 1
        name: t
        inputs: {x: [3, 8, 8]}
        defaults: {conv: {bias: false, k: 3}}
        nodes:
          a: {op: conv, out: 4}
          b: {op: conv, out: 4, bias: true, k: 1}
        outputs: [b]
        """))
    assert (g.node("a").attrs["bias"], g.node("a").attrs["k"]) == (False, 3)
    assert (g.node("b").attrs["bias"], g.node("b").attrs["k"]) == (True, 1)


def test_symbolic_input_size_from_params():
    g = run_passes(spec_text("""
        archspec: 1
        name: t
        params: {H: 8}
        inputs: {x: [3, H, H]}
        nodes: {a: {op: maxpool, k: 2}}
        outputs: [a]
        """), {"H": 16})
    assert g.node("a").shape == (3, 8, 8)


def test_projection_names_are_configurable():
    g = run_passes(spec_text("""
        archspec: 1
        name: t
        inputs: {x: [3, 8, 8]}
        defaults: {projection: {kind: avgpool_conv_bn, name: shortcut}}
        blocks:
          res:
            nodes:
              c: {op: conv, out: 6, k: 3, stride: 2}
              s: {op: add, in: [c, input]}
        nodes:
          b: {block: res}
        outputs: [b]
        """))
    assert [n.name for n in g.nodes if n.provenance == "auto"] == ["b.shortcut.0", "b.shortcut.1", "b.shortcut.2"]
    assert [n.op for n in g.nodes if n.provenance == "auto"] == ["avgpool", "conv", "bn"]


def test_zero_pad_projection_has_no_parameters():
    text = spec_text("""
        archspec: 1
        name: t
        inputs: {x: [4, 8, 8]}
        defaults: {projection: {kind: zero_pad}}
        nodes:
          c: {op: conv, out: 8, k: 3, stride: 2}
          s: {op: add, in: [c, x]}
        outputs: [s]
        """)
    g = run_passes(text)
    (proj,) = [n for n in g.nodes if n.provenance == "auto"]
    assert proj.op == "zero_pad" and proj.module is None
    model = archspec.compile(text)
    x = torch.randn(1, 4, 8, 8)
    conv = model.get_submodule("c")
    want = conv(x) + torch.cat([x[:, :, ::2, ::2], torch.zeros(1, 4, 4, 4)], 1)
    assert torch.equal(model(x), want)
