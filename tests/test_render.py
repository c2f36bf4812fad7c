"""The renderer: golden DOT for small specs, structure of the zoo's drawings, the U layout,
failing specs, graphviz missing, the node cap, speed on a ResNet-152-sized graph, and that
drawing never imports torch.

Golden files live in tests/golden/render/: ``<name>.yaml`` and the ``<name>.dot`` (and one
``.mmd``) it must draw. After an intended change, rewrite them with
``ARCHSPEC_UPDATE_GOLDEN=1 pytest tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from bounded import bounded
from click.testing import CliRunner

import archspec
from archspec.api import analyse, graph_of
from archspec.cli import main
from archspec.errors import ArchSpecError, LimitError, OutputError
from archspec.loader import load_text

R = importlib.import_module("archspec.render")
ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "render"
SPECS = sorted(p for p in (ROOT / "specs").glob("*.yaml") if re.search(r"^nodes:", p.read_text(), re.M))
HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="graphviz's dot is not installed")

EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[(.*)\];$', re.M)


def golden_graph(name: str) -> archspec.Graph:
    """A golden spec, loaded under its repository-relative name so tooltips are stable."""
    text = (GOLDEN / f"{name}.yaml").read_text()
    return analyse(load_text(text, f"tests/golden/render/{name}.yaml"))


def edges(dot: str) -> list[tuple[str, str, str]]:
    """(tail, head, attrs) of every edge, with dir=back edges turned the right way round."""
    out = []
    for a, b, attrs in EDGE.findall(dot):
        out.append((b, a, attrs) if "dir=back" in attrs else (a, b, attrs))
    return out


def attr(attrs: str, key: str) -> str | None:
    m = re.search(rf'(?:^|, ){key}=("(?:[^"\\]|\\.)*"|[^,]+)', attrs)
    return m.group(1).strip('"') if m else None


# -- golden files ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["residual", "unet", "dense", "highway", "broken"])
def test_golden_dot(name: str) -> None:
    dot = R.to_dot(golden_graph(name))
    path = GOLDEN / f"{name}.dot"
    if os.environ.get("ARCHSPEC_UPDATE_GOLDEN"):
        path.write_text(dot)
    assert dot == path.read_text(), f"{path} differs; rerun with ARCHSPEC_UPDATE_GOLDEN=1 and review"


def test_golden_mermaid() -> None:
    text = R.to_mermaid(golden_graph("residual"))
    path = GOLDEN / "residual.mmd"
    if os.environ.get("ARCHSPEC_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
    assert text.startswith("%% tiny_residual") and "flowchart TB" in text
    assert '-.->|"skip 5 ops · 16×8×8"|' in text  # skips dashed, with span and shape
    assert ":::auto" in text


def test_deterministic_across_hash_seeds() -> None:
    code = ("import importlib; R = importlib.import_module('archspec.render'); from archspec.api import graph_of; "
            "print(R.to_dot(graph_of('specs/unet.yaml', {'depth': 2})), end='')")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1
    assert R.to_dot(graph_of(ROOT / "specs" / "unet.yaml")) == R.to_dot(graph_of(ROOT / "specs" / "unet.yaml"))


# -- edge roles, projections, clusters ----------------------------------------------------

def test_residual_roles_and_projection() -> None:
    g = golden_graph("residual")
    d = R.drawing(g)
    roles = {(e.src, e.dst): e for e in d.edges}
    # add: [bn2, input]: bn2 is the main path; the block input is the skip, 5 ops long.
    assert roles[("stage.0.conv2", "stage.0.add")].role == "main"
    skip = roles[("stage.0.downsample.0", "stage.0.add")]
    assert (skip.role, skip.span, skip.shape) == ("residual", 5, (16, 8, 8))
    assert roles[("stem", "stage.0.downsample.0")].role == "residual"  # into the projection: still the skip
    proj = d.nodes["stage.0.downsample.0"]
    assert proj.kind == "proj" and proj.head == "proj 1x1/2, 8→16 (auto)"
    assert "conv_bn projection" in proj.tooltip and "stage.0.downsample.1 (bn)" in proj.tooltip
    assert proj.params == 8 * 16 + 2 * 16


def test_unet_concat_skip_is_the_first_input() -> None:
    """U-Net writes concat: [skip, up]: the skip is input 0, and still drawn as the skip."""
    d = R.drawing(golden_graph("unet"))
    skips = sorted((e.src, e.dst, e.span) for e in d.edges if e.role == "concat")
    assert skips == [("down.0.conv", "up.1.cat", 11), ("down.1.conv", "up.0.cat", 4)]
    assert d.u_layout


SE_STAGES = """archspec: 1
name: se_stages
inputs: {x: [8, 16, 16]}
blocks:
  se:
    params: [size]
    nodes:
      c: {op: conv, out: 8, k: 3}
      p: {op: adaptive_avgpool, size: 1}
      u: {op: upsample, size: "${[size, size]}"}
      m: {op: mul, in: [c, u]}
