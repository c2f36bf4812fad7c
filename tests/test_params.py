"""The params and outputs of a spec: outputs by name (a dict), `assert:` on the params,
expressions inside lists, and the size analysis when a size param is used elsewhere."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import archspec
from archspec.cli import main
from archspec.errors import ArchSpecError, ExportError
from archspec.export import export

SEG = """\
archspec: 1
name: seg
inputs: {x: [3, 16, 16]}
nodes:
  body: {op: conv, out: 8, k: 3}
  act: {op: relu}
  head: {op: conv, out: 2, k: 1}
  aux_head: {op: conv, in: act, out: 3, k: 1}
outputs: {out: head, aux: aux_head}
"""


class SegRef(nn.Module):
    """The hand-written model SEG describes: a torchvision-style dict of outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)
        self.aux_head = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        a = torch.relu(self.body(x))
        return {"out": self.head(a), "aux": self.aux_head(a)}


def _spec(tmp_path: Path, text: str, name: str = "net.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- outputs: a mapping ----------------------------------------------------------------------

def test_a_mapping_of_outputs_returns_a_dict_in_that_order() -> None:
    model = archspec.compile(SEG)
    ref = SegRef()
    ref.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    got, want = model(x), ref(x)
    assert isinstance(got, dict) and list(got) == ["out", "aux"]
    assert all(torch.equal(got[k], want[k]) for k in want)
    result = archspec.check(SEG)
    assert result.outputs == {"out": (2, 16, 16), "aux": (3, 16, 16)}
    assert result.to_dict()["output_nodes"] == {"out": "head", "aux": "aux_head"}
    # in place and channels_last: the dict survives the inference optimisation too
    fast = archspec.compile(SEG, optimize="inference")
    fast.load_state_dict(model.state_dict())
    out = fast(x)
    assert list(out) == ["out", "aux"] and out["out"].is_contiguous()
    assert torch.allclose(out["out"], want["out"], atol=1e-5)


def test_a_mapping_of_outputs_may_name_one_node_twice_and_lists_still_give_tuples() -> None:
    one = SEG.replace("outputs: {out: head, aux: aux_head}", "outputs: {out: head, logits: head}")
    y = archspec.compile(one)(torch.randn(1, 3, 16, 16))
    assert list(y) == ["out", "logits"] and y["out"] is y["logits"]
    y = archspec.compile(SEG.replace("outputs: {out: head, aux: aux_head}", "outputs: [head, aux_head]"))(
        torch.randn(1, 3, 16, 16))
    assert isinstance(y, tuple) and [t.shape[1] for t in y] == [2, 3]


@pytest.mark.parametrize("outputs,message", [
    ("{out: nope}", "unknown node 'nope'"),
    ("{1x: head}", "'1x' is not a valid name"),
    ("{out: [head]}", r"outputs.out: Input should be a valid string"),
])
def test_a_bad_outputs_mapping_is_located(outputs: str, message: str) -> None:
    with pytest.raises(ArchSpecError, match=message) as e:
        archspec.check(SEG.replace("{out: head, aux: aux_head}", outputs))
    assert e.value.loc is not None and e.value.loc.line == 9


def test_check_summary_and_render_name_the_outputs(tmp_path: Path) -> None:
    spec = _spec(tmp_path, SEG)
    res = CliRunner().invoke(main, ["check", str(spec)])
    assert res.exit_code == 0, res.output
    assert "  output out: 2x16x16 (head)\n  output aux: 3x16x16 (aux_head)" in res.output
    res = CliRunner().invoke(main, ["summary", str(spec), "--json"])
    assert json.loads(res.output)["outputs"] == {"out": [2, 16, 16], "aux": [3, 16, 16]}
    res = CliRunner().invoke(main, ["render", str(spec), "-o", "-", "--format", "dot"])
    assert res.exit_code == 0 and "output out" in res.output and "output aux" in res.output
    assert "x 3×16×16 → out 2×16×16, aux 3×16×16" in res.output  # the title


def test_export_keeps_the_dict(tmp_path: Path) -> None:
    graph = archspec.load(SEG)
    model = archspec.compile(graph).eval()
    x = torch.randn(2, 3, 16, 16)
    want = model(x)
    path = export(graph, "python", tmp_path / "seg_model.py", model=model)
    text = path.read_text()
    assert 'return {"out": head, "aux": aux_head}' in text and "Outputs a dict {out: (N, 2, 16, 16)" in text
    spec = importlib.util.spec_from_file_location("seg_model", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    standalone = mod.Model().eval()
    standalone.load_state_dict(model.state_dict(), strict=True)
    got = standalone(x)
    assert list(got) == ["out", "aux"] and all(torch.equal(got[k], want[k]) for k in want)

    import warnings

    export(graph, "torchscript", tmp_path / "seg.pt", model=model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated upstream
        scripted = torch.jit.load(str(tmp_path / "seg.pt"))
    got = scripted(x)
    assert list(got) == ["out", "aux"] and all(torch.equal(got[k], want[k]) for k in want)

    export(graph, "export", tmp_path / "seg.pt2", model=model)
    got = torch.export.load(str(tmp_path / "seg.pt2")).module()(x)
    assert list(got) == ["out", "aux"] and all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)


def test_onnx_refuses_a_dict_of_outputs_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"ONNX cannot write 'seg': its outputs are a mapping \(out, aux\), and an "
                                          "ONNX graph's outputs are a flat list") as e:
        export(archspec.load(SEG), "onnx", tmp_path / "seg.onnx")
    assert "write outputs: as a list for ONNX" in (e.value.fix or "")
    assert not (tmp_path / "seg.onnx").exists()
    res = CliRunner().invoke(main, ["export", str(_spec(tmp_path, SEG)), "--to", "onnx", "-o", str(tmp_path / "m.onnx")])
    assert res.exit_code == 3 and "ONNX cannot write 'seg'" in res.output


def test_train_uses_the_output_named_out(tmp_path: Path) -> None:
    from archspec.train.task import infer_task

    task = infer_task(archspec.check(SEG))
    assert (task.kind, task.output, task.key) == ("segmentation", (2, 16, 16), "out")
    result = archspec.train(_spec(tmp_path, SEG), out=tmp_path / "run", data="synthetic:64", epochs=1,
                            batch_size=32, verbose=False)
    assert result.task == "segmentation" and len(result.metrics) == 1
    # the only output of a one-key mapping is the one trained, whatever its key
    assert infer_task(archspec.check(SEG.replace("{out: head, aux: aux_head}", "{logits: head}"))).key == "logits"


def test_train_refuses_a_mapping_without_out() -> None:
    from archspec.train.errors import RunError
    from archspec.train.task import infer_task

    with pytest.raises(RunError, match="archspec train uses the output named 'out' of a spec whose outputs: is a "
                                       "mapping; this one has 'seg', 'aux'") as e:
        infer_task(archspec.check(SEG.replace("{out: head, aux: aux_head}", "{seg: head, aux: aux_head}")))
    assert e.value.fix == "name the output to train 'out' in outputs:, e.g. outputs: {out: head}"


# -- assert: -----------------------------------------------------------------------------------

RESNET = """\
archspec: 1
name: net
params: {depth: 18, width: 8}
assert:
  - {that: "${depth in (18, 34, 50, 101, 152)}", message: "depth must be one of 18, 34, 50, 101, 152"}
  - {that: "${width % 8 == 0}", message: "width must be a multiple of 8"}
inputs: {x: [3, 8, 8]}
nodes:
  conv: {op: conv, out: $width, k: 3}
  stage: {block: nowhere}
outputs: conv
"""


def test_an_assert_that_fails_is_the_error_before_anything_is_built() -> None:
    # `stage` calls a block that does not exist: the assert is reported first.
    with pytest.raises(ArchSpecError, match="^<string>:5:12: depth must be one of 18, 34, 50, 101, 152 "
                                            r"\(at assert.0.that\)$") as e:
        archspec.check(RESNET, params={"depth": 20})
    assert e.value.got == "depth=20"
    assert e.value.fix == "change the params so that ${depth in (18, 34, 50, 101, 152)} holds"
    with pytest.raises(ArchSpecError, match="width must be a multiple of 8") as e:
        archspec.check(RESNET, params={"width": 12})
    assert e.value.loc is not None and e.value.loc.line == 6 and e.value.got == "width=12"
    with pytest.raises(ArchSpecError, match="unknown block 'nowhere'"):  # the asserts hold: on to the nodes
        archspec.check(RESNET)


def test_the_cli_prints_the_assert_with_its_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["check", str(_spec(tmp_path, RESNET)), "-p", "depth=19"])
    assert res.exit_code == 2
    assert "net.yaml:5:12: depth must be one of 18, 34, 50, 101, 152" in res.output
    assert '    5 |   - {that: "${depth in (18, 34, 50, 101, 152)}"' in res.output


