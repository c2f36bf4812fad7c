"""Outputs go where the user said, only there (the hostile-name and input-overwrite cases).

A spec's ``name:`` names output files but never decides their folder; no output replaces
a file the command read (the spec, its ``use:`` files, the weights), with or without
``--force``; and whether a file exists outside the output folder is never revealed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from archspec.cli import main
from archspec.io import MAX_STEM_BYTES, safe_stem

SPEC = """\
archspec: 1
name: {name}
inputs: {{x: [3, 8, 8]}}
nodes:
  conv: {{op: conv, out: 4, k: 3}}
  relu: {{op: relu}}
outputs: [relu]
"""


def _spec(folder: Path, name: str) -> Path:
    p = folder / "net.yaml"
    p.write_text(SPEC.format(name=name))
    return p


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


HOSTILE = ["../../x", "/some/dir/settings", "..", ".", "a/b", "a\\\\b", "C:evil", "\\x1b]0;title\\x07", "~/x",
           "'" + "n" * 300 + "'", "' '", "'\\0x'"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_spec_name_never_leaves_the_output_folder(tmp_path: Path, name: str) -> None:
    (tmp_path / "work").mkdir()
    spec = _spec(tmp_path / "work", f'"{name}"' if not name.startswith("'") else name)
    before = _files(tmp_path)
    res = CliRunner().invoke(main, ["build", str(spec), "-o", str(tmp_path / "work" / "out"), "--json"])
    assert res.exit_code == 0, res.output
    new = _files(tmp_path) - before - {"work/out/.archspec-written.json"}
    assert len(new) == 1, new
    (written,) = new
    assert written.startswith("work/out/") and written.count("/") == 2 and written.endswith(".json")
    assert len(Path(written).stem.encode()) <= MAX_STEM_BYTES


def test_render_without_o_writes_into_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cwd").mkdir()
    spec = _spec(tmp_path, '"../../escaped"')
    monkeypatch.chdir(tmp_path / "cwd")
    res = CliRunner().invoke(main, ["render", str(spec), "--format", "dot"])
    assert res.exit_code == 0, res.output
    assert _files(tmp_path) == {"net.yaml", "cwd/escaped.dot"}


def test_existing_files_outside_the_folder_are_neither_replaced_nor_revealed(tmp_path: Path) -> None:
    victim = tmp_path / "settings.json"
    victim.write_text("precious")
    spec = _spec(tmp_path, f'"{tmp_path}/settings"')
    out = tmp_path / "out"
    for extra in ([], ["--force"]):
        res = CliRunner().invoke(main, ["build", str(spec), "-o", str(out), *extra])
        assert res.exit_code == 0, res.output
        assert str(tmp_path / "settings.json") not in res.output
    assert victim.read_text() == "precious"
    assert sorted(os.listdir(out)) == [".archspec-written.json", f"{safe_stem(str(tmp_path) + '/settings')}.json"]


def test_force_never_overwrites_a_use_file(tmp_path: Path) -> None:
    blocks = tmp_path / "blocks.yaml"
    blocks.write_text("archspec: 1\nblocks:\n  b:\n    nodes:\n      r: {op: relu}\n")
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC.format(name="net").replace("inputs:", "use: [blocks.yaml]\ninputs:"))
    original = blocks.read_bytes()
    for args in (["render", str(spec), "-o", str(blocks), "--format", "dot", "--force"],
                 ["export", str(spec), "-o", str(blocks), "--force"]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        assert "it is an input file" in res.output
    assert blocks.read_bytes() == original


def test_force_never_overwrites_the_weights(tmp_path: Path) -> None:
    import torch

    import archspec

    spec = _spec(tmp_path, "net")
    weights = tmp_path / "w.pt"
    torch.save(archspec.compile(spec).state_dict(), weights)
    original = weights.read_bytes()
    for fmt in ("python", "torchscript"):
        res = CliRunner().invoke(main, ["export", str(spec), "--to", fmt, "--weights", str(weights),
                                        "-o", str(weights), "--force"])
        assert res.exit_code == 2, res.output
        assert f"refusing to write '{weights}': it is an input file" in res.output
    res = CliRunner().invoke(main, ["build", str(spec), "--weights", str(weights), "-o", str(tmp_path), "--force"])
    assert res.exit_code == 0, res.output  # net.json, beside the inputs, is no input
    assert weights.read_bytes() == original


def test_build_refuses_before_compiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import archspec.api

    spec = _spec(tmp_path, "net")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "net.json").write_text("{}")

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("compiled before refusing")

    monkeypatch.setattr(archspec.api, "compile", boom)
    res = CliRunner().invoke(main, ["build", str(spec), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2 and "exists" in res.output, res.output


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_safe_stem_is_one_plain_name(name: str) -> None:
    stem = safe_stem(name)
    assert stem and "/" not in stem and "\\" not in stem and "\0" not in stem
    assert not stem.startswith(".") and stem not in (".", "..")
    assert all(c.isprintable() for c in stem)
    assert len(stem.encode("utf-8")) <= MAX_STEM_BYTES
    assert Path(stem).name == stem and not Path(stem).is_absolute()


def test_safe_stem_keeps_ordinary_names() -> None:
    assert [safe_stem(n) for n in ("resnet18", "ResNet-18", "unet.v2", "réseau", "wrn 28 10")] == \
        ["resnet18", "ResNet-18", "unet.v2", "réseau", "wrn_28_10"]
    assert safe_stem("../../etc/passwd") == "etc_passwd"
    assert safe_stem("///") == "model"