nodes:
  s1: {block: se, in: x, repeat: 2, args: {size: 16}}
  pool: {op: maxpool, k: 2}
  s2: {block: se, repeat: 2, args: {size: 8}}
outputs: [s2]
"""


@pytest.mark.parametrize("expand", [(), "all"])
def test_repeated_se_gates_each_get_their_own_rows(expand: object, tmp_path: Path) -> None:
    """Each SE gate (pool to 1x1, upsample back, mul) is a small U of its own: one
    resolution was one rank across the whole graph, so the 1x1 nodes of both stages were
    tied to one rank and dot failed ("trouble in init_rank", "lost ... edge")."""
    d = R.drawing(graph_of(SE_STAGES), expand=expand)
    assert d.u_layout
    ranks = re.findall(r"^  \{rank=same; (.*)\}$", R.dot_source(d), re.M)
    rows = [set(re.findall(r'"([^"]+)"', r)) for r in ranks]
    instances = ["s1.0", "s1.1", "s2.0", "s2.1"] if expand else ["s1.0", "s2.0"]
    assert rows == [{f"{i}.c", f"{i}.u", f"{i}.m"} for i in instances]  # never a row across two gates
    if HAVE_DOT:
        written = archspec.render(SE_STAGES, tmp_path / "se.svg", expand=expand, dot_beside=True)
        assert [p.name for p in written] == ["se.dot", "se.svg"]
        assert written[1].read_text().startswith("<?xml") and "s2.0.m" in written[0].read_text()


def test_highway_gate_is_a_branch() -> None:
    d = R.drawing(golden_graph("highway"))
    into = {(e.src, e.dst): e.role for e in d.edges if e.dst == "layers.0.carry"}
    assert into == {("x", "layers.0.carry"): "residual", ("layers.0.transform", "layers.0.carry"): "main",
                    ("layers.0.gate", "layers.0.carry"): "branch"}


def test_fold_and_no_fold() -> None:
    g = golden_graph("residual")
    folded = R.drawing(g, expand="all")
    assert folded.nodes["stage.0.conv1"].extra == ["+ bn + relu"]
    assert "stage.0.bn1" not in folded.nodes
    plain = R.drawing(g, expand="all", fold=False)
    assert {"stage.0.bn1", "stage.0.relu1"} <= set(plain.nodes)
    assert len(plain.nodes) > len(folded.nodes)


def test_disabled_nodes_are_passed_through() -> None:
    d = R.drawing(golden_graph("unet"))
    assert "down.0.pool" not in d.nodes  # when: false
    assert ("x", "down.0.conv") in {(e.src, e.dst) for e in d.edges}


# -- collapsing ------------------------------------------------------------------------------

def test_repeat_collapses_to_first_and_rest() -> None:
    g = golden_graph("residual")
    d = R.drawing(g)
    assert "stage.0.conv1" in d.nodes and "stage.1.conv1" in d.nodes and "stage.2.conv1" not in d.nodes
    label = d.clusters["stage"].label
    assert label.startswith("stage · basic ×3 · 13k params")
    assert d.clusters["stage.1"].label.startswith("stage.1 … stage.2 · ×2")
    # The drawn edge out of the cluster leaves the last drawn instance, with the real shape.
    assert ("stage.1.add", "pool") in {(e.src, e.dst) for e in d.edges}
    expanded = R.drawing(g, expand=["stage"])
    assert "stage.2.conv1" in expanded.nodes and "stage.2" in expanded.clusters
    assert R.to_dot(g, expand="all") == R.dot_source(expanded)


def test_alike_instances_draw_once() -> None:
    d = R.drawing(golden_graph("highway"))
    assert "layers.1.carry" not in d.nodes
    assert "the first of 2 alike is drawn" in d.clusters["layers"].label


def test_collapsing_never_hides_a_boundary_skip() -> None:
    """U-Net's encoder instances feed the decoder: neither repeat may collapse."""
    d = R.drawing(golden_graph("unet"))
    assert {"down.0", "down.1", "down.2", "up.0", "up.1"} <= set(d.clusters)
    assert not any("alike" in c.label or "stands for" in c.label for c in d.clusters.values())