@pytest.mark.parametrize("entry,message", [
    ('{that: "${depth + 1}", message: m}', r"assert: '\$\{depth \+ 1\}' must be true or false, got 19"),
    ('{that: "${dept > 1}", message: m}', r"unknown name 'dept' \(did you mean 'depth'\?\)"),
    ("{that: true}", "missing required field 'message'"),
    ("{that: true, message: m, when: x}", "unknown field 'when'"),
    ("{that: 3, message: m}", "assert.0.that: Input should be a valid boolean"),
])
def test_a_malformed_assert_is_located(entry: str, message: str) -> None:
    text = RESNET.replace('  - {that: "${width % 8 == 0}", message: "width must be a multiple of 8"}\n', "")
    text = text.replace('  - {that: "${depth in (18, 34, 50, 101, 152)}", message: "depth must be one of 18, 34, '
                        '50, 101, 152"}', "  - " + entry)
    with pytest.raises(ArchSpecError, match=message) as e:
        archspec.check(text)
    assert e.value.loc is not None and e.value.loc.line == 5


def test_asserts_that_hold_let_the_spec_build() -> None:
    text = RESNET.replace("  stage: {block: nowhere}\n", "")
    assert archspec.check(text, params={"depth": 50, "width": 16}).outputs == {"conv": (16, 8, 8)}


