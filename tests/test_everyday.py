"""Everyday use: every problem at once, many files and stdin, help that fits a screen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import archspec
from archspec.cli import main
from archspec.errors import ShapeError, SpecValidationError, UnknownOpError

MULTI = """\
archspec: 1
name: multi
inputs: {x: [3, 8, 8]}
nodes:
  a: {op: conv, out: 4, k: 3, bogus: 1}
  b: {op: cnv, out: 4}
  c: {op: relu, inplace: 3}
  d: {op: conv, out: x, k: 3}
outputs: [d]
"""


def test_every_validation_problem_is_on_the_exception() -> None:
    with pytest.raises(UnknownOpError, match=r"unknown op 'cnv' \(did you mean 'conv'\?\) \(and 3 more problems\)") \
            as e:
        archspec.check(MULTI)
    errs = e.value.errors
    assert [(type(x).__name__, x.loc.line if x.loc else None, x.path) for x in errs] == [
        ("UnknownOpError", 6, "nodes.b"),
        ("SpecValidationError", 5, "nodes.a.bogus"),
        ("SpecValidationError", 7, "nodes.c.inplace"),
        ("SpecValidationError", 8, "nodes.d.out"),
    ]
    assert errs[1].message == "unknown field 'bogus'" and errs[2].message == "unknown field 'inplace'"
    assert errs[3].message == "nodes.d.out: Input should be a valid integer"


def test_every_problem_is_printed_with_its_caret(tmp_path: Path) -> None:
    spec = tmp_path / "multi.yaml"
    spec.write_text(MULTI)
    res = CliRunner().invoke(main, ["check", str(spec)])
    assert res.exit_code == 2
    out = res.output
    for line, text in ((6, "  b: {op: cnv, out: 4}"), (5, "  a: {op: conv, out: 4, k: 3, bogus: 1}"),
                       (7, "  c: {op: relu, inplace: 3}"), (8, "  d: {op: conv, out: x, k: 3}")):
        assert f"{line:>5} | {text}\n" in out
    assert out.count("^") == 4
    assert out.index("unknown op 'cnv'") < out.index("unknown field 'bogus'") < out.index("unknown field 'inplace'")
    res = CliRunner().invoke(main, ["check", str(spec), "--json"])
    report = json.loads(res.output)
    assert report["ok"] is False and report["error"] == "UnknownOpError"
    assert [(x["line"], x["col"], x["path"]) for x in report["errors"]] == [
        (6, 11, "nodes.b"), (5, 31, "nodes.a.bogus"), (7, 17, "nodes.c.inplace"), (8, 22, "nodes.d.out")]


def test_every_shape_error_of_independent_branches_is_reported() -> None:
    text = """\
archspec: 1
name: two
inputs: {x: [3, 8, 8], y: [5, 8, 8]}
nodes:
  a: {op: conv, in: x, out: 4, k: 3, groups: 2}
  b: {op: concat, in: [x, y], dim: 3}
