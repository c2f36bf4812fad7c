"""The malformed-spec corpus through the CLI: every bad spec fails the way its golden says.

For each case in ``tests/malformed/cases`` (goldens in ``tests/malformed/expected.json``,
made by ``tests/malformed/make_corpus.py``), ``archspec check CASE`` must

- exit with 2 and print exactly one error, whose headline is the golden one
  (class, file:line:col, message, spec path), and never a traceback;
- write nothing: the folder it runs in and the corpus folder are unchanged, and the
  specs that try to run ``touch pwned`` leave no ``pwned`` file;
- finish under a CPU-time and address-space cap set with ``resource`` in the child,
  so a regression (an alias bomb walked, a billion-node repeat built) fails instead of
  hanging or swapping CI.

Each case runs in its own process. To keep 300+ cases fast, one driver process imports
archspec once and forks a child per case that runs the real CLI entry point
(``archspec.cli.main``) with the case's argv, limits and working folder; a sample of
cases, and the ``build`` cases, also run as plain ``python -m archspec.cli`` subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from archspec.errors import terminal_safe

HERE = Path(__file__).resolve().parent
CASES = HERE / "malformed" / "cases"
EXPECTED: dict[str, dict[str, Any]] = json.loads((HERE / "malformed" / "expected.json").read_text())

CPU_SECONDS = 20  # a case takes well under a second; this only stops a runaway
MEMORY_BYTES = 3 << 30  # address space; archspec's check needs ~100 MB resident
WALL_SECONDS = 120
HEADLINE = re.compile(r"^[A-Z][A-Za-z]*Error: ", re.M)

# Forks one child per case: the child sets its limits and folder and runs the CLI's main.
DRIVER = textwrap.dedent("""
    import json, os, resource, sys, time
    from archspec.cli import main
    import archspec.analyse, archspec.api, archspec.spec
    archspec.spec.models()  # build the pydantic models once, before forking
    cpu, mem, wall = (int(a) for a in sys.argv[1:4])
    results = {}
    for case in json.load(sys.stdin):
        out, err = case["cwd"] + "/.stdout", case["cwd"] + "/.stderr"
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
                os.chdir(case["cwd"])
                fo, fe = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600), os.open(err, os.O_WRONLY | os.O_CREAT, 0o600)
                os.dup2(fo, 1)
                os.dup2(fe, 2)
                main(case["argv"], prog_name="archspec")
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        start = time.monotonic()
        deadline = start + wall
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                status = -1
                break
            time.sleep(0.002)
        code = os.waitstatus_to_exitcode(status) if status != -1 else "timeout"
        with open(out) as f1, open(err) as f2:
            results[case["name"]] = {"code": code, "stdout": f1.read(), "stderr": f2.read(),
                                     "seconds": time.monotonic() - start}
        os.unlink(out)
        os.unlink(err)
    json.dump(results, sys.stdout)
""")


def _limit_child() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def _argv(name: str) -> list[str]:
    return ["check", str(CASES / f"{name}.yaml"), *EXPECTED[name].get("args", [])]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


def _workdir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    (d / "keep.txt").write_text("an existing file\n")
    return d


@pytest.fixture(scope="module")
def corpus_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every case through the CLI, in two driver processes; corpus folder checked unchanged."""
    root = tmp_path_factory.mktemp("malformed")
    before = _snapshot(CASES)
    jobs = [{"name": n, "argv": _argv(n), "cwd": str(_workdir(root, n))} for n in EXPECTED]
    halves = [jobs[0::2], jobs[1::2]]

    def drive(batch: list[dict[str, Any]]) -> dict[str, Any]:
        proc = subprocess.run([sys.executable, "-c", DRIVER, str(CPU_SECONDS), str(MEMORY_BYTES), str(WALL_SECONDS)],
                              input=json.dumps(batch), capture_output=True, text=True, timeout=900, check=True)
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    with ThreadPoolExecutor(2) as pool:
        results: dict[str, dict[str, Any]] = {}
        for part in pool.map(drive, halves):
            results.update(part)
    assert _snapshot(CASES) == before, "running the corpus changed tests/malformed/cases"
    for job in jobs:
        results[job["name"]]["cwd"] = job["cwd"]
    return results


def _headline(name: str) -> str:
    exp = EXPECTED[name]
    file = str(CASES / exp.get("file", f"{name}.yaml"))
    where = f"{file}:{exp['line']}:{exp['col']}: " if exp["line"] is not None else ""
    at = f" (at {exp['path']})" if exp["path"] else ""
    # What a terminal shows: control characters in the message come out escaped.
    return terminal_safe(f"{exp['error']}: {where}{exp['message']}{at}")


