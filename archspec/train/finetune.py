"""``--init-from``: start from other weights, every key accounted for.

Every key of the file whose name and shape match the model is loaded; a key whose
shape differs is skipped (a head for another class count); a key of the model the file
lacks keeps its fresh initialisation; a key of the file the model lacks is unused. The
report lists each, key by key, so a partial load is never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RunError


@dataclass
class InitReport:
    path: Path
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "key: file AxB, model CxD"
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"init from {self.path}: {len(self.loaded)} loaded, {len(self.skipped)} skipped (shape), "
               f"{len(self.missing)} missing (left as initialised), {len(self.unused)} unused"]
        out += [f"  loaded   {k}" for k in self.loaded]
        out += [f"  skipped  {k}" for k in self.skipped]
        out += [f"  missing  {k}" for k in self.missing]
        out += [f"  unused   {k}" for k in self.unused]
        return out


def _fmt(shape: Any) -> str:
    return "x".join(str(d) for d in shape) if len(shape) else "scalar"


def init_from(model: Any, path: Path) -> InitReport:
    """Load the matching keys of ``path`` into ``model``; a RunError if none match."""
    import torch

    from ..weights import read_state_dict

    state = read_state_dict(path)
    own = model.state_dict()
    report = InitReport(path)
    take: dict[str, Any] = {}
    for k, v in own.items():
        if k not in state:
            report.missing.append(k)
        elif not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(v.shape):
            got = _fmt(state[k].shape) if isinstance(state[k], torch.Tensor) else type(state[k]).__name__
            report.skipped.append(f"{k}: file {got}, model {_fmt(v.shape)}")
        else:
            take[k] = state[k]
            report.loaded.append(k)
    report.unused = [k for k in state if k not in own]
    if not take:
        raise RunError(f"--init-from '{path}': no key of the file matches the model by name and shape "
                       f"({len(state)} keys in the file, {len(own)} in the model)",
                       fix="initialise from weights of the same architecture (the spec's node names)")
    model.load_state_dict(take, strict=False)
    return report
