"""Outputs are written safely: temp file + rename, never through a symlink, never over the
input spec, existing files kept unless --force, nothing half-written on error or Ctrl-C.

The library calls (``archspec.io``) first, then every command that writes: ``build``
(its output folder), ``render`` and ``export``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import archspec.io as aio
from archspec.cli import main
from archspec.errors import OutputError

SPEC = """\
archspec: 1
name: tiny
inputs: {x: [3, 8, 8]}
nodes:
  conv: {op: conv, out: 4, k: 3}
  relu: {op: relu}
outputs: [relu]
"""
BROKEN = SPEC.replace("out: 4", "out: 4, k: 3")  # a duplicate key


def _tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder``: file bytes, or 'link -> target' for symlinks."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = f"link -> {os.readlink(p)}"
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


# -- archspec.io ------------------------------------------------------------------------

def test_write_creates_file_with_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    assert aio.write_text(target, "hello\n") == target
    assert target.read_text() == "hello\n"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]  # no temp file left


def test_existing_file_is_kept_unless_force(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(OutputError, match=r"'.*out.txt' exists") as e:
        aio.write_text(target, "new\n")
    assert e.value.fix == "pass --force to overwrite it"
    assert target.read_text() == "old\n"
    aio.write_text(target, "new\n", force=True)
    assert target.read_text() == "new\n"


def test_never_writes_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)
    for force in (False, True):
        with pytest.raises(OutputError, match=r"refusing to write '.*out.txt': it is a symlink"):
            aio.write_text(link, "pwned\n", force=force)
    assert victim.read_text() == "precious\n"
    assert link.is_symlink()


def test_never_writes_through_a_symlinked_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "out").symlink_to(real, target_is_directory=True)
    with pytest.raises(OutputError, match=r"refusing to write '.*out/x.txt': '.*out' is a symlink"):
        aio.write_text(tmp_path / "out" / "x.txt", "x\n")
    assert list(real.iterdir()) == []


def test_never_writes_over_the_input(tmp_path: Path) -> None:
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    with pytest.raises(OutputError, match=r"refusing to write '.*net.yaml': it is an input file"):
        aio.write_text(spec, "x", force=True, protect=[spec])
    hard = tmp_path / "hard.yaml"  # a hard link is the same file under another name
    os.link(spec, hard)
    with pytest.raises(OutputError, match=r"it is an input file"):
        aio.write_text(hard, "x", force=True, protect=[spec])
    assert spec.read_text() == SPEC


def test_never_replaces_a_folder(tmp_path: Path) -> None:
    (tmp_path / "out.txt").mkdir()
    with pytest.raises(OutputError, match=r"refusing to write '.*out.txt': it is not a regular file"):
        aio.write_text(tmp_path / "out.txt", "x", force=True)


@pytest.mark.parametrize("where", ["fsync", "replace"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_interrupted_write_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       where: str, exc: type[BaseException]) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")

    def boom(*a: object) -> None:
        raise exc()

    monkeypatch.setattr(aio.os, where, boom)
    expected = OutputError if exc is OSError else exc  # an OSError is reported as one OutputError
    with pytest.raises(expected, match=r"^cannot write '.*out.txt': " if exc is OSError else None):
        aio.write_text(target, "new, and long enough to be half-written\n" * 1000, force=True)
    monkeypatch.undo()
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_check_target_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new" / "out.txt"
    assert aio.check_target(target) == target
    assert not (tmp_path / "new").exists()


# -- archspec build -----------------------------------------------------------------------

def _build(*args: str) -> object:
    return CliRunner().invoke(main, ["build", *args])


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(SPEC)
    return p


def test_build_refuses_a_planted_symlink(tmp_path: Path, spec: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny.json").symlink_to(victim)
    before = _tree(out)
    for extra in ([], ["--force"]):
        r = _build(str(spec), "-o", str(out), *extra)
        assert r.exit_code == 2, r.output
        assert f"OutputError: refusing to write '{out / 'tiny.json'}': it is a symlink" in r.stderr
    assert _tree(out) == before
    assert victim.read_text() == "precious\n"


def test_build_keeps_existing_outputs_unless_force(tmp_path: Path, spec: Path) -> None:
    out = tmp_path / "out"
    r = _build(str(spec), "-o", str(out))
    assert r.exit_code == 0, r.output
    report = json.loads((out / "tiny.json").read_text())
    assert report["outputs"] == {"relu": [4, 8, 8]}
    (out / "tiny.json").write_text("edited by hand\n")
    r = _build(str(spec), "-o", str(out))
    assert r.exit_code == 2
    assert f"OutputError: '{out / 'tiny.json'}' exists" in r.stderr
    assert "fix: pass --force to overwrite it" in r.stderr
    assert (out / "tiny.json").read_text() == "edited by hand\n"
    r = _build(str(spec), "-o", str(out), "--force")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "tiny.json").read_text()) == report


def test_build_spec_error_leaves_output_folder_unchanged(tmp_path: Path) -> None:
    bad = tmp_path / "tiny.yaml"
    bad.write_text(BROKEN)
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny.json").write_text("{}\n")
    before = _tree(out)
    r = _build(str(bad), "-o", str(out), "--force")
    assert r.exit_code == 2
    assert "SpecSyntaxError" in r.stderr and "duplicate key 'k' (first defined on line 5)" in r.stderr
    assert _tree(out) == before


def test_build_never_writes_over_its_spec(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.json"  # a spec whose name is the report's
    spec.write_text(SPEC)
    r = _build(str(spec), "-o", str(tmp_path), "--force")
    assert r.exit_code == 2
    assert f"OutputError: refusing to write '{spec}': it is an input file" in r.stderr
    assert spec.read_text() == SPEC


def test_build_refuses_before_writing_anything(tmp_path: Path, spec: Path) -> None:
    """One refused target (the .svg exists) means no target is written, not even the .json."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny.svg").write_text("<svg/>\n")
    before = _tree(out)
    r = _build(str(spec), "-o", str(out), "--render")
    assert r.exit_code == 2
    assert f"OutputError: '{out / 'tiny.svg'}' exists" in r.stderr
    assert _tree(out) == before