def test_dense_repeat_keeps_its_skips() -> None:
    g = golden_graph("dense")
    d = R.drawing(g)
    dense = [e for e in d.edges if e.dense]
    assert len(dense) == 1 and dense[0].count == 1 + 2 + 3  # the concats before layers 1, 2, 3
    assert any(e.role == "concat" and (e.src, e.dst) == ("stem", "block.cat") for e in d.edges)
    full = R.drawing(g, expand="all")
    # Expanded, each concat's skips arrive as one edge from the concat before it (the
    # running concat), which carries every earlier tensor: x, then x and layer 0, ...
    bus = sorted((e.src, e.dst, e.carried) for e in full.edges if e.role == "concat")
    assert bus == [("block.cat1", "block.cat2", 2), ("block.cat2", "block.cat3", 3), ("block.cat3", "block.cat", 4),
                   ("stem", "block.cat1", 1)]
    assert 'label="skip 3 ops\\n12×8×8\\ncarries 2"' in R.dot_source(full)


def test_expand_unknown_name() -> None:
    with pytest.raises(ArchSpecError, match=r"--expand 'stag' is not a repeat of 'tiny_residual' "
                                            r"\(did you mean 'stage'\?\)") as e:
        R.drawing(golden_graph("residual"), expand=["stag"])
    assert e.value.expected == "one of: stage, or all"
    with pytest.raises(ArchSpecError, match="--expand 'x' is not a repeat of 'broken'") as e:
        R.drawing(golden_graph("broken"), expand="x")
    assert e.value.expected == "one of: none (the spec has no repeat), or all"


def test_depth_boxes_scopes() -> None:
    g = golden_graph("residual")
    d = R.drawing(g, depth=0)
    box = d.nodes["scope:stage"]
    assert box.kind == "box" and box.head == "stage" and box.extra == ["basic ×3"]
    assert box.params == sum(n.params for n in R.drawing(g, expand="all").nodes.values() if n.id.startswith("stage."))
    assert ("stem", "scope:stage") in {(e.src, e.dst) for e in d.edges}
    assert not d.clusters
    one = R.drawing(g, depth=1, expand="all")
    assert {"scope:stage.0", "scope:stage.1", "scope:stage.2"} <= set(one.nodes)
    with pytest.raises(ArchSpecError, match="--depth must be 0 or more, got -1"):
        R.drawing(g, depth=-1)


# -- the zoo: structure of every shipped spec's drawing ---------------------------------------

@pytest.fixture(scope="module", params=SPECS, ids=lambda p: p.stem)
def zoo(request: pytest.FixtureRequest) -> tuple[archspec.Graph, str, str]:
    g = graph_of(request.param)
    return g, R.to_dot(g), R.to_dot(g, expand="all")


def test_zoo_every_skip_is_drawn_as_a_skip(zoo: tuple[archspec.Graph, str, str]) -> None:
    g, _, full = zoo
    d = R.drawing(g, expand="all")
    styled = {(a, b) for a, b, attrs in edges(full) if "style=dashed" in attrs
              and attr(attrs, "class") in ("residual", "concat")}
    for e in d.edges:
        if e.role in ("residual", "concat"):
            assert (e.src, e.dst) in styled, f"skip {e.src} -> {e.dst} is not dashed"
            assert e.span is not None or d.nodes[e.dst].kind == "proj"
    # Every merge whose inputs come from different depths has a skip into it.
    for n in g.nodes:
        if n.op in ("add", "concat") and len(set(n.inputs)) > 1 and not n.meta.get("dense"):
            into = [x for x in d.edges if x.dst == d.nodes[n.name].id and x.role in ("residual", "concat")]
            assert into, f"merge {n.name} has no skip drawn"


