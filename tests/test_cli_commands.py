"""The commands of issue 6: summary, schema, export, init, ops, and check's input sizes.

Exit codes: 0 ok, 2 spec error (no traceback), 1 internal error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from helpers import ROOT
from test_analyse import SPECS, UNET_SYMBOLIC

from archspec.cli import main
from archspec.errors import SpecValidationError
from archspec.loader import load_file, load_text
from archspec.spec import json_schema


def run(*args: str, ok: int = 0) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == ok, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    return r.output


@pytest.fixture
def unet_symbolic(tmp_path: Path) -> Path:
    p = tmp_path / "unet.yaml"
    p.write_text(UNET_SYMBOLIC)
    return p


# -- summary ----------------------------------------------------------------------------

def test_summary_table_totals_and_convention():
    out = run("summary", ROOT / "specs/resnet18.yaml")
    assert "total: 11,689,512 params (11.690 M), 1,814,073,344 MACs (1.814 GMAC, 3.628 GFLOP)" in out
    assert "FLOPs = 2 x MACs" in out and "maximum over" in out and "count 0" in out
    line = next(x for x in out.splitlines() if x.startswith("layer4.1.relu2"))
    assert line.split()[-2:] == ["435", "32"]  # RF and effective stride
    assert next(x for x in out.splitlines() if x.startswith("fc ")).split()[-2:] == ["global", "—"]


def test_summary_depth_and_json():
    out = run("summary", ROOT / "specs/resnet18.yaml", "--depth", "1")
    assert "layer2   basic x2 [16 nodes]" in out and "layer2.0" not in out
    data = json.loads(run("summary", ROOT / "specs/resnet18.yaml", "--depth", "1", "--json"))
    assert data["ok"] and data["params"] == 11_689_512 and data["macs"] == 1_814_073_344
    assert data["flops"] == 2 * data["macs"] and "FLOPs = 2 x MACs" in data["convention"]
    layer4 = next(r for r in data["nodes"] if r["name"] == "layer4")
    assert layer4["receptive_field"] == {"size": [435, 435], "stride": [32, 32], "global": False}


def test_summary_of_a_symbolic_spec_needs_a_size(unet_symbolic: Path):
    out = run("summary", unet_symbolic, "-p", "depth=2", "--input", "3x64x96", "--depth", "1")
    assert "unet (x: 3x64x96)" in out and "head" in out
    run("summary", unet_symbolic, ok=2)


# -- check: symbolic sizes and --input ----------------------------------------------------------

def test_check_derives_sizes(unet_symbolic: Path):
    out = run("check", unet_symbolic)
    assert "input sizes are symbolic; the graph is valid for:" in out
    assert "    H divisible by 16\n    W divisible by 16\n" in out
    assert "input  x: 3x224x224" in out and "output head: 2x224x224" in out
    data = json.loads(run("check", unet_symbolic, "-p", "depth=3", "--json"))
    assert [r["rule"] for r in data["constraints"]["rules"]] == ["H divisible by 8", "W divisible by 8"]
    assert data["constraints"]["separable"] is True


def test_check_sizes_frees_the_sizes_a_spec_fixes(tmp_path: Path):
    out = run("check", ROOT / "archspec/templates/unet.yaml", "--sizes", "-p", "depth=2")
    assert "input sizes are free; the graph is valid for:\n    H divisible by 4\n    W divisible by 4\n" in out
    assert "held at H=128, W=128" in out  # the spec's own sizes are the base
    out = run("check", ROOT / "archspec/templates/resnet18_cifar.yaml", "--sizes")
    assert "    H >= 1\n    W >= 1\n" in out and "input  x: 3x32x32" in out
    vec = tmp_path / "mlp.yaml"
    vec.write_text("archspec: 1\nname: mlp\ninputs: {x: [8]}\nnodes:\n  fc: {op: linear, out: 2}\noutputs: [fc]\n")
    r = CliRunner().invoke(main, ["check", str(vec), "--sizes"])
    assert r.exit_code == 2 and "the spec's inputs have no sizes to vary: only channels or features" in r.output


def test_check_input_names_the_first_broken_node(unet_symbolic: Path):
    r = CliRunner().invoke(main, ["check", str(unet_symbolic), "--input", "3x450x600"])
    assert r.exit_code == 2
    assert "node 'up.0.cat' (concat): concat: input 1 is 512x56x74 but input 0 is 512x56x75" in r.output
    assert "^" in r.output and "Traceback" not in r.output
    assert "input  x: 3x448x608" in run("check", unet_symbolic, "--input", "3x448x608")
    # --input on a spec with concrete sizes checks another size
    assert "output fc: 1000" in run("check", ROOT / "specs/resnet18.yaml", "--input", "x=3x450x600")
    data = json.loads(run("check", ROOT / "specs/resnet18.yaml", "--input", "3x0x4", "--json", ok=2))
    assert data["message"].startswith("--input expects CxHxW or name=CxHxW with positive sizes, got '3x0x4'")


def test_check_reports_when_no_size_is_valid(tmp_path: Path):
    p = tmp_path / "never.yaml"
    p.write_text("archspec: 1\nname: never\ninputs: {x: [2, H], y: [3, H]}\n"
                 "defaults:\n  projection: {kind: none}\nnodes:\n  add: {op: add, in: [x, y]}\noutputs: [add]\n")
    r = CliRunner().invoke(main, ["check", str(p)])
    assert r.exit_code == 2
    assert "no input size makes the graph valid: no input size tried gives a valid graph (H tried in 1..256" in r.output
    assert "got:      at size H=224: node 'add' (add): input 'y' is 3x224" in r.output


# -- schema ----------------------------------------------------------------------------------

def test_schema_to_stdout_and_file(tmp_path: Path):
    schema = json.loads(run("schema"))
    assert schema == json.loads(json.dumps(json_schema()))
    out = tmp_path / "archspec.schema.json"
    run("schema", "-o", out)
    assert json.loads(out.read_text()) == schema
    r = CliRunner().invoke(main, ["schema", "-o", str(out)])
    assert r.exit_code == 2 and "exists" in r.output and "--force" in r.output
    run("schema", "-o", out, "--force")


@pytest.mark.parametrize("spec", [*SPECS, *sorted((ROOT / "archspec/templates").glob("*.yaml"))],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_spec_validates_against_the_schema(spec: Path):
    jsonschema.Draft202012Validator(json_schema()).validate(load_file(spec).data)


def test_schema_rejects_what_the_loader_rejects():
    v = jsonschema.Draft202012Validator(json_schema())
    for bad in ("archspec: 1\nname: t\ninputs: {x: [3]}\nnodes:\n  a: {op: linear, out: 2, colour: red}\noutputs: [a]\n",
                "archspec: 1\nname: t\ninputs: {x: [3]}\nnodes:\n  a: {op: linear, out: 2}\noutputs: [a]\nextra: 1\n"):
        assert not v.is_valid(load_text(bad, "t.yaml").data)


# -- export ----------------------------------------------------------------------------------

def test_export_python_and_refusals(tmp_path: Path):
    out = tmp_path / "model.py"
    assert "wrote" in run("export", ROOT / "specs/resnet18_cifar.yaml", "--to", "python", "-o", out, "-p", "width=8")
    assert "class Resnet18Cifar(nn.Module):" in out.read_text()
    r = CliRunner().invoke(main, ["export", str(ROOT / "specs/resnet18_cifar.yaml"), "-o", str(out)])
    assert r.exit_code == 2 and "exists" in r.output
    data = json.loads(run("export", ROOT / "specs/resnet18_cifar.yaml", "-o", out, "--force", "--json"))
    assert data == {"ok": True, "name": "resnet18_cifar", "format": "python", "written": str(out)}
    r = CliRunner().invoke(main, ["export", str(ROOT / "specs/resnet18_cifar.yaml"), "--to", "tflite", "-o", "x"])
    assert r.exit_code == 2 and "Invalid value for '--to'" in r.output


def test_export_never_writes_over_the_spec(tmp_path: Path):
    spec = tmp_path / "net.yaml"
    spec.write_text((ROOT / "specs/resnet18_cifar.yaml").read_text())
    r = CliRunner().invoke(main, ["export", str(spec), "-o", str(spec), "--force"])
    assert r.exit_code == 2 and "it is an input file" in r.output
    assert spec.read_text() == (ROOT / "specs/resnet18_cifar.yaml").read_text()


# -- init ------------------------------------------------------------------------------------

def test_init_lists_and_instantiates_templates(tmp_path: Path):
    listing = run("init").splitlines()[0]
    assert listing.startswith("templates: ")
    names = listing.removeprefix("templates: ").split(", ")
    assert names == sorted(names) and {"densenet", "densenet_cifar", "highway", "plain18", "resnet", "resnet18"} <= set(names)
    assert set(names) == {p.stem for p in (ROOT / "archspec/templates").glob("*.yaml")}
    out = tmp_path / "mynet.yaml"
    run("init", "resnet18_cifar", "-p", "num_classes=100", "-p", "width=32", "-o", out)
    text = out.read_text()
    assert "name: mynet\n" in text and "params: {num_classes: 100, width: 32}" in text
    assert "# input projected when the shapes differ" in text  # comments kept
    assert "output fc: 100" in run("check", out)
    stdout = run("init", "unet", "-p", "depth=3", "--name", "small_unet")
    assert "name: small_unet" in stdout and "depth: 3," in stdout
    assert json.loads(run("init", "--json"))["templates"] == names
    assert json.loads(run("init", "unet", "--json"))["text"] == run("init", "unet")


@pytest.mark.parametrize("args, message", [
    (["init", "resnet81"], "unknown template 'resnet81' (did you mean 'resnet18'"),
    (["init", "resnet18", "-p", "classes=10"], "the template has no param 'classes' (did you mean 'num_classes'"),
    (["init", "resnet18", "--name", "my-net"], "--name 'my-net' is not an identifier"),
    (["init", "unet", "-p", "depth=9"], "ShapeError"),  # checked before it is written
])
def test_init_errors(args: list[str], message: str):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and message in r.output, r.output


@pytest.mark.parametrize("template", sorted(p.stem for p in (ROOT / "archspec/templates").glob("*.yaml")))
def test_every_template_instantiates_and_checks(template: str):
    text = run("init", template, "--name", "copy")  # init checks the result before printing it
    assert "name: copy\n" in text and load_text(text, "t.yaml").data["params"] == \
        load_file(ROOT / "archspec/templates" / f"{template}.yaml").data["params"]


def test_init_rewrites_values_in_place():
    from archspec.template import instantiate

    text = ("archspec: 1\nname: t\nparams:\n  sizes:\n    - 4\n    - 8\n  flow: [1, 2]  # kept\n  act: 'relu'\n"
            "inputs: {x: [3]}\nnodes:\n  fc: {op: linear, out: 2}\noutputs: [fc]\n")
    out = instantiate(text, {"flow": [3, 4], "act": "gelu"}, "renamed")
    assert "  flow: [3, 4]  # kept\n  act: \"gelu\"\n" in out and "name: renamed\n" in out
    with pytest.raises(SpecValidationError, match="cannot rewrite 'params.sizes' in place: its value spans several lines"):
        instantiate(text, {"sizes": [1]}, None)


def test_init_from_a_zoo_family(tmp_path: Path):
    out = tmp_path / "r50.yaml"
    run("init", "resnet", "-p", "depth=50", "-p", "num_classes=10", "-o", out)
    assert "output fc: 10" in run("check", out)
    assert json.loads(run("summary", out, "--json"))["params"] == 23_528_522  # torchvision resnet50, 10 classes


# -- ops -------------------------------------------------------------------------------------

def test_ops_lists_the_registry():
    out = run("ops")
    assert "conv" in out and "concat" in out
    data = json.loads(run("ops", "--json"))
    by_name = {o["name"]: o for o in data["ops"]}
    assert by_name["conv"]["module"] and by_name["conv"]["attrs"]["out"]["required"]
    assert by_name["concat"]["inputs"] == "1+" and not by_name["relu"]["module"]
    from archspec.ops import REGISTRY

    assert set(by_name) == set(REGISTRY.names())


# -- help and torch-free commands --------------------------------------------------------------

@pytest.mark.parametrize("command", ["summary", "schema", "export", "init", "ops", "check"])
def test_help_has_examples(command: str):
    assert "Example" in run(command, "--help")


def test_check_summary_schema_never_import_torch(unet_symbolic: Path):
    code = (
        "import sys\nfrom archspec.cli import main\n"
        "for args in " + repr([["check", "specs/resnet18.yaml"], ["check", str(unet_symbolic)],
                              ["check", str(unet_symbolic), "--input", "3x64x64"],
                              ["summary", "specs/unet.yaml", "--depth", "1"], ["schema"], ["ops"],
                              ["init", "resnet18"]]) + ":\n"
        "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code in (0, None), (args, e.code)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