# -- expressions inside lists ------------------------------------------------------------------

LISTS = """\
archspec: 1
name: lists
params: {H: 4, W: 6}
inputs: {x: [3, 16, 16]}
nodes:
  up: {op: upsample, size: [$H, "${2 * W}"], mode: nearest}
  pool: {op: maxpool, k: [1, $H], stride: [1, $H], padding: 0}
  flat: {op: reshape, shape: [$H, -1]}
outputs: flat
"""


def test_expressions_inside_lists() -> None:
    g = archspec.load(LISTS)
    assert dict(g.node("up").attrs)["size"] == [4, 12] and dict(g.node("pool").attrs)["k"] == [1, 4]
    assert g.node("pool").shape == (3, 4, 3) and g.node("flat").shape == (4, 9)
    assert archspec.load(LISTS, params={"H": 3}).node("up").shape == (3, 3, 12)
    # the same as writing the list as one expression
    same = LISTS.replace('[$H, "${2 * W}"]', '"${[H, 2 * W]}"')
    assert archspec.load(same).nodes == g.nodes
    model = archspec.compile(LISTS)
    x = torch.randn(2, 3, 16, 16)
    want = nn.functional.max_pool2d(nn.functional.interpolate(x, size=(4, 12), mode="nearest"), (1, 4), (1, 4))
    assert torch.equal(model(x), want.reshape(2, 4, -1))