def test_corpus_is_large_and_generated() -> None:
    assert len(EXPECTED) >= 150
    on_disk = {p.stem for p in CASES.glob("*.yaml") if not p.name.startswith("_")}
    assert on_disk == set(EXPECTED), "run tests/malformed/make_corpus.py --goldens and review the diff"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_malformed_case(name: str, corpus_runs: dict[str, dict[str, Any]]) -> None:
    run = corpus_runs[name]
    assert run["code"] == 2, f"exit {run['code']}\n{run['stderr'][-3000:]}"
    assert "Traceback" not in run["stderr"]
    assert run["stdout"] == ""
    headlines = HEADLINE.findall(run["stderr"])
    assert run["stderr"].splitlines()[0] == _headline(name)
    # One error, or one that says how many more follow, and then shows each of them.
    more = re.search(r" \(and (\d+) more problems?\)", run["stderr"].splitlines()[0])
    assert len(headlines) == 1 + (int(more.group(1)) if more else 0), run["stderr"][-3000:]
    cwd = Path(run["cwd"])
    assert sorted(p.name for p in cwd.iterdir()) == ["keep.txt"], "the CLI wrote into its working folder"
    assert (cwd / "keep.txt").read_text() == "an existing file\n"


# A sample through the real console entry (`python -m archspec.cli`), one per category.
SAMPLE = sorted({n.split("_")[0]: n for n in sorted(EXPECTED)}.values())


@pytest.mark.parametrize("name", SAMPLE)
def test_sample_through_python_m(name: str, tmp_path: Path) -> None:
    cwd = _workdir(tmp_path, "work")
    proc = subprocess.run([sys.executable, "-m", "archspec.cli", *_argv(name)], cwd=cwd, capture_output=True,
                          text=True, timeout=WALL_SECONDS, preexec_fn=_limit_child)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == _headline(name)
    assert sorted(p.name for p in cwd.iterdir()) == ["keep.txt"]


BUILD_CASES = ["tag_python_apply_system", "alias_billion_laughs", "deep_flow_seq_30k", "limit_repeat_billion",
               "limit_channels_billion", "shape_add_ratio", "name_inject_input"]