def test_zoo_every_projection_is_marked(zoo: tuple[archspec.Graph, str, str]) -> None:
    g, _, full = zoo
    groups = {(n.meta["for"], n.meta["slot"]) for n in g.nodes if n.provenance == "auto"}
    marked = re.findall(r'peripheries=2.*?tooltip="([^"]*auto projection[^"]*)"', full)
    assert len(marked) == len(groups)
    assert full.count("(auto)</b>") == len(groups)


def test_zoo_clusters_for_every_repeat(zoo: tuple[archspec.Graph, str, str]) -> None:
    g, dot, _ = zoo
    hidden = _collapsed_outer(g)
    for s in g.scopes:
        if s.kind == "repeat" and not any(s.path.startswith(o + ".") for o in hidden):
            m = re.search(rf'subgraph "cluster_{re.escape(s.path)}" {{\n.*\n\s*label="([^"]*)"', dot)
            assert m is not None, f"no cluster for repeat {s.path}"
            assert f"×{s.count}" in m.group(1)


def _collapsed_outer(g: archspec.Graph) -> list[str]:
    """Repeats inside a collapsed repeat's hidden instances are not drawn."""
    drawn = [x.id for x in R.drawing(g).nodes.values()]
    return [s.path for s in g.scopes if s.kind == "block" and not any(x.startswith(s.path + ".") for x in drawn)]


def test_zoo_tooltips_carry_file_and_line(zoo: tuple[archspec.Graph, str, str]) -> None:
    g, dot, _ = zoo
    first = next(n for n in g.nodes if n.loc is not None and not n.meta.get("disabled"))
    assert re.search(rf'"{re.escape(R.drawing(g).nodes[first.name].id)}" \[.*tooltip="[^"]*'
                     rf'{re.escape(g.file)}:{first.loc.line}:', dot)


OPTIONS = [{}, {"expand": "all"}, {"depth": 0}, {"depth": 1}, {"depth": 2}, {"fold": False}]


@pytest.mark.parametrize("spec", [*SPECS, GOLDEN / "nested.yaml"], ids=lambda p: p.stem)
def test_every_option_draws_every_spec(spec: Path) -> None:
    g = graph_of(spec)
    for opts in OPTIONS:
        d = R.drawing(g, **opts)
        ids = set(d.nodes)
        assert all(e.src in ids and e.dst in ids for e in d.edges), opts
        assert all(c.parent is None or c.parent in d.clusters for c in d.clusters.values()), opts
        assert all(n.cluster is None or n.cluster in d.clusters for n in d.nodes.values()), opts
        assert R.dot_source(d).count("{") == R.dot_source(d).count("}") or "{" in d.title
        assert R.mermaid_source(d).count("subgraph ") == len(d.clusters)
        # Every output is drawn, and reached by an edge.
        assert {f"output:{o}" for o in g.outputs} <= {e.dst for e in d.edges}


def test_nested_repeats() -> None:
    g = graph_of(GOLDEN / "nested.yaml")
    d = R.drawing(g)
    assert {"stages", "stages.0", "stages.0.units", "stages.1", "stages.1.units"} == set(d.clusters)
    assert "the first of 3 alike is drawn" in d.clusters["stages.0.units"].label
    top = next(e for e in d.edges if e.dst == "skip" and e.role == "residual")
    assert top.src == "skip_downsample.0" and top.span == 21
    opened = R.drawing(g, expand=["stages.0.units"])
    assert "stages.0.units.2.add" in opened.nodes and "stages.1.units.2.add" not in opened.nodes