@pytest.mark.parametrize("value,message,col", [
    ("[$H, 0]", r"op 'upsample', size.1: Input should be greater than or equal to 1", 33),
    ('[$H, "${W / 2}"]', r"op 'upsample', size.1: Input should be a valid integer", 33),
    ('[$H, "$w"]', r"unknown name 'w' \(at nodes.up.size.1\)", 33),
    ("[1, 0]", r"nodes.up.size.1: Input should be greater than or equal to 1", 32),
])
def test_a_bad_element_of_a_list_is_pointed_at(value: str, message: str, col: int) -> None:
    text = LISTS.replace('[$H, "${2 * W}"]', value)
    with pytest.raises(ArchSpecError, match=message) as e:
        archspec.check(text)
    assert e.value.loc is not None and (e.value.loc.line, e.value.loc.col) == (6, col)


# -- the size analysis when a size param is used in an expression -------------------------------

RESHAPE = """\
archspec: 1
name: rs
params: {H: 8}
inputs: {x: [4, H, 2]}
nodes:
  r: {op: reshape, shape: "${[4, H, -1]}"}
outputs: r
"""


def test_sizes_follow_a_size_param_into_expressions() -> None:
    from archspec.analyse import input_constraints

    c = input_constraints(RESHAPE, free=True)
    assert [str(r) for r in c.rules] == ["H >= 1", "W >= 1"] and c.separable
    for h in (5, 7, 8):  # what the rule says, the spec does at that size
        assert archspec.check(RESHAPE, params={"H": h}).outputs == {"r": (4, h, 2)}
    # a size param used nowhere else keeps the fast path, with the same answers
    plain = RESHAPE.replace('"${[4, H, -1]}"', "[4, -1]")
    assert [str(r) for r in input_constraints(plain, free=True).rules] == ["H >= 1", "W >= 1"]


def test_sizes_respect_an_assert_on_a_size_param() -> None:
    from archspec.analyse import input_constraints

    text = RESHAPE.replace("inputs:", 'assert: [{that: "${H % 2 == 1}", message: "H must be odd"}]\ninputs:')
    text = text.replace("params: {H: 8}", "params: {H: 9}")
    c = input_constraints(text, free=True)
    assert [str(r) for r in c.rules] == ["H % 2 == 1", "W >= 1"]
    with pytest.raises(ArchSpecError, match="H must be odd"):
        archspec.check(text, params={"H": 6})


def test_check_sizes_prints_the_right_rule(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["check", str(_spec(tmp_path, RESHAPE)), "--sizes"])
    assert res.exit_code == 0, res.output
    assert "    H >= 1\n    W >= 1\n" in res.output and "divisible" not in res.output


# -- warnings: located, collected on the result, printed by check and build -------------------

BATCHED = """\
archspec: 1
name: b
inputs: {x: [1, 3, 32, 32]}
nodes:
  conv: {op: conv, out: 8, k: 3}
outputs: conv
"""


def test_a_batch_like_input_shape_is_a_warning() -> None:
    result = archspec.check(BATCHED)
    (w,) = result.warnings
    assert str(w) == ("warning: <string>:3:13: input 'x' [1, 3, 32, 32] looks like it includes the batch: shapes are "
                      "per sample (no batch dim), so this is a 1-channel 3x32x32 volume")
    assert w.fix == "write x: [3, 32, 32] if the leading 1 is the batch size" and w.path == "inputs.x"
    assert result.graph.node("conv").shape == (8, 3, 32, 32)  # what was built: a 3-d conv
    assert result.to_dict()["warnings"][0]["loc"] == "<string>:3:13"


@pytest.mark.parametrize("shape", ["[3, 32, 32]", "[1, 64, 64, 64]", "[1, 4, 4, 4]", "[2, 3, 32, 32]", "[1, 784]"])
def test_shapes_that_are_per_sample_are_not_warned_about(shape: str) -> None:
    assert archspec.check(BATCHED.replace("[1, 3, 32, 32]", shape)).warnings == []