def test_build_leaves_output_folder_unchanged(tmp_path: Path) -> None:
    """`archspec build -o OUT` on a bad spec: exit 2, OUT exactly as it was."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "t.json").write_text("{\"old\": true}\n")
    (out / "t.svg").write_text("<svg/>\n")
    before = _snapshot(out)

    def build(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "archspec.cli", "build", str(CASES / f"{name}.yaml"),
                               "-o", str(out), "--force", *EXPECTED[name].get("args", [])],
                              cwd=tmp_path, capture_output=True, text=True, timeout=WALL_SECONDS,
                              preexec_fn=_limit_child)

    with ThreadPoolExecutor(2) as pool:
        for name, proc in zip(BUILD_CASES, pool.map(build, BUILD_CASES), strict=True):
            assert proc.returncode == 2, (name, proc.stderr)
            assert "Traceback" not in proc.stderr
            assert proc.stderr.splitlines()[0] == _headline(name)
    assert _snapshot(out) == before
    assert not list(tmp_path.rglob("pwned"))


# -- includes through symlinks: made at test time --------------------------------------

def _spec_using(rel: str) -> str:
    return f"archspec: 1\nname: t\nuse: [{rel}]\ninputs: {{x: [3, 8, 8]}}\nnodes:\n  r: {{op: relu}}\noutputs: [r]\n"


BLOCKS = "archspec: 1\nblocks:\n  b:\n    nodes:\n      r: {op: relu}\n"


@pytest.mark.parametrize("layout", ["file_link_out", "dir_link_out", "file_link_in", "link_to_abs"])
def test_include_through_symlink_refused(tmp_path: Path, layout: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "blocks.yaml").write_text(BLOCKS)
    project = tmp_path / "project"
    project.mkdir()
    if layout == "file_link_out":
        (project / "blocks.yaml").symlink_to(outside / "blocks.yaml")
        rel = "blocks.yaml"
    elif layout == "dir_link_out":
        (project / "lib").symlink_to(outside, target_is_directory=True)
        rel = "lib/blocks.yaml"
    elif layout == "file_link_in":  # even a link that stays inside is refused: simpler to audit
        (project / "real.yaml").write_text(BLOCKS)
        (project / "blocks.yaml").symlink_to("real.yaml")
        rel = "blocks.yaml"
    else:
        (project / "blocks.yaml").symlink_to("/etc/hostname")
        rel = "blocks.yaml"
    spec = project / "net.yaml"
    spec.write_text(_spec_using(rel))
    proc = subprocess.run([sys.executable, "-m", "archspec.cli", "check", str(spec)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=WALL_SECONDS, preexec_fn=_limit_child)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == (
        f"IncludeError: {spec}:3:7: use: '{rel}' goes through a symlink")
    assert "Traceback" not in proc.stderr


# -- crafted names run no code ----------------------------------------------------------

def _crafted(sentinel: Path) -> dict[str, str]:
    """Specs whose names try to get Python into torch.fx's generated forward()."""
    code = f"open({str(sentinel)!r}, 'w')"
    q = json.dumps  # a YAML double-quoted scalar (JSON strings are valid YAML)
    base = "archspec: 1\nname: t\ninputs: {x: [3, 8, 8]}\nnodes:\n%s\noutputs: [%s]\n"
    block = ("archspec: 1\nname: t\ninputs: {x: [3, 8, 8]}\nblocks:\n  b:\n    nodes:\n"
             "      c: {op: conv, out: 3, k: 1}\nnodes:\n  l: {block: b, repeat: 2, names: %s}\noutputs: [l]\n")
    return {
        "input": f"archspec: 1\nname: t\ninputs: {{{q('x=' + code)}: [3, 8, 8]}}\n"
                 f"nodes:\n  r: {{op: relu}}\noutputs: [r]\n",
        "input_call": f"archspec: 1\nname: t\ninputs: {{{q('x); ' + code + ' #')}: [3, 8, 8]}}\n"
                      f"nodes:\n  r: {{op: relu}}\noutputs: [r]\n",
        "node": base % (f"  {q('r = ' + code)}: {{op: relu}}", "x"),
        "module": base % (f"  {q('c; ' + code)}: {{op: conv, out: 3, k: 1}}", "x"),
        "group": base % (f"  {q('g; ' + code)}:\n    nodes: {{c: {{op: conv, out: 3, k: 1}}}}", "x"),
        "block_name": ("archspec: 1\nname: t\ninputs: {x: [3, 8, 8]}\nblocks:\n"
                       f"  {q('b; ' + code)}:\n    nodes: {{c: {{op: conv, out: 3, k: 1}}}}\n"
                       f"nodes:\n  l: {{block: {q('b; ' + code)}}}\noutputs: [l]\n"),
        "repeat_names": block % q("x{i}); " + code + " #"),
        "repeat_keyword": block % "'{\"for\" if i == 0 else \"x\"}'",
        "projection_name": ("archspec: 1\nname: t\ninputs: {x: [3, 8, 8]}\n"
                            f"defaults: {{projection: {{name: {q('d; ' + code)}}}}}\n"
                            "nodes:\n  c: {op: conv, out: 4, k: 1}\n  s: {op: add, in: [c, x]}\noutputs: [s]\n"),
        "expression": base % (f"  c: {{op: conv, out: {q('${' + code + '}')}, k: 1}}", "c"),
        "self_node": base % ("  self: {op: conv, out: 3, k: 1}\n  b: {op: conv, out: 3, k: 1}", "b"),
    }


@pytest.mark.parametrize("case", sorted(_crafted(Path("/x"))))
def test_crafted_names_run_no_code(tmp_path: Path, case: str) -> None:
    import archspec

    sentinel = tmp_path / "SENTINEL"
    text = _crafted(sentinel)[case]
    with pytest.raises(archspec.ArchSpecError) as e:
        archspec.compile(text)
    assert type(e.value).__name__ in ("SpecValidationError", "ExpressionError", "GraphError"), e.value
    assert not sentinel.exists(), f"{case}: the crafted name ran code"


def test_crafted_spec_name_is_harmless(tmp_path: Path) -> None:
    """The spec's name becomes the GraphModule's class name: only its letters and digits survive."""
    import torch

    import archspec

    sentinel = tmp_path / "SENTINEL"
    name = json.dumps(f"t'); open({str(sentinel)!r}, 'w') #")
    model = archspec.compile(f"archspec: 1\nname: {name}\ninputs: {{x: [3, 8, 8]}}\n"
                             "nodes:\n  r: {op: relu}\noutputs: [r]\n")
    model(torch.zeros(1, 3, 8, 8))
    assert type(model).__name__.isidentifier()
    assert not sentinel.exists()