outputs: [a, b]
"""
    with pytest.raises(ShapeError) as e:
        archspec.check(text)
    assert [x.path for x in e.value.errors] == ["nodes.a", "nodes.b"]
    assert all(isinstance(x, ShapeError) for x in e.value.errors)


def test_one_problem_is_a_list_of_one() -> None:
    with pytest.raises(SpecValidationError) as e:
        archspec.check(MULTI.replace("  b: {op: cnv, out: 4}\n", "").replace(", bogus: 1", "")
                       .replace("  c: {op: relu, inplace: 3}\n", ""))
    assert e.value.errors == [e.value] and "more problem" not in e.value.message
    assert e.value.to_dict()["errors"] == [{k: v for k, v in e.value.to_dict().items() if k != "errors"}]


# -- many files, stdin, block libraries, pre-commit ------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
GOOD = "archspec: 1\nname: ok\ninputs: {x: [3, 8, 8]}\nnodes:\n  r: {op: relu}\noutputs: [r]\n"


def test_check_takes_many_files_and_exits_2_if_any_fails(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(MULTI)
    (tmp_path / "c.yaml").write_text(GOOD.replace("name: ok", "name: also_ok"))
    files = [str(tmp_path / n) for n in ("a.yaml", "b.yaml", "c.yaml")]
    res = CliRunner().invoke(main, ["check", *files])
    assert res.exit_code == 2
    assert f"{files[0]}: ok — ok, 1 nodes" in res.output and f"{files[2]}: ok — also_ok, 1 nodes" in res.output
    assert f"UnknownOpError: {files[1]}:6:11: unknown op 'cnv'" in res.output
    res = CliRunner().invoke(main, ["check", *files, "--json"])
    report = json.loads(res.output)
    assert report["ok"] is False and [(f["file"], f["ok"]) for f in report["files"]] == \
        [(files[0], True), (files[1], False), (files[2], True)]
    assert len(report["files"][1]["errors"]) == 4
    res = CliRunner().invoke(main, ["check", files[0], files[2]])
    assert res.exit_code == 0, res.output


def test_check_reads_stdin() -> None:
    res = CliRunner().invoke(main, ["check", "-"], input=GOOD)
    assert res.exit_code == 0 and res.output.startswith("<stdin>: ok — ok, 1 nodes"), res.output
    res = CliRunner().invoke(main, ["check", "-"], input="archspec: 1\nname: x\n")
    assert res.exit_code == 2 and "SpecValidationError: <stdin>:" in res.output
    res = CliRunner().invoke(main, ["check", "-", "--max-bytes", "10"], input=GOOD)
    assert res.exit_code == 2 and "LimitError: stdin holds more than the limit of 10 bytes" in res.output
    res = CliRunner().invoke(main, ["check", "-"], input=b"name: \xff\n")
    assert res.exit_code == 2 and "SpecSyntaxError: stdin is not valid UTF-8" in res.output


def test_check_recognises_a_block_library(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["check", str(ROOT / "archspec/library/resnet.yaml"), "--json"])
    assert json.loads(res.output) == {"ok": True, "kind": "block-library", "blocks": ["basic", "bottleneck"]}
    bad = tmp_path / "blocks.yaml"
    bad.write_text("archspec: 1\nblocks:\n  b:\n    nodes:\n      r: {op: rleu}\n")
    res = CliRunner().invoke(main, ["check", str(bad)])
    assert res.exit_code == 2 and "unknown op 'rleu' (did you mean 'relu' or 'relu6' or 'prelu'?)" in res.output, res.output


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["check", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2
    assert res.output.startswith(f"SpecFileError: file not found: '{tmp_path / 'nope.yaml'}'")
    with pytest.raises(archspec.SpecFileError, match="^file not found: 'nope.yaml'$"):
        archspec.check("nope.yaml")


def test_the_pre_commit_hook_as_pre_commit_runs_it(tmp_path: Path) -> None:
    """pre-commit runs `entry` with every matching file as arguments: the repository's own
    specs and block libraries pass with the docs' `files:`/`exclude:` patterns."""
    import re
    import shlex
    import subprocess
    import sys

    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"archspec-check", "archspec-check-system"}
    editor = (ROOT / "docs/editor.md").read_text()
    files_re = re.search(r"files: (\S+)", editor).group(1)  # type: ignore[union-attr]
    exclude_re = re.search(r"exclude: (\S+)", editor).group(1)  # type: ignore[union-attr]
    # This repository keeps its block libraries in archspec/library/: the docs' `blocks/`.
    (tmp_path / "specs").mkdir()
    (tmp_path / "blocks").mkdir()
    for p in (ROOT / "specs").glob("*.yaml"):
        (tmp_path / "specs" / p.name).write_bytes(p.read_bytes())
    for p in (ROOT / "archspec/library").glob("*.yaml"):
        (tmp_path / "blocks" / p.name).write_bytes(p.read_bytes())
    candidates = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.yaml"))
    chosen = [f for f in candidates if re.search(files_re, f) and not re.search(exclude_re, f)]
    assert "specs/zoo.yaml" not in chosen and "blocks/unet.yaml" in chosen and "specs/unet.yaml" in chosen
    for hook in hooks.values():
        entry = shlex.split(hook["entry"])
        assert entry == ["archspec", "check"]
        exe = str(Path(sys.executable).parent / "archspec")
        r = subprocess.run([exe, *entry[1:], *chosen], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.count(": ok — ") == len(chosen)


# -- help, limits, render direction, build --input, broken pipes ---------------------------------


def test_help_puts_the_common_options_first_and_limits_in_one() -> None:
    res = CliRunner().invoke(main, ["build", "--help"])
    assert res.exit_code == 0
    assert res.output.count("--max-") == 1 and "--limit NAME=N" in res.output  # once, in --limit's help
    assert len(res.output.splitlines()) < 30
    res = CliRunner().invoke(main, ["limits"])
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0].split()[:2] == ["max_bytes", "1,048,576"] and len(lines) == 14
    assert json.loads(CliRunner().invoke(main, ["limits", "--json"]).output)["limits"][3] == \
        {"name": "max_nodes", "flag": "--max-nodes", "default": 20000, "what": "most graph nodes after expansion"}