ZERO_INIT = """\
archspec: 1
name: z
init: {zero_init_residual: true}
inputs: {x: [8, 8, 8]}
nodes:
  conv: {op: conv, out: 8, k: 3}
  bn: {op: bn}
  add: {op: add, in: [x, bn]}
outputs: add
"""


def test_zero_init_residual_that_finds_nothing_to_zero_is_a_warning() -> None:
    text = ZERO_INIT
    (w,) = archspec.check(text).warnings
    assert str(w) == ("warning: <string>:3:28: init.zero_init_residual is true, but no residual add has a norm as its "
                      "input 0, so nothing is zeroed")
    assert w.fix == "list the branch's last norm first in the add (in: [bn2, input]), or drop zero_init_residual"
    # the norm first: it is found, and zeroed
    fixed = text.replace("[x, bn]", "[bn, x]")
    assert archspec.check(fixed).warnings == []
    assert torch.count_nonzero(archspec.compile(fixed).get_submodule("bn").weight) == 0


def test_init_options_that_change_nothing_are_warnings() -> None:
    text = ZERO_INIT.replace("init: {zero_init_residual: true}", "init: {mode: fan_in, zero_linear_bias: true}") \
        .replace("[x, bn]", "[bn, x]")
    mode, bias = archspec.check(text).warnings
    assert str(mode) == ("warning: <string>:3:14: init.mode is fan_in, but init.scheme is default: only kaiming_normal "
                         "draws from the fan, so mode changes nothing")
    assert mode.fix == "add scheme: kaiming_normal to init, or drop mode"
    assert str(bias) == ("warning: <string>:3:40: init.zero_linear_bias is true, but the graph has no linear layer, so "
                         "nothing is zeroed")
    assert bias.fix == "drop zero_linear_bias"
    # with the scheme, and a linear layer to zero, neither is said
    fixed = text.replace("init: {mode: fan_in,", "init: {scheme: kaiming_normal, mode: fan_in,") \
        .replace("outputs: add", "  pool: {op: adaptive_avgpool, size: 1}\n  flat: {op: flatten}\n"
                                 "  fc: {op: linear, out: 4}\noutputs: fc")
    assert archspec.check(fixed).warnings == []
    assert not archspec.compile(fixed).get_submodule("fc").bias.any()


UNKNOWN = """\
archspec: 1
name: u
inputs: {{x: [3, 8, 8]}}
nodes:
  n: {{op: {op}}}
outputs: n
"""


@pytest.mark.parametrize("op,message", [
    ("batchnorm", "unknown op 'batchnorm' (did you mean 'bn'? it is archspec's op for torch.nn.BatchNorm1d/2d/3d)"),
    ("BatchNorm", "unknown op 'BatchNorm' (did you mean 'bn'? it is archspec's op for torch.nn.BatchNorm1d/2d/3d)"),
    ("BatchNorm2d", "unknown op 'BatchNorm2d' (did you mean 'bn'? it is archspec's op for torch.nn.BatchNorm2d)"),
    ("Conv2d", "unknown op 'Conv2d' (did you mean 'conv'? it is archspec's op for torch.nn.Conv2d)"),
    ("ConvTranspose2d", "unknown op 'ConvTranspose2d' (did you mean 'conv_transpose'? it is archspec's op for "
                        "torch.nn.ConvTranspose2d)"),
    ("Linear", "unknown op 'Linear' (did you mean 'linear'? it is archspec's op for torch.nn.Linear)"),
    ("ReLU", "unknown op 'ReLU' (did you mean 'relu'?)"),
    ("MaxPool2d", "unknown op 'MaxPool2d' (did you mean 'maxpool'? it is archspec's op for "
                  "torch.nn.functional.max_pool2d)"),
    ("LeakyReLU", "unknown op 'LeakyReLU' (did you mean 'leaky_relu'?)"),
    ("cat", "unknown op 'cat' (did you mean 'concat'? it is archspec's op for torch.cat)"),
    ("interpolate", "unknown op 'interpolate' (did you mean 'upsample'? it is archspec's op for "
                    "torch.nn.functional.interpolate)"),
    ("max_pool", "unknown op 'max_pool' (did you mean 'maxpool'?)"),
    ("Conv", "unknown op 'Conv' (did you mean 'conv'?)"),
    ("MaxPool", "unknown op 'MaxPool' (did you mean 'maxpool'?)"),
    ("cnv", "unknown op 'cnv' (did you mean 'conv'?)"),
    ("xyzzy", "unknown op 'xyzzy'"),
])
def test_an_unknown_op_that_is_a_pytorch_name_suggests_the_archspec_op(op: str, message: str) -> None:
    from archspec.errors import UnknownOpError

    with pytest.raises(UnknownOpError) as e:
        archspec.check(UNKNOWN.format(op=op))
    assert e.value.message == message


