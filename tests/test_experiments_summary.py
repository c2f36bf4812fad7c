"""The summary's curriculum answers: per-stage receptive field against the input size,
held against a field measured by backpropagating from one output position; and the
comparison of variants (summary --vary), without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.fx
from click.testing import CliRunner
from helpers import ROOT

import archspec
from archspec.analyse import compare, load_with_inputs, summarise, summary
from archspec.cli import main

SPEC = ROOT / "specs" / "resnet_cifar.yaml"
STAGES = ("relu", "layer1", "layer2", "layer3")


def run(*args: object, ok: int = 0) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == ok, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    return r.output


class Capture(torch.fx.Interpreter):
    """Runs a compiled model and keeps the value of the fx nodes of some spec nodes."""

    def __init__(self, gm: torch.fx.GraphModule, names: set[str]) -> None:
        super().__init__(gm)
        self.names, self.values = names, {}

    def run_node(self, n: torch.fx.Node):
        out = super().run_node(n)
        name = n.meta.get("archspec", {}).get("node")
        if name in self.names:
            self.values[name] = out
        return out


def measured_extent(model: torch.fx.GraphModule, node: str, size: int) -> tuple[int, int, int, int]:
    """The bounding box (top, bottom, left, right) of the input pixels whose gradient from
    the central output position of ``node`` is nonzero (eval mode: batch statistics would
    connect every position)."""
    model.eval()
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    cap = Capture(model, {node})
    cap.run(x)
    out = cap.values[node]  # (N, C, h, w)
    h, w = out.shape[-2:]
    out[:, :, h // 2, w // 2].sum().backward()
    hit = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero()
    return int(hit[:, 0].min()), int(hit[:, 0].max()), int(hit[:, 1].min()), int(hit[:, 1].max())


def last_node(s, stage: str) -> str:
    return [r.name for r in s.rows if r.name == stage or r.name.startswith(stage + ".")][-1]


@pytest.mark.parametrize("n", [2, 3])
def test_stage_fields_and_coverage_equal_the_gradient_measured_field(n: int):
    torch.manual_seed(0)
    # 1. Unclipped: on a 128x128 input the measured extent is the field, exactly.
    big = load_with_inputs(SPEC, {"n": n}, {"x": (3, 128, 128)})
    sb = summarise(big)
    model = archspec.compile(big)
    for stage in STAGES:
        row = next(r for r in sb.collapse(1) if r.name == stage)
        top, bottom, left, right = measured_extent(model, last_node(sb, stage), 128)
        assert row.field is not None and (bottom - top + 1, right - left + 1) == row.field.size, stage
        assert top > 0 and bottom < 127, stage  # nothing clipped by the border

    # 2. At the spec's 32x32: a stage covers the input iff the central position sees all of it.
    s = summary(SPEC, {"n": n})
    model = archspec.compile(SPEC, {"n": n})
    measured = {}
    for stage in STAGES:
        measured[stage] = measured_extent(model, last_node(s, stage), 32) == (0, 31, 0, 31)
    analytic = {r.name: s.covers(r) for r in s.collapse(1) if r.name in STAGES}
    assert analytic == measured
    first = next(st for st in STAGES if measured[st])
    assert first == {2: "layer3", 3: "layer2"}[n]
    assert s.covered_from(1).name == first
    out = run("summary", SPEC, "-p", f"n={n}", "--depth", "1")
    assert f"receptive field covers the 32x32 input: yes from {first}" in out
    assert "covers 32x32" in out
    row = next(line for line in out.splitlines() if line.startswith(first + " "))
    assert row.split()[-1] == "yes"


def test_coverage_when_no_stage_covers_and_in_json():
    s = summary(SPEC, {"n": 1})
    assert s.coverage_line(1) == "receptive field covers the 32x32 input: yes from avgpool (a global op)"
    data = json.loads(run("summary", SPEC, "-p", "n=1", "--depth", "1", "--json"))
    assert data["covered_from"] == "avgpool"
    assert {r["name"]: r["covers_input"] for r in data["nodes"]}["layer3"] is False
    no_head = """
archspec: 1
name: convs
inputs: {x: [3, 32, 32]}
nodes:
  c1: {op: conv, out: 8, k: 3}
  c2: {op: conv, out: 8, k: 5}
outputs: [c2]
"""
    assert summary(no_head).coverage_line(1) == "receptive field covers the 32x32 input: no (the largest field is 7x7, at c2)"


def test_summary_vary_compares_resnet_depths_without_torch():
    out = run("summary", ROOT / "specs/resnet.yaml", "--vary", "depth=18,34,50")
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("depth=")}
    assert list(lines) == ["depth=18", "depth=34", "depth=50"]
    # torchvision's parameter counts
    for key, params in (("depth=18", "11,689,512"), ("depth=34", "21,797,672"), ("depth=50", "25,557,032")):
        assert params in lines[key] and lines[key].split()[-1] == "1000"
    data = json.loads(run("summary", ROOT / "specs/resnet.yaml", "--vary", "depth=18,50", "--json"))
    for v, (label, s) in zip(data["variants"], compare(ROOT / "specs/resnet.yaml", None, {"depth": [18, 50]}),
                             strict=True):
        assert v["variant"] == label and v["params"] == s.params and v["macs"] == s.macs
        assert v["receptive_field"] == s.last_spatial().field.to_dict() and v["outputs"] == {"fc": [1000]}
    assert [v["field_at"] for v in data["variants"]] == ["layer4.1.relu2", "layer4.2.relu3"]
    assert "--vary expects KEY=V1,V2,..." in run("summary", ROOT / "specs/resnet.yaml", "--vary", "depth", ok=2)
    code = ("import sys\nfrom archspec.cli import main\n"
            "for args in [['summary', 'specs/resnet.yaml', '--vary', 'depth=18,34'],"
            " ['summary', 'specs/resnet_cifar.yaml', '--depth', '1']]:\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code in (0, None), e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