def test_hand_built_graph_with_crafted_names_is_refused(tmp_path: Path) -> None:
    """A Graph built by hand skips expand's name checks; check() refuses it before fx sees it."""
    import archspec

    sentinel = tmp_path / "SENTINEL"
    g = archspec.load("archspec: 1\nname: t\ninputs: {x: [3, 8, 8]}\nnodes:\n  r: {op: relu}\noutputs: [r]\n")
    for bad, message in [(f"x=open({str(sentinel)!r}, 'w')", r"input name .* is not a dotted identifier"),
                         ("self", r"input name 'self' cannot be an argument of the generated forward\(\)"),
                         ("torch", r"input name 'torch' cannot be an argument of the generated forward\(\)"),
                         ("for", r"input name 'for' cannot be an argument of the generated forward\(\)")]:
        crafted = g.replace(inputs={bad: (3, 8, 8)}, nodes=tuple(n.replace(inputs=(bad,)) for n in g.nodes))
        with pytest.raises(archspec.GraphError, match=message):
            archspec.compile(crafted)
    node = g.nodes[0]
    for module, message in [("r.for", r"module path 'r.for' is not a dotted identifier"),
                            ('r.x"); open("p', r"module path .* is not a dotted identifier")]:
        crafted = g.replace(nodes=(node.replace(op="identity", module=module),))
        with pytest.raises(archspec.GraphError, match=message):
            archspec.compile(crafted)
    assert not sentinel.exists()


def test_crafted_names_through_the_cli_build(tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    spec = tmp_path / "net.yaml"
    spec.write_text(_crafted(sentinel)["input_call"])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "archspec.cli", "build", str(spec), "-o", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=WALL_SECONDS, preexec_fn=_limit_child)
    assert proc.returncode == 2
    assert "is not an identifier" in proc.stderr.splitlines()[0]
    assert not sentinel.exists()
    assert not out.exists()


# -- messages that the corpus cannot reach from the CLI ---------------------------------

@pytest.mark.parametrize("name, fix", [
    ("yaml_tab_indent", "indent with spaces: YAML does not allow tabs"),
    ("yaml_bare_expr_in_flow", 'quote expressions inside {...}: write out: "${2 * width}", not out: ${2 * width}'),
    ("yaml_list_arrow_edge", "write an edge from several nodes as 'a, b -> c'; '[a, b] -> c' is not valid YAML"),
])
def test_yaml_syntax_errors_suggest_the_fix(name: str, fix: str) -> None:
    import archspec

    with pytest.raises(archspec.SpecSyntaxError) as e:
        archspec.check(CASES / f"{name}.yaml")
    assert e.value.fix == fix


def test_nesting_too_deep_to_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --max-depth raised past Python's stack, a RecursionError is still one LimitError."""
    from archspec import LimitError
    from archspec.loader import _Builder, load_text

    def deep(*a: object) -> None:
        raise RecursionError

    monkeypatch.setattr(_Builder, "build", deep)
    with pytest.raises(LimitError, match=r"^<string>:1:1: YAML nesting is too deep to walk$") as e:
        load_text("a: 1\n")
    assert e.value.fix == "lower --max-depth"


def test_two_nodes_with_one_name_name_both_lines() -> None:
    """A guard behind expand's own checks: two IR nodes with one name (both lines named)."""
    from archspec import GraphError, Loc
    from archspec.ir import Node
    from archspec.loader import load_text
    from archspec.passes.expand import _toposort

    doc = load_text("a: 1\n", "net.yaml")
    nodes = [Node("g.a", "relu", {}, ("x",), loc=Loc("net.yaml", 3, 5)),
             Node("g.a", "relu", {}, ("x",), loc=Loc("net.yaml", 7, 5), path="nodes.h")]
    with pytest.raises(GraphError, match=r"^net.yaml:7:5: two nodes expand to the name 'g.a' \(the other at line 3\)"
                                         r" \(at nodes.h\)$"):
        _toposort(nodes, {"x"}, doc)


def test_keyword_in_a_hand_built_node_name_is_refused() -> None:
    import archspec

    g = archspec.load("archspec: 1\nname: t\ninputs: {x: [3, 8, 8]}\nnodes:\n  r: {op: relu}\noutputs: [r]\n")
    crafted = g.replace(nodes=(g.nodes[0].replace(name="r.for"),), outputs=("r.for",))
    with pytest.raises(archspec.GraphError, match=r"node name 'r.for' is not a dotted identifier"):
        archspec.compile(crafted)


