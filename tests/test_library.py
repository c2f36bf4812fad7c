"""The block files shipped with archspec (`use: [archspec:NAME]`), held against torchvision:
the zoo's specs, rewritten to take their blocks from the library, load torchvision's
weights strictly and give equal outputs."""

from __future__ import annotations

import re

import pytest
import torch
from helpers import ROOT, one_thread, run_passes, torchvision_model  # noqa: F401 - an autouse fixture

import archspec
from archspec.errors import IncludeError


def without_blocks(text: str, library: str) -> str:
    """A zoo spec with its `blocks:` section replaced by a `use:` of the library."""
    text = re.sub(r"\nblocks:\n(?:(?:  .*)?\n)+", "\n", text)
    return text.replace("\ninputs:", f"\nuse: [archspec:{library}]\ninputs:", 1)


def assert_same_as(spec: str, params: dict, ref: torch.nn.Module) -> None:
    model = archspec.compile(spec, params).eval()
    ref = ref.eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))


@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
def test_resnet_blocks_are_torchvisions():
    text = without_blocks((ROOT / "specs/resnet.yaml").read_text(), "resnet")
    assert "bottleneck:" not in text and "use: [archspec:resnet]" in text
    assert_same_as(text, {"depth": 18, "H": 64, "W": 64}, torchvision_model("resnet18"))
    grouped = text.replace("args: {planes:", "args: {groups: $groups, width_per_group: $width_per_group, planes:")
    assert_same_as(grouped, {"depth": 50, "groups": 32, "width_per_group": 4, "H": 64, "W": 64},
                   torchvision_model("resnext50_32x4d"))


@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
def test_densenet_blocks_are_torchvisions():
    text = without_blocks((ROOT / "specs/densenet.yaml").read_text(), "densenet")
    text = text.replace("connect: dense,", "connect: dense, args: {growth: $growth, bn_size: $bn_size},")
    assert_same_as(text, {"depth": 121, "H": 64, "W": 64}, torchvision_model("densenet121"))


def test_unet_blocks():
    g = run_passes("""
        archspec: 1
        name: tiny_unet
        use: [archspec:unet]
        inputs: {x: [3, 16, 16]}
        nodes:
          enc: {block: double_conv, args: {out: 8}}
          pool: {op: maxpool, k: 2}
          mid: {block: double_conv, args: {out: 16}}
          dec: {block: up, in: {x: mid, skip: enc}, args: {out: 8}}
          head: {op: conv, out: 2, k: 1}
        outputs: [head]
        """)
    assert g.node("dec.cat").shape == (16, 16, 16) and g.node("head").shape == (2, 16, 16)


def test_unknown_library_file_suggests():
    with pytest.raises(IncludeError, match=r"use: 'archspec:resnt' is not a block file shipped with archspec "
                                           r"\(did you mean 'resnet'\?\)"):
        run_passes("archspec: 1\nname: t\nuse: ['archspec:resnt']\ninputs: {x: [3]}\nnodes: {a: {op: relu}}\noutputs: [a]\n")


def test_library_names_cannot_be_paths():
    with pytest.raises(IncludeError, match=r"use: 'archspec:../specs/resnet' is not a block file shipped with archspec"):
        run_passes("archspec: 1\nname: t\nuse: ['archspec:../specs/resnet']\ninputs: {x: [3]}\n"
                   "nodes: {a: {op: relu}}\noutputs: [a]\n")
