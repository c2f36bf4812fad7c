"""Loading and saving weights: a ``state_dict`` file, safely, all or nothing.

Formats, told apart by the file's suffix:

- ``.safetensors`` — read with :mod:`safetensors` (no code can run while loading);
- ``.pt``, ``.pth``, ``.bin`` — read with ``torch.load(weights_only=True)``, which refuses
  any pickle that would construct something other than tensors and plain containers.

A checkpoint that wraps its tensors (``{"state_dict": {...}}`` or ``{"model": {...}}``)
is unwrapped. Before a single value is copied the whole file is compared with the
model: every missing, unexpected and mis-shaped key is collected into ONE
:class:`~archspec.errors.WeightsError`, and the model is left untouched. Only a file
that matches completely is loaded (with ``strict=True``). As in ``torch``, a BatchNorm's
``num_batches_tracked`` counter may be absent (older checkpoints, e.g. torchvision's
ImageNet weights, predate it); the model then keeps its own.

>>> import archspec, tempfile, os
>>> m = archspec.compile("specs/resnet_cifar.yaml")
>>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
>>> _ = save_weights(m, path)
>>> load_weights(archspec.compile("specs/resnet_cifar.yaml"), path)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import WeightsError
from .ops.base import fmt

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
SAFETENSORS_SUFFIXES = (".safetensors",)
MAX_LISTED = 20  # keys listed per kind of problem before "... and N more"


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """The tensors in a weights file, by key, on the CPU; a WeightsError if the file
    cannot be read safely."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file '{p}' does not exist" if not p.exists() else f"weights path '{p}' is not a file")
    suffix = p.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            data: Any = load_file(str(p), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"weights file '{p}' is not a readable safetensors file: {_first_line(e)}") from None
    elif suffix in TORCH_SUFFIXES:
        try:
            data = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError for refused pickles, RuntimeError for corrupt zips, ...
            raise WeightsError(
                f"weights file '{p}' was refused: it is not a weights-only checkpoint ({_first_line(e)})",
                fix="save a plain state_dict (torch.save(model.state_dict(), path)) or use .safetensors",
            ) from None
    else:
        raise WeightsError(f"weights file '{p}' has an unknown suffix '{p.suffix}'",
                           expected="one of " + ", ".join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES),
                           fix="name the file by its format, e.g. model.safetensors or model.pt")
    return _unwrap(data, p)


def check_state_dict(model: Any, state: Mapping[str, Any]) -> dict[str, list[str]]:
    """The problems loading ``state`` into ``model`` would hit, by kind:
    ``missing``, ``unexpected``, ``mis-shaped`` and ``not a tensor``. Empty lists: it fits."""
    import torch

    own = model.state_dict()
    optional = _optional_keys(model)
    problems: dict[str, list[str]] = {"missing": [], "unexpected": [], "mis-shaped": [], "not a tensor": []}
    for k in own:
        if k not in state and k not in optional:
            problems["missing"].append(k)
    for k, v in state.items():
        if k not in own:
            problems["unexpected"].append(k)
        elif not isinstance(v, torch.Tensor):
            problems["not a tensor"].append(f"{k} ({type(v).__name__})")
        elif tuple(v.shape) != tuple(own[k].shape):
            problems["mis-shaped"].append(f"{k}: file {fmt(v.shape)}, model {fmt(own[k].shape)}")
    return problems


def load_weights(model: Any, path: str | Path) -> None:
    """Load the state_dict in ``path`` into ``model``, completely or not at all."""
    state = read_state_dict(path)
    problems = check_state_dict(model, state)
    if any(problems.values()):
        raise _mismatch(model, path, state, problems)
    own = model.state_dict()
    full = dict(state)
    for k in _optional_keys(model):
        full.setdefault(k, own[k])
    model.load_state_dict(full, strict=True)


def save_weights(model: Any, path: str | Path, *, force: bool = True) -> Path:
    """Write ``model``'s state_dict to ``path`` (``.safetensors`` or ``.pt``), atomically."""
    import io

    import torch

    from .io import write_bytes

    p = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if p.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors.torch import save

        data = save(state)
    elif p.suffix.lower() in TORCH_SUFFIXES:
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
    else:
        raise WeightsError(f"cannot save weights to '{p}': unknown suffix '{p.suffix}'",
                           expected="one of " + ", ".join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES))
    return write_bytes(p, data, force=force)


# -- helpers ------------------------------------------------------------------------------

def _unwrap(data: Any, p: Path) -> dict[str, Any]:
    import torch

    if isinstance(data, Mapping) and not any(isinstance(v, torch.Tensor) for v in data.values()):
        for key in ("state_dict", "model"):
            inner = data.get(key)
            if isinstance(inner, Mapping):
                data = inner
                break
    if not isinstance(data, Mapping):
        raise WeightsError(f"weights file '{p}' holds a {type(data).__name__}, not a state_dict",
                           fix="save model.state_dict(), a mapping of names to tensors")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise WeightsError(f"weights file '{p}' has non-string keys, e.g. {bad[0]!r}")
    return dict(data)


def _optional_keys(model: Any) -> set[str]:
    """``num_batches_tracked`` of BatchNorms: torch fills them in when a checkpoint lacks them."""
    from torch.nn.modules.batchnorm import _NormBase

    out = set()
    for name, m in model.named_modules():
        if isinstance(m, _NormBase) and m.track_running_stats:
            out.add(f"{name}.num_batches_tracked" if name else "num_batches_tracked")
    return out


def _mismatch(model: Any, path: str | Path, state: Mapping[str, Any], problems: dict[str, list[str]]) -> WeightsError:
    counts = ", ".join(f"{len(v)} {k}" for k, v in problems.items() if v)
    lines = [f"weights '{path}' do not match the model {type(model).__name__}: {counts} "
             f"(the model is unchanged)"]
    for kind, keys in problems.items():
        if not keys:
            continue
        lines.append(f"  {kind} ({len(keys)}):")
        lines += [f"    {k}" for k in keys[:MAX_LISTED]]
        if len(keys) > MAX_LISTED:
            lines.append(f"    ... and {len(keys) - MAX_LISTED} more")
    fix = None
    if problems["unexpected"] and all(k.startswith("module.") for k in state):
        fix = "the keys start with 'module.' (saved from DataParallel/DDP): save model.module.state_dict() instead"
    elif problems["mis-shaped"] and not problems["missing"] and not problems["unexpected"]:
        fix = "the names match but sizes differ: compile the spec with the params the weights were trained with"
    elif problems["missing"] or problems["unexpected"]:
        fix = ("the architecture differs: compile with the params the weights were trained with, and check "
               "the spec's node names and its projection name (defaults.projection.name)")
    return WeightsError("\n".join(lines), expected=f"{len(model.state_dict())} keys of the model",
                        got=f"{len(state)} keys in the file", fix=fix)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