def test_the_aliases_come_from_each_ops_torch_names() -> None:
    from archspec.ops import REGISTRY
    from archspec.spec import _alias

    for name in REGISTRY.names():
        for qual in REGISTRY.get(name).torch_names:
            found = _alias(qual.rsplit(".", 1)[-1])
            assert found is not None and (found[0] == name or found[0] in REGISTRY.names()), qual
    assert _alias("BatchNorm2d") == ("bn", ["torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d"])


def test_a_pytorch_name_under_defaults_suggests_the_op() -> None:
    text = UNKNOWN.format(op="relu").replace("nodes:", "defaults: {BatchNorm2d: {eps: 0.1}}\nnodes:")
    with pytest.raises(ArchSpecError, match=r"unknown field 'BatchNorm2d' \(did you mean 'bn'\? it is archspec's op "
                                            r"for torch.nn.BatchNorm2d\)"):
        archspec.check(text)


WHEN = """\
archspec: 1
name: w
params: {aux: false}
inputs: {x: [3, 8, 8]}
nodes:
  conv: {op: conv, out: 4, k: 3}
  aux_head: {op: conv, out: 2, k: 1, when: $aux}
  head: {op: conv, in: conv, out: 2, k: 1}
  dead: {op: relu, in: conv}
outputs: head
"""


def test_nodes_turned_off_by_when_are_not_reported_unused() -> None:
    result = archspec.check(WHEN)
    assert result.unused == ["dead"]
    (w,) = result.warnings
    assert str(w) == "warning: <string>:9:3: dead reaches no output (computed, then unused)"
    assert archspec.check(WHEN, params={"aux": True}).unused == ["aux_head", "dead"]


def test_check_and_build_print_located_warnings(tmp_path: Path) -> None:
    spec = _spec(tmp_path, BATCHED)
    res = CliRunner().invoke(main, ["check", str(spec)])
    assert res.exit_code == 0
    assert f"warning: {spec}:3:13: input 'x' [1, 3, 32, 32] looks like it includes the batch" in res.stderr
    assert "  fix: write x: [3, 32, 32] if the leading 1 is the batch size" in res.stderr
    assert "warning" not in res.stdout
    res = CliRunner().invoke(main, ["check", str(spec), "--json"])
    assert json.loads(res.stdout)["warnings"][0]["message"].startswith("input 'x' [1, 3, 32, 32] looks like")
    res = CliRunner().invoke(main, ["build", str(spec), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert f"warning: {spec}:3:13: input 'x' [1, 3, 32, 32]" in res.stderr
    res = CliRunner().invoke(main, ["check", str(spec), str(_spec(tmp_path, WHEN, "w.yaml"))])
    assert res.exit_code == 0
    assert f"warning: {tmp_path / 'w.yaml'}:9:3: dead reaches no output (computed, then unused)" in res.stderr