def test_build_interrupted_leaves_nothing(tmp_path: Path, spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"

    def ctrl_c(*a: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(aio.os, "fsync", ctrl_c)
    r = _build(str(spec), "-o", str(out))
    assert r.exit_code == 130
    assert "interrupted" in r.stderr
    assert not out.exists() or _tree(out) == {}


# -- archspec render / export ---------------------------------------------------------------

@pytest.mark.parametrize("cmd", [["render", "--format", "dot"], ["export", "--to", "python"]])
def test_render_and_export_refuse_symlinks_and_keep_files(tmp_path: Path, spec: Path, cmd: list[str]) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)
    r = CliRunner().invoke(main, [cmd[0], str(spec), *cmd[1:], "-o", str(link), "--force"])
    assert r.exit_code == 2
    assert f"OutputError: refusing to write '{link}': it is a symlink" in r.stderr
    assert victim.read_text() == "precious\n"

    existing = tmp_path / "existing.txt"
    existing.write_text("keep me\n")
    r = CliRunner().invoke(main, [cmd[0], str(spec), *cmd[1:], "-o", str(existing)])
    assert r.exit_code == 2
    assert f"OutputError: '{existing}' exists" in r.stderr
    assert existing.read_text() == "keep me\n"
    r = CliRunner().invoke(main, [cmd[0], str(spec), *cmd[1:], "-o", str(existing), "--force"])
    assert r.exit_code == 0, r.output
    assert existing.read_text() != "keep me\n"


def test_unwritable_folder_is_an_output_error(tmp_path: Path, spec: Path) -> None:
    (tmp_path / "afile").write_text("x\n")
    with pytest.raises(OutputError, match=r"^cannot write '.*afile/sub/out.txt': Not a directory$") as e:
        aio.write_text(tmp_path / "afile" / "sub" / "out.txt", "x")
    assert e.value.fix == "pick an output folder that can be created and written"
    r = _build(str(spec), "-o", str(tmp_path / "afile" / "sub"))
    assert r.exit_code == 2
    assert f"OutputError: cannot write '{tmp_path / 'afile' / 'sub' / 'tiny.json'}'" in r.stderr