def test_unet_is_drawn_as_a_u() -> None:
    g = graph_of(ROOT / "specs" / "unet.yaml")
    dot = R.to_dot(g)
    ranks = [set(re.findall(r'"([^"]+)";', line)) for line in dot.splitlines() if "{rank=same;" in line]
    d = R.drawing(g)
    skips = [e for e in d.edges if e.role == "concat"]
    assert len(skips) == 4
    for e in skips:  # a rung: both ends of every skip on one rank
        assert any({e.src, e.dst} <= r for r in ranks), f"{e.src} and {e.dst} do not share a rank"
    assert "newrank=true" in dot
    ups = [attrs for a, b, attrs in edges(dot) if b.endswith(".up") and "conv_transpose" not in attrs]
    assert ups and all("dir=back" in a for a in ups)  # the decoder climbs back up
    assert not R.drawing(graph_of(ROOT / "specs" / "resnet18.yaml")).u_layout


# -- failing specs --------------------------------------------------------------------------

def test_failing_spec_is_drawn_with_the_error() -> None:
    g = golden_graph("broken")
    d = R.drawing(g)
    cat = d.nodes["cat"]
    assert cat.error is not None and "input 1 is 32x16x16 but input 0 is 16x32x32" in cat.error
    dot = R.dot_source(d)
    line = next(x for x in dot.splitlines() if x.strip().startswith('"cat" ['))
    assert 'color="#d32f2f"' in line and "input 1 is 32x16x16" in line
    into = [attrs for a, b, attrs in edges(dot) if b == "cat"]
    assert len(into) == 2 and all('color="#d32f2f"' in a for a in into)
    assert d.nodes["head"].unknown  # downstream: no shape, greyed
    assert "1 error" in d.title


def test_error_in_a_repeat_expands_it() -> None:
    text = (GOLDEN / "residual.yaml").read_text().replace('"${2 if i == 0 else 1}"', '"${2 if i == 2 else 1}"')
    text = text.replace("defaults:\n", "defaults:\n  projection: {kind: none}\n")
    g = analyse(load_text(text, "r.yaml"))
    assert g.errors()
    d = R.drawing(g)
    assert d.nodes["stage.2.add"].error is not None  # the error is in the third instance: still drawn


@needs_dot
def test_cli_failing_spec_writes_then_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "broken.svg"
    res = CliRunner().invoke(main, ["render", str(GOLDEN / "broken.yaml"), "-o", str(out)])
    assert res.exit_code == 2
    assert f"wrote {out} (the shape error drawn in red)" in res.output
    assert "ShapeError:" in res.output and "nodes.cat" in res.output
    assert out.read_text().lstrip().startswith("<?xml")


# -- graphviz missing, formats, writing -------------------------------------------------------

def test_no_dot_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    spec = GOLDEN / "residual.yaml"
    for fmt in ("svg", "png", "pdf"):
        with pytest.raises(OutputError, match=f"cannot write {fmt.upper()}: graphviz's 'dot' program is not on "
                                              "PATH") as e:
            archspec.render(spec, tmp_path / f"x.{fmt}")
        assert e.value.fix is not None and "apt-get install graphviz" in e.value.fix
    # Up front: before the spec is even read.
    with pytest.raises(OutputError, match="not on PATH"):
        archspec.render(tmp_path / "missing.yaml", tmp_path / "x.svg")
    assert archspec.render(spec, tmp_path / "x.dot") == [tmp_path / "x.dot"]
    assert archspec.render(spec, tmp_path / "x.mmd") == [tmp_path / "x.mmd"]
    assert (tmp_path / "x.dot").read_text().startswith('digraph "tiny_residual"')
    assert R.repr_svg(golden_graph("residual")) is None
    assert archspec.check(spec)._repr_svg_() is None

    runner = CliRunner()
    res = runner.invoke(main, ["render", str(spec), "-o", str(tmp_path / "y.dot")])
    assert res.exit_code == 0, res.output
    assert "note: graphviz's 'dot' is not on PATH, so no image was made" in res.output
    assert "apt-get install graphviz" in res.output
    res = runner.invoke(main, ["render", str(spec), "-o", str(tmp_path / "y.png")])
    assert res.exit_code == 2
    assert "OutputError: cannot write PNG: graphviz's 'dot' program is not on PATH" in res.output
    assert not (tmp_path / "y.png").exists()