@pytest.mark.parametrize("args", [["--limit", "max_nodes=10"], ["--limit", "max-nodes=10"], ["--max-nodes", "10"]])
def test_a_limit_by_name_or_by_flag(args: list[str]) -> None:
    res = CliRunner().invoke(main, ["check", str(ROOT / "specs/resnet18.yaml"), *args])
    assert res.exit_code == 2 and "LimitError" in res.output and "more than 10 nodes" in res.output


@pytest.mark.parametrize("arg,message", [
    ("max_nodez=10", "'max_nodez=10' is not NAME=N for a limit (did you mean 'max_nodes'"),
    ("max_nodes", "'max_nodes' is not NAME=N for a limit"),
    ("max_nodes=ten", "'max_nodes=ten': the value is not an integer"),
    ("max_nodes=0", "'max_nodes=0': a limit is at least 1"),
])
def test_a_bad_limit_is_a_usage_error(arg: str, message: str) -> None:
    res = CliRunner().invoke(main, ["check", str(ROOT / "specs/resnet18.yaml"), "--limit", arg])
    assert res.exit_code == 2 and "Invalid value for --limit" in res.output and message in res.output


def test_ops_descriptions_read_without_rst_quotes() -> None:
    res = CliRunner().invoke(main, ["ops"], terminal_width=400)
    assert res.exit_code == 0 and "``" not in res.output
    assert "the highway gate; inputs [x, h, t]." in res.output  # brackets are text, not rich markup
    raw = json.loads(CliRunner().invoke(main, ["ops", "--json"]).output)
    assert any("``" in op["doc"] for op in raw["ops"])  # the JSON keeps the docstring's markup


def test_render_left_to_right() -> None:
    res = CliRunner().invoke(main, ["render", str(ROOT / "specs/resnet18.yaml"), "--direction", "LR", "-o", "-",
                                    "--format", "dot"])
    assert res.exit_code == 0 and "rankdir=LR" in res.output
    res = CliRunner().invoke(main, ["render", str(ROOT / "specs/resnet18.yaml"), "--direction", "lr", "-o", "-",
                                    "--format", "mermaid"])
    assert res.exit_code == 0 and "\nflowchart LR\n" in res.output
    res = CliRunner().invoke(main, ["render", str(ROOT / "specs/resnet18.yaml"), "-o", "-", "--format", "dot"])
    assert "rankdir=TB" in res.output
    with pytest.raises(archspec.ArchSpecError, match="unknown direction 'up'"):
        archspec.render(ROOT / "specs/resnet18.yaml", "x.dot", direction="up")