def test_endless_file_is_not_read() -> None:
    """stat() says 0 bytes for /dev/zero: a device (or FIFO) is refused before a byte is read."""
    proc = subprocess.run([sys.executable, "-m", "archspec.cli", "check", "/dev/zero", "--max-bytes", "1000"],
                          capture_output=True, text=True, timeout=WALL_SECONDS, preexec_fn=_limit_child)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == ("SpecSyntaxError: /dev/zero:1:1: cannot read spec '/dev/zero': "
                                           "it is not a regular file")


def test_a_growing_file_is_read_no_further_than_the_limit(tmp_path: Path) -> None:
    """A regular file that is larger when read than stat() said stops at --max-bytes."""
    from archspec import LimitError
    from archspec.loader import Limits, load_file

    spec = tmp_path / "net.yaml"
    spec.write_text("# x\n" * 10)
    real_stat = Path.stat

    def small(self: Path, **kw: object) -> os.stat_result:
        st = real_stat(self, **kw)  # type: ignore[arg-type]
        return os.stat_result((st.st_mode, *st[1:6], 5, *st[7:]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "stat", small)
        with pytest.raises(LimitError, match="spec is more than the limit of 20 bytes"):
            load_file(spec, Limits().replace(max_bytes=20))


def test_invalid_utf8_column_counts_characters(tmp_path: Path) -> None:
    from archspec import SpecSyntaxError
    from archspec.loader import load_file

    spec = tmp_path / "net.yaml"
    spec.write_bytes("archspec: 1\nname: café\xe9".encode()[:-2] + b"\xc3\xa9 \xff\n")
    with pytest.raises(SpecSyntaxError, match=r"net.yaml:2:13: spec is not valid UTF-8$"):
        load_file(spec)


def test_names_that_meet_after_emission_stay_apart() -> None:
    """Node `a_b` and scope member `a.b` both want the fx name `a_b`: fx renames the second,
    modules and state_dict keys stay apart, and every fx node still maps to its own spec node."""
    import torch

    import archspec

    model = archspec.compile("""\
archspec: 1
name: t
inputs: {x: [3, 8, 8]}
nodes:
  a_b: {op: conv, out: 3, k: 1, in: x}
  a:
    in: x
    nodes:
      b: {op: conv, out: 3, k: 1}
  s_downsample: {op: relu, in: x}
  s: {op: add, in: [a_b, a, s_downsample]}
  t: {op: conv, out: 4, k: 1}
  u: {op: add, in: [t, s]}
outputs: [u]
""")
    names = [n.name for n in model.graph.nodes]
    assert len(names) == len(set(names))
    owners = [n.meta["archspec"]["node"] for n in model.graph.nodes if "archspec" in n.meta]
    assert len(owners) == len(set(owners)) and {"a_b", "a.b"} <= set(owners)
    keys = set(model.state_dict())
    assert {"a_b.weight", "a.b.weight", "u_downsample.0.weight"} <= keys
    x = torch.randn(2, 3, 8, 8)
    a_b, a = model.get_submodule("a_b"), model.get_submodule("a.b")
    s = a_b(x) + a(x) + torch.relu(x)
    model.eval()
    conv, bn = model.get_submodule("u_downsample.0"), model.get_submodule("u_downsample.1")
    torch.testing.assert_close(model(x), model.get_submodule("t")(s) + bn(conv(s)))


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_include_of_something_not_a_file(tmp_path: Path, kind: str) -> None:
    """A FIFO would block the reader forever; a folder has nothing to read."""
    import archspec

    if kind == "fifo":
        os.mkfifo(tmp_path / "blocks.yaml")
    else:
        (tmp_path / "blocks.yaml").mkdir()
    spec = tmp_path / "net.yaml"
    spec.write_text(_spec_using("blocks.yaml"))
    with pytest.raises(archspec.IncludeError, match=r"net.yaml:3:7: use: 'blocks.yaml' is not a regular file$"):
        archspec.check(spec)


def test_emit_refuses_a_hand_built_graph_with_a_crafted_name(tmp_path):
    import archspec
    from archspec.emit import emit
    from archspec.ir import Graph, Node

    sentinel = tmp_path / "pwned"
    crafted = f"x):\n    open({str(sentinel)!r}, 'w')\n    return (x"
    g = Graph(name="g", inputs={crafted: (3,)}, nodes=(Node("r", "relu", {}, (crafted,), shape=(3,)),), outputs=("r",))
    with pytest.raises(archspec.GraphError, match=r"(?s)input name 'x\):.*' is not a dotted identifier"):
        emit(g)
    assert not sentinel.exists()
