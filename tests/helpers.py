"""Shared helpers: specs written inline next to the assertion, lint after every pass."""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# The reference models several test modules hold archspec against (torchvision's ResNets,
# ResNeXts and DenseNets, timm's, smp's and MONAI's models): each is built once per session
# (initialising a large one takes seconds) and every caller gets its own deep copy, so what
# one test does to its model (load_state_dict, eval(), in-place randomising) reaches no other.
_REFERENCES: dict[str, Any] = {}


def reference_model(module: str, call: str, *args: Any, **kwargs: Any) -> Any:
    """A fresh copy of the model ``module.call(*args, **kwargs)`` builds, in training mode
    as the constructor leaves it, e.g. ``reference_model("torchvision.models", "resnet50")``."""
    key = json.dumps([module, call, args, kwargs], sort_keys=True)
    if key not in _REFERENCES:
        fn: Any = importlib.import_module(module)
        for attr in call.split("."):
            fn = getattr(fn, attr)
        _REFERENCES[key] = fn(*args, **kwargs)
    return copy.deepcopy(_REFERENCES[key])


def torchvision_model(name: str, **kwargs: Any) -> Any:
    """A fresh copy of ``torchvision.models.<name>(**kwargs)`` (see reference_model)."""
    return reference_model("torchvision.models", name, **kwargs)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run faster on one torch thread, and much faster on a busy machine.
    Autouse in the modules that import it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# The type check (tests/test_typing.py) runs mypy in a child process for a minute or more on a
# cold cache. In a one-process session tests/conftest.py starts it when collection has
# selected that test, so it runs on a second core while the other tests run; the test then
# waits for its result. Under pytest-xdist (make test) the test starts it.
_MYPY: list[subprocess.Popen[str]] = []


def mypy_process() -> subprocess.Popen[str]:
    """The ``python -m mypy`` run over the package (configured in pyproject.toml), started
    on the first call."""
    if not _MYPY:
        _MYPY.append(subprocess.Popen([sys.executable, "-m", "mypy"], cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return _MYPY[0]


def stop_mypy() -> None:
    """End a run the session no longer waits for (an interrupted or failed session)."""
    for proc in _MYPY:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    _MYPY.clear()
