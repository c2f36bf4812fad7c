"""The JSON Schema for editors: descriptions everywhere, specific errors from a plain
validator, a variant for block-library files, every shipped file valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from archspec.cli import main
from archspec.ops import REGISTRY
from archspec.spec import json_schema

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p for p in (ROOT / "specs").glob("*.yaml") if p.name != "zoo.yaml")
TEMPLATES = sorted((ROOT / "archspec" / "templates").glob("*.yaml"))
LIBRARY = sorted((ROOT / "archspec" / "library").glob("*.yaml"))


def _properties(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (path, schema) of a key the schema describes; the node matcher ($defs/Node) only
    holds conditions and references to the node schemas, which carry the descriptions."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for k, v in (node.get("properties") or {}).items():
            if isinstance(v, dict):
                out.append((f"{path}.{k}", v))
        for k, v in node.items():
            if f"{path}/{k}" != "/$defs/Node":
                out += _properties(v, f"{path}/{k}")
    elif isinstance(node, list):
        for v in node:
            out += _properties(v, path)
    return out


@pytest.mark.parametrize("kind", ["spec", "library"])
def test_every_key_and_attribute_has_a_description(kind: str) -> None:
    props = _properties(json_schema(kind))  # type: ignore[arg-type]
    assert len(props) > 300 if kind == "spec" else len(props) > 100
    missing = [p for p, s in props if not s.get("description")]
    assert not missing, missing
    # A title heads an editor's hover ("#### Op"): only an op's own name is one.
    assert not [p for p, s in props if "title" in s and not (p.endswith(".op") and s["title"] == s.get("const"))]


def test_hovering_op_shows_the_op() -> None:
    defs = json_schema()["$defs"]
    for name in REGISTRY.names():
        op = defs[f"{name}_node"]["properties"]["op"]
        assert op["const"] == name and op["description"].startswith(f"{name}: ")
    assert defs["conv_node"]["properties"]["op"]["description"].startswith("conv: Convolution.")


def test_no_internal_field_leaks() -> None:
    for kind in ("spec", "library"):
        text = json.dumps(json_schema(kind))  # type: ignore[arg-type]
        defs = json.loads(text)["$defs"]
        for d in ("BlockCall", "Group", "ShareNode"):
            assert "kind" not in defs[d]["properties"]
        assert "discriminator" not in text  # OpenAPI's keyword, unknown to JSON Schema validators
    assert set(json_schema()["$defs"]["ProjectionPolicy"]["properties"]) == {"kind", "name", "bias"}  # real keys


@pytest.mark.parametrize("path", SPECS + TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_spec_is_valid(path: Path) -> None:
    jsonschema.Draft202012Validator(json_schema()).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_every_shipped_block_library_is_valid_under_its_schema(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    jsonschema.Draft202012Validator(json_schema("library")).validate(data)
    assert list(jsonschema.Draft202012Validator(json_schema()).iter_errors(data))  # not a spec


NODE = {"archspec": 1, "name": "n", "inputs": {"x": [3, 8, 8]}, "outputs": ["c"]}


@pytest.mark.parametrize("node,where,message", [
    ({"op": "conv", "out": 8, "k": 3, "stride": -1}, ["nodes", "c", "stride"], "-1 is less than the minimum of 1"),
    ({"op": "cnv", "out": 8}, ["nodes", "c", "op"], "'cnv' is not one of ['adaptive_avgpool'"),
    ({"op": "conv", "out": 8, "k": 3, "strid": 2}, ["nodes", "c"],
     "Additional properties are not allowed ('strid' was unexpected)"),
    ({"op": "relu", "inplace": True}, ["nodes", "c"], "Additional properties are not allowed ('inplace' was"),
    ({"block": "b", "repeat": 0}, ["nodes", "c", "repeat"], "0 is less than the minimum of 1"),
    ({"ops": "conv"}, ["nodes", "c"], "'op' is a required property"),
])
def test_a_plain_validator_names_the_problem_in_the_node(node: dict[str, Any], where: list[str],
                                                          message: str) -> None:
    errors = list(jsonschema.Draft202012Validator(json_schema()).iter_errors({**NODE, "nodes": {"c": node}}))
    best = jsonschema.exceptions.best_match(errors)
    assert best is not None and list(best.absolute_path) == where and best.message.startswith(message), \
        [(list(e.absolute_path), e.message) for e in errors]


def test_schema_command_writes_the_library_variant(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["schema", "--library", "-o", str(tmp_path / "lib.json")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "lib.json").read_text())
    assert data["title"] == "archspec block library (v1)" and "blocks" in data["properties"]
    assert "nodes" not in data["properties"]