def test_formats_and_their_errors(tmp_path: Path) -> None:
    assert R.resolve_format(None, None) == "svg"
    assert R.resolve_format("a.mmd", None) == "mermaid"
    assert R.resolve_format("a.gv", "dot") == "dot"
    with pytest.raises(OutputError, match="--format png does not match the output file 'a.svg'"):
        R.resolve_format("a.svg", "png")
    with pytest.raises(OutputError, match=r"cannot tell the format of 'a.txt' from its suffix '.txt'"):
        R.resolve_format("a.txt", None)
    with pytest.raises(OutputError, match="unknown render format 'sgv' \\(did you mean 'svg'\\?\\)"):
        R.resolve_format(None, "sgv")
    res = CliRunner().invoke(main, ["render", str(GOLDEN / "residual.yaml"), "-o", "-", "--format", "png"])
    assert res.exit_code == 2 and "-o - writes text, but png is an image format" in res.output
    res = CliRunner().invoke(main, ["render", str(GOLDEN / "residual.yaml"), "-o", "-", "--format", "mermaid"])
    assert res.exit_code == 0 and res.output.startswith("%% tiny_residual")


def test_hostile_names_stay_inside_their_strings() -> None:
    text = (GOLDEN / "broken.yaml").read_text().replace("name: broken", 'name: "a\\"b\\\\c<d>&e\\n}{ %%"')
    g = analyse(load_text(text, 'we"ird\\.yaml'))
    assert g.name == 'a"b\\c<d>&e\n}{ %%'
    dot = R.to_dot(g)
    assert dot.startswith('digraph "a\\"b\\\\c<d>&e\\n}{ %%" {\n')
    mermaid = R.to_mermaid(g)
    # '%' and braces are escaped even in the title comment: no %%{init}%% directive comes from a spec
    assert mermaid.splitlines()[:2] == ['%% a"b\\c<d>&e )( #37;#37; · 5,088 params · x 3×32×32 → ? · 1 error', "flowchart TB"]
    if HAVE_DOT:
        assert b"<svg" in R.run_dot(dot, "svg")


def test_one_line_spec_text(tmp_path: Path) -> None:
    """YAML text on one line, longer than a file name may be, is text, not a path."""
    text = "{archspec: 1, name: n, inputs: {x: [3, 8, 8]}, nodes: {c: {op: conv, in: x, out: 4, k: 3}}, " \
           "outputs: [c]}" + " " * 300
    assert archspec.render(text, tmp_path / "n.dot") == [tmp_path / "n.dot"]
    assert archspec.check(text).outputs == {"c": (4, 8, 8)}


def test_never_writes_over_the_spec(tmp_path: Path) -> None:
    spec = tmp_path / "net.dot"  # a spec whose name is the output's
    spec.write_text((GOLDEN / "residual.yaml").read_text())
    with pytest.raises(OutputError, match="it is an input file"):
        archspec.render(spec, spec, format="dot")
    assert spec.read_text().startswith("# A small ResNet")


@needs_dot
def test_render_api_sources(tmp_path: Path) -> None:
    g = golden_graph("residual")
    written = archspec.render(g, tmp_path / "a.svg", dot_beside=True)
    assert written == [tmp_path / "a.dot", tmp_path / "a.svg"]
    assert "<svg" in (tmp_path / "a.svg").read_text()
    checked = archspec.check(g)
    assert archspec.render(checked, tmp_path / "b.png")[0].read_bytes().startswith(b"\x89PNG")
    fake_module = types.SimpleNamespace(meta={"archspec_graph": g})  # what emit() leaves on a GraphModule
    assert archspec.render(fake_module, tmp_path / "c.pdf")[0].read_bytes().startswith(b"%PDF")
    svg = checked._repr_svg_()
    assert svg is not None and "<svg" in svg and "tiny_residual" in svg
    with pytest.raises(OutputError, match=r"graphviz's dot failed \(exit 1\): .*syntax error"):
        R.run_dot("digraph {", "svg")


def test_compiled_model_shows_its_drawing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = archspec.compile(golden_graph("highway"))
    svg = model._repr_svg_()
    if HAVE_DOT:
        assert svg is not None and "<svg" in svg and "tiny_highway" in svg
    monkeypatch.setenv("PATH", str(tmp_path))
    assert model._repr_svg_() is None  # Jupyter falls back to the text repr


