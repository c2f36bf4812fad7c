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
