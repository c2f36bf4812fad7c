"""Shared helpers: specs written inline next to the assertion, lint after every pass."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from archspec.ir import Graph, lint
from archspec.loader import load_text
from archspec.passes import check, expand, infer, project

ROOT = Path(__file__).resolve().parent.parent
# Every model spec shipped in specs/ (the zoo index and block files are not models).
SPECS = sorted(p for p in (ROOT / "specs").glob("*.yaml") if "\nnodes:" in p.read_text())


def spec_text(body: str) -> str:
    return textwrap.dedent(body).lstrip("\n")


def run_passes(text: str, params: dict | None = None, file: str = "t.yaml") -> Graph:
    """Every pass in order, with lint() after each one."""
    g = expand(load_text(spec_text(text), file), params)
    lint(g)
    for p in (infer, project, infer):
        g = p(g)
        lint(g)
    return check(g)



@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run faster on one torch thread, and much faster on a busy machine.
    Autouse in the modules that import it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