def test_dot_timeout_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*a: object, **k: object) -> None:
        raise subprocess.TimeoutExpired("dot", 1)

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(subprocess, "run", slow)
    with pytest.raises(OutputError, match=f"graphviz's dot took more than {R.DOT_TIMEOUT_S} s") as e:
        R.run_dot("digraph {}", "svg")
    assert e.value.fix == "draw less: drop --expand, or pass --depth 1"


# -- size and speed -----------------------------------------------------------------------------

def big_spec() -> str:
    """ResNet-152's layout (3, 8, 36, 3 bottlenecks: 500+ nodes) as a text spec."""
    return """
archspec: 1
name: big
inputs: {x: [3, 224, 224]}
defaults:
  conv: {bias: false}
blocks:
  bottleneck:
    params: [out, {stride: 1}]
    nodes:
      conv1: {op: conv, out: "${out // 4}", k: 1}
      bn1:   {op: bn}
      relu1: {op: relu}
      conv2: {op: conv, out: "${out // 4}", k: 3, stride: $stride}
      bn2:   {op: bn}
      relu2: {op: relu}
      conv3: {op: conv, out: $out, k: 1}
      bn3:   {op: bn}
      add:   {op: add, in: [bn3, input]}
      relu3: {op: relu}
nodes:
  conv1:   {op: conv, in: x, out: 64, k: 7, stride: 2}
  bn1:     {op: bn}
  relu:    {op: relu}
  maxpool: {op: maxpool, k: 3, stride: 2, padding: 1}
  layer1:  {block: bottleneck, repeat: 3, args: {out: 256}}
  layer2:  {block: bottleneck, repeat: 8, args: {out: 512, stride: "${2 if i == 0 else 1}"}}
  layer3:  {block: bottleneck, repeat: 36, args: {out: 1024, stride: "${2 if i == 0 else 1}"}}
  layer4:  {block: bottleneck, repeat: 3, args: {out: 2048, stride: "${2 if i == 0 else 1}"}}
  avgpool: {op: adaptive_avgpool, size: 1}
  flatten: {op: flatten}
  fc:      {op: linear, out: 1000}
outputs: [fc]
"""


def test_resnet152_sized_graph_renders_fast(tmp_path: Path) -> None:
    doc = load_text(big_spec(), "big.yaml")
    g = archspec.load(doc)
    assert len(g.nodes) > 500
    start = time.perf_counter()
    written = archspec.render(g, tmp_path / "big.svg" if HAVE_DOT else tmp_path / "big.dot")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"collapsed ResNet-152-sized render took {elapsed:.2f} s"
    assert written[0].stat().st_size > 0
    d = R.drawing(g)
    assert len(d.nodes) < 60
    full = R.drawing(g, expand="all", fold=False)
    assert 500 < len(full.nodes) <= R.MAX_RENDER_NODES  # every node of ResNet-152 fits under the cap
    if HAVE_DOT:
        start = time.perf_counter()
        R.run_dot(R.dot_source(full), "svg")
        assert time.perf_counter() - start < 10


def test_thousands_of_scopes_stay_fast() -> None:
    """Repeats inside a repeat: 3,000 scopes. Collapsing is linear in the graph, not quadratic."""
    text = """
archspec: 1
name: many
inputs: {x: [4]}
blocks:
  unit:
    nodes: {fc: {op: linear, out: 4}, act: {op: relu}}
  stage:
    nodes: {units: {block: unit, repeat: 3}}
nodes:
  stages: {block: stage, repeat: 600}
outputs: [stages]
"""
    g = analyse(load_text(text, "many.yaml"))
    # A bound on its cost, not a timing: a quadratic collapse runs out of CPU seconds.
    d = bounded(lambda: R.drawing(g), cpu=5)
    assert set(d.nodes) == {"x", "stages.0.units.0.fc", "output:stages.599.units.2.act"}
    assert d.clusters["stages"].label.startswith("stages · stage ×600")
    with pytest.raises(LimitError, match="has 3602 nodes, more than the limit of 600"):
        R.drawing(g, expand="all", fold=False)


