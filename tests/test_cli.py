"""`archspec check` and `archspec build` through click's runner and real subprocesses."""

from __future__ import annotations

import json

from click.testing import CliRunner
from helpers import ROOT

from archspec.cli import main, parse_param

RESNET = str(ROOT / "specs/resnet18.yaml")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_check_prints_outputs_and_projections():
    r = run("check", RESNET)
    assert r.exit_code == 0
    assert "output fc: 1000" in r.output
    assert "projection layer2.0.downsample.0, layer2.0.downsample.1: proj 1x1/2, 64→128 (auto)" in r.output


def test_check_json_and_param_override():
    r = run("check", RESNET, "-p", "num_classes=7", "--json")
    data = json.loads(r.output)
    assert data["ok"] and data["outputs"] == {"fc": [7]}
    assert [p["nodes"] for p in data["projections"]][0] == ["layer2.0.downsample.0", "layer2.0.downsample.1"]


def test_spec_error_exits_2_with_json(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("archspec: 1\nname: b\ninputs: {x: [3]}\nnodes: {a: {op: relu, in: y}}\noutputs: [a]\n")
    r = run("check", str(bad), "--json")
    assert r.exit_code == 2
    data = json.loads(r.output)
    assert (data["ok"], data["error"], data["line"], data["col"]) == (False, "GraphError", 4, 27)
    assert data["message"] == "unknown node 'y'"


def test_bad_param_syntax_is_a_spec_error():
    r = run("check", RESNET, "-p", "num_classes")
    assert r.exit_code == 2
    assert "-p expects key=value, got 'num_classes'" in r.output


def test_params_are_read_as_yaml_scalars():
    assert parse_param("n=3") == ("n", 3)
    assert parse_param("bilinear=true") == ("bilinear", True)
    assert parse_param("mode=on") == ("mode", "on")
    assert parse_param("scale=0.5") == ("scale", 0.5)


def test_limit_flags_reach_the_loader(tmp_path):
    r = run("check", RESNET, "--max-nodes", "10")
    assert r.exit_code == 2
    assert "the spec expands to more than 10 nodes" in r.output


def test_missing_spec_file():
    r = run("check", "no/such/spec.yaml")
    assert r.exit_code == 2
    assert r.output.startswith("SpecFileError: file not found: 'no/such/spec.yaml'\n")


def test_build_prints_a_table_and_writes_its_report(tmp_path):
    out = tmp_path / "out"
    r = run("build", str(ROOT / "specs/resnet18_cifar.yaml"), "-o", str(out), "-p", "num_classes=100")
    assert r.exit_code == 0, r.output
    assert "resnet18_cifar: 11,220,132 parameters" in r.output
    row = next(line for line in r.output.splitlines() if line.startswith("layer2.0.downsample.0"))
    assert row.split()[1:] == ["conv", "(auto)", "128x16x16", "8,192"]
    report = json.loads((out / "resnet18_cifar.json").read_text())
    assert report["outputs"] == {"fc": [100]}
    assert sum(r["params"] for r in report["table"]) == 11_220_132


def test_check_warns_about_nodes_that_reach_no_output(tmp_path):
    spec = tmp_path / "dead.yaml"
    spec.write_text("archspec: 1\nname: d\ninputs: {x: [3]}\n"
                    "nodes: {a: {op: relu}, b: {op: tanh, in: x}, c: {op: sigmoid, in: a}}\noutputs: [a]\n")
    r = run("check", str(spec))
    assert r.exit_code == 0
    assert f"warning: {spec}:4:24: b, c reach no output (computed, then unused)" in r.output
    assert json.loads(run("check", str(spec), "--json").output)["unused"] == ["b", "c"]


def test_an_option_error_is_a_click_usage_error(tmp_path):
    r = run("render", RESNET, "--expand", "stage9", "-o", str(tmp_path / "r.dot"))
    assert r.exit_code == 2
    assert "Usage: main render [OPTIONS] SPEC" in r.output
    assert "Error: Invalid value for '--expand': --expand 'stage9' is not a repeat of 'resnet18'" in r.output
    assert "^" not in r.output  # not shown as a place in the spec
    r = run("render", RESNET, "--format", "png", "-o", str(tmp_path / "a.svg"))
    assert r.exit_code == 2
    assert f"Error: Invalid value for '--format': --format png does not match the output file '{tmp_path / 'a.svg'}'" \
        in r.output
    assert "fix: name the file *.png, or drop --format" in r.output
    # With --json the report stays JSON.
    r = run("check", RESNET, "--input", "3x0x4", "--json")
    assert r.exit_code == 2 and json.loads(r.output)["error"] == "SpecValidationError"
    # -p gives the spec's params: its errors are the spec's, as in the malformed corpus.
    assert "SpecValidationError: -p expects key=value, got 'num_classes'" in run("check", RESNET, "-p", "num_classes").output


def test_exit_codes_by_error_class():
    from archspec.cli import exit_code
    from archspec.errors import ExportError, OpDefinitionError, ShapeError

    assert exit_code(ShapeError("x")) == 2
    assert exit_code(ExportError("x")) == 3
    assert exit_code(OpDefinitionError("x")) == 1