def test_build_takes_input(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["build", str(ROOT / "specs/unet.yaml"), "--input", "3x64x64", "-o",
                                    str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["inputs"] == {"x": [3, 64, 64]} and report["outputs"] == {"head": [2, 64, 64]}
    res = CliRunner().invoke(main, ["build", str(ROOT / "specs/unet.yaml"), "--input", "3x65x64", "-o",
                                    str(tmp_path / "b")])
    assert res.exit_code == 2 and "node 'up.3.cat' (concat)" in res.output
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("args", [["ops", "--json"], ["limits"], ["ops"]])
def test_a_closed_pipe_ends_quietly(args: list[str]) -> None:
    """`archspec ops | head`: no 'internal error', no traceback (rich's own tables end the
    same way, with its exit status 1)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "archspec.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first write
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == (1 if args == ["ops"] else 141) and err == ""


# -- rebuilding ----------------------------------------------------------------------------------


def test_a_rebuild_replaces_what_build_wrote_and_nothing_else(tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(GOOD)
    out = tmp_path / "out"
    args = ["build", str(spec), "-o", str(out), "--render", "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in out.iterdir()) == [".archspec-written.json", "ok.dot", "ok.json", "ok.svg"]
    spec.write_text(GOOD.replace("[3, 8, 8]", "[3, 16, 16]"))
    again = CliRunner().invoke(main, args)  # no --force: these are build's own files
    assert again.exit_code == 0, again.output
    assert json.loads((out / "ok.json").read_text())["inputs"] == {"x": [3, 16, 16]}
    (out / "ok.svg").write_text("edited by hand")
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and json.loads(refused.output)["message"] == f"'{out / 'ok.svg'}' exists"
    assert (out / "ok.svg").read_text() == "edited by hand"
    other = tmp_path / "other"
    other.mkdir()
    (other / "ok.json").write_text("someone else's")
    res = CliRunner().invoke(main, ["build", str(spec), "-o", str(other)])
    assert res.exit_code == 2 and "exists" in res.output and (other / "ok.json").read_text() == "someone else's"
    (other / ".archspec-written.json").write_text('{"files": {"ok.json": "0000"}}')  # a list that lies
    res = CliRunner().invoke(main, ["build", str(spec), "-o", str(other)])
    assert res.exit_code == 2 and (other / "ok.json").read_text() == "someone else's"


# -- specs as data (OmegaConf / Hydra) ----------------------------------------------------------


def test_a_spec_inside_an_omegaconf_config() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "docs/examples/hydra.yaml")
    data = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(data, dict) and data["nodes"]["conv1"]["out"] == "${2 * width}"
    result = archspec.check(data)
    assert result.graph.node("conv1").shape == (16, 32, 32) and result.outputs == {"conv2": (8, 32, 32)}


def test_a_spec_mapping_is_validated_like_a_file() -> None:
    with pytest.raises(UnknownOpError, match=r"^<mapping>:\d+:\d+: unknown op 'cnv'") as e:
        archspec.check({"archspec": 1, "name": "n", "inputs": {"x": [3, 8, 8]},
                        "nodes": {"c": {"op": "cnv"}}, "outputs": ["c"]})
    assert "op: cnv" in e.value.render()
    with pytest.raises(archspec.SpecSyntaxError, match="the spec mapping cannot be written as YAML"):
        archspec.check({"archspec": 1, "name": object()})


# -- notebooks ------------------------------------------------------------------------------------


def test_summary_memory_follows_torchinfo() -> None:
    torchinfo = pytest.importorskip("torchinfo")
    import torch
    from helpers import torchvision_model

    s = archspec.summary(ROOT / "specs/resnet18.yaml")
    m = s.memory(batch_size=4)
    stats = torchinfo.summary(torchvision_model("resnet18"), input_size=(4, 3, 224, 224), verbose=0,
                              device=torch.device("cpu"))
    assert m.activation_bytes == stats.total_output_bytes
    assert m.param_bytes == stats.total_param_bytes
    # torchinfo measures the input with sys.getsizeof: the tensor bytes plus the object's header.
    assert 0 <= stats.total_input - m.input_bytes < 1024
    assert m.total_bytes == m.input_bytes + m.activation_bytes + m.param_bytes
    with pytest.raises(archspec.ArchSpecError, match="memory needs a batch size and element size of at least 1"):
        s.memory(batch_size=0)


def test_summary_and_check_results_are_short_in_a_notebook() -> None:
    s = archspec.summary(ROOT / "specs/resnet18.yaml")
    assert repr(s) == ("<Summary resnet18: 11,689,512 params, 1.814 GMAC, 69 nodes; .rows, .collapse(depth), "
                       ".memory(batch_size)>")
    html = s._repr_html_()
    assert html.startswith("<table><caption>resnet18: 11,689,512 params") and html.count("<tr>") == 12
    assert "<td>layer2</td><td>basic x2</td><td>128x28x28</td><td>525,568</td>" in html
    r = archspec.check(ROOT / "specs/resnet18.yaml")
    assert repr(r) == "<CheckResult resnet18: x 3x224x224 -> fc 1000; 69 nodes, 3 projections>"


def test_without_dot_a_notebook_shows_mermaid(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil as sh

    r = archspec.check(ROOT / "specs/resnet18_cifar.yaml")
    real = sh.which
    monkeypatch.setattr(sh, "which", lambda name: None if name == "dot" else real(name))
    md = r._repr_markdown_()
    assert md is not None and md.startswith("```mermaid\n%% resnet18_cifar") and "flowchart TB" in md
    assert md.endswith("for SVG.*") and "graphviz's `dot` is not installed; install graphviz" in md
    assert r._repr_svg_() is None
    model = archspec.compile(ROOT / "specs/resnet18_cifar.yaml")
    assert model._repr_markdown_() == md  # type: ignore[operator]
    monkeypatch.setattr(sh, "which", lambda name: "/usr/bin/dot" if name == "dot" else None)
    assert r._repr_markdown_() is None  # with dot, the SVG is the drawing