def test_node_cap() -> None:
    g = golden_graph("residual")
    n = len(R.drawing(g).nodes)
    with pytest.raises(LimitError, match=f"the drawing of 'tiny_residual' has {n} nodes, more than the limit of 5") \
            as e:
        R.drawing(g, max_render_nodes=5)
    assert e.value.fix == ("collapse repeats (drop --expand), pass --depth 1, or raise the limit with "
                           "--max-render-nodes")
    res = CliRunner().invoke(main, ["render", str(GOLDEN / "residual.yaml"), "--format", "dot", "-o", "-",
                                    "--max-render-nodes", "5"])
    assert res.exit_code == 2 and "more than the limit of 5" in res.output


# -- CLI and torch ----------------------------------------------------------------------------

def test_cli_render_options(tmp_path: Path) -> None:
    out = tmp_path / "r.dot"
    res = CliRunner().invoke(main, ["render", str(GOLDEN / "residual.yaml"), "-o", str(out), "--expand", "stage",
                                    "--depth", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert '"ok": true' in res.output and str(out) in res.output
    assert 'subgraph "cluster_stage.2"' in out.read_text()
    res = CliRunner().invoke(main, ["render", str(ROOT / "specs" / "unet.yaml"), "-p", "depth=2", "-o", "-",
                                    "--format", "dot"])
    assert res.exit_code == 0 and '"up.1.cat"' in res.output and '"up.2.cat"' not in res.output


def test_render_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from archspec.cli import main\n"
        f"sys.argv = ['archspec', 'render', {str(ROOT / 'specs' / 'unet.yaml')!r}, '-o', {str(tmp_path / 'u.dot')!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'render imported torch'\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("ok")
    assert (tmp_path / "u.dot").read_text().startswith('digraph "unet"')


def test_archspec_render_is_the_module() -> None:
    """``import archspec.render`` gives the package (its steps in modules of their own);
    ``archspec.render(...)`` still draws any source."""
    import archspec.render as mod

    assert isinstance(archspec.render, types.ModuleType) and archspec.render is sys.modules["archspec.render"] is mod
    assert mod.to_dot is importlib.import_module("archspec.render.dot").to_dot
    assert {"roles", "collapse", "drawing", "dot", "mermaid", "output"} <= {
        m.rpartition(".")[2] for m in sys.modules if m.startswith("archspec.render.")}
    assert callable(archspec.render)


def test_size_inputs_draw_as_size_edges() -> None:
    """crop and upsample read input 1 only for its size: a dotted size edge, never the main
    path; the cropped skip stays the concat skip of a U-Net that crops, as the original does."""
    text = """archspec: 1
name: cropped
inputs: {x: [1, 64, 64]}
nodes:
  enc:  {op: conv, in: x, out: 4, k: 3, padding: 0}
  down: {op: maxpool, k: 2}
  mid:  {op: conv, out: 8, k: 3, padding: 0}
  up:   {op: conv_transpose, out: 4, k: 2, stride: 2}
  cr:   {op: crop, in: [enc, up]}
  cat:  {op: concat, in: [cr, up]}
  sz:   {op: upsample, in: [cat, x], mode: bilinear}
outputs: [sz]
"""
    g = analyse(load_text(text, "cropped.yaml"))
    d = R.drawing(g)
    roles = {(e.src, e.dst): e.role for e in d.edges}
    assert roles[("up", "cr")] == "size" and roles[("x", "sz")] == "size"
    assert roles[("enc", "cr")] == "main" and roles[("cr", "cat")] == "concat" and roles[("up", "cat")] == "main"
    dot = R.to_dot(g)
    size = [a for u, v, a in edges(dot) if (u, v) == ("up", "cr")]
    assert len(size) == 1 and attr(size[0], "style") == "dotted" and attr(size[0], "class") == "size"
    assert attr(size[0], "label") == "size 4×58×58" and attr(size[0], "constraint") == "false"
    assert "size only (crop, upsample to a node&#x27;s size)" in dot
    assert "size only" not in R.to_dot(golden_graph("unet"))
    assert '-.->|"size 4×58×58"|' in R.to_mermaid(g)
