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

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import WeightsError
from .ops.base import fmt

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
SAFETENSORS_SUFFIXES = (".safetensors",)
MAX_LISTED = 20  # keys listed per kind of problem before "... and N more"


def read_state_dict(path: str | Path, model: Any = None) -> dict[str, Any]:
    """The tensors in a weights file, by key, on the CPU; a WeightsError if the file
    cannot be read safely.

    With ``model``, the file's own description of its tensors is compared with the model
    before any tensor is read: a safetensors header's keys, dtypes and shapes, a torch
    zip archive's uncompressed sizes. A file that claims more bytes than the model holds
    is refused without allocating them."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file '{p}' does not exist" if not p.exists() else f"weights path '{p}' is not a file")
    suffix = p.suffix.lower()
    if model is not None:
        _precheck(p, suffix, model)
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            data: Any = load_file(str(p), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"weights file '{p}' is not a readable safetensors file: {_first_line(e)}") from None
    elif suffix in TORCH_SUFFIXES:
        try:
            with warnings.catch_warnings():  # torch's notes on what it validates are not ours to print
                warnings.simplefilter("ignore")
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
    ``missing``, ``unexpected``, ``mis-shaped``, ``not a tensor`` and ``unsupported``
    (sparse, quantized or complex tensors, or a float model given integers). Empty
    lists: it fits."""
    import torch

    own = model.state_dict()
    optional = _optional_keys(model)
    problems: dict[str, list[str]] = {"missing": [], "unexpected": [], "mis-shaped": [], "not a tensor": [],
                                      "unsupported": []}
    for k in own:
        if k not in state and k not in optional:
            problems["missing"].append(k)
    for k, v in state.items():
        if k not in own:
            problems["unexpected"].append(k)
        elif not isinstance(v, torch.Tensor):
            problems["not a tensor"].append(f"{k} ({type(v).__name__})")
        elif (why := _unsupported(v, own[k])) is not None:
            problems["unsupported"].append(f"{k}: {why}")
        elif tuple(v.shape) != tuple(own[k].shape):
            problems["mis-shaped"].append(f"{k}: file {fmt(v.shape)}, model {fmt(own[k].shape)}")
    return problems


def load_weights(model: Any, path: str | Path) -> None:
    """Load the state_dict in ``path`` into ``model``, completely or not at all: every
    tensor is checked first, and if a copy fails anyway every parameter is put back."""
    import torch

    state = read_state_dict(path, model)
    problems = check_state_dict(model, state)
    if any(problems.values()):
        raise _mismatch(model, path, state, problems)
    own = model.state_dict()
    full = dict(state)
    for k in _optional_keys(model):
        full.setdefault(k, own[k])
    saved = {k: v.detach().clone() for k, v in own.items()}
    try:
        model.load_state_dict(full, strict=True)
    except Exception as e:  # noqa: BLE001 - any failed copy: put every tensor back
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(saved[k])
        reason = " ".join(str(e).split())
        reason = reason if len(reason) <= 300 else reason[:300] + "…"
        raise WeightsError(f"weights '{path}' could not be copied into the model: {reason} "
                           "(the model is unchanged)") from None


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

MAX_HEADER = 100 << 20  # bytes of a safetensors header: far more than any model's key table
_SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                       "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def _unsupported(v: Any, own: Any) -> str | None:
    """Why tensor ``v`` cannot be copied into ``own``, or None."""
    import torch

    if v.layout != torch.strided:
        return f"a {str(v.layout).removeprefix('torch.')} tensor (only dense tensors load)"
    if v.is_quantized:
        return "a quantized tensor (only plain tensors load)"
    if v.is_complex() and not own.is_complex():
        return f"a complex tensor ({str(v.dtype).removeprefix('torch.')}) for a real one"
    if own.is_floating_point() and not (v.is_floating_point() or v.is_complex()):
        return f"{str(v.dtype).removeprefix('torch.')} values for a {str(own.dtype).removeprefix('torch.')} tensor"
    return None


def _precheck(p: Path, suffix: str, model: Any) -> None:
    """Compare what the file says it holds with ``model`` before reading a tensor."""
    own = model.state_dict()
    budget = sum(v.numel() * v.element_size() for v in own.values()) + (1 << 20)
    if suffix in SAFETENSORS_SUFFIXES:
        header = _safetensors_header(p)
        state = {k: _Described(d, p) for k, d in header.items() if k != "__metadata__"}
        _compare_described(model, p, state)
    elif suffix in TORCH_SUFFIXES:
        import zipfile

        if zipfile.is_zipfile(p):
            try:
                with zipfile.ZipFile(p) as z:
                    held = sum(i.file_size for i in z.infolist())
            except (zipfile.BadZipFile, OSError, ValueError) as e:
                raise WeightsError(f"weights file '{p}' is not a readable torch archive: {_first_line(e)}") from None
        else:
            held = p.stat().st_size
        if held > budget:
            raise WeightsError(f"weights file '{p}' holds {held} bytes unpacked, more than the {budget} bytes of "
                               f"the model's tensors (and 1 MiB to spare): it was not read",
                               fix="load weights saved from this model (model.state_dict())")
        if zipfile.is_zipfile(p) and (described := _torch_archive_described(p)) is not None:
            # Meta tensors: checked as the loaded ones would be, with the same messages.
            if any((problems := check_state_dict(model, described)).values()):
                raise _mismatch(model, p, described, problems)


_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")


def _compare_described(model: Any, p: Path, state: Mapping[str, _Described]) -> None:
    """Refuse a file whose described tensors (keys, dtypes, shapes) do not fit ``model``."""
    own = model.state_dict()
    problems: dict[str, list[str]] = {"missing": [], "unexpected": [], "mis-shaped": [], "not a tensor": [],
                                      "unsupported": []}
    optional = _optional_keys(model)
    problems["missing"] = [k for k in own if k not in state and k not in optional]
    for k, d in state.items():
        if k not in own:
            problems["unexpected"].append(k)
        elif own[k].is_floating_point() and d.dtype not in _FLOAT_DTYPES:
            problems["unsupported"].append(f"{k}: {d.dtype} values for a {str(own[k].dtype).removeprefix('torch.')} "
                                           "tensor")
        elif d.shape != tuple(own[k].shape):
            problems["mis-shaped"].append(f"{k}: file {fmt(d.shape)}, model {fmt(own[k].shape)}")
    if any(problems.values()):
        raise _mismatch(model, p, state, problems)


MAX_PICKLE = 64 << 20  # bytes of a torch archive's data.pkl: the key table, never tensor data


def _torch_archive_described(p: Path) -> dict[str, Any] | None:
    """The state_dict a torch zip archive describes, as meta tensors (key, dtype, layout,
    shape), read from its pickle with torch's weights-only unpickler while every storage
    is a meta storage: no tensor byte is read or allocated, whatever sizes the archive
    claims. None when the pickle is not a state_dict (torch.load then words the refusal)."""
    import io
    import zipfile

    import torch
    from torch import _weights_only_unpickler

    try:
        with zipfile.ZipFile(p) as z:
            names = [i for i in z.infolist() if i.filename.endswith("data.pkl") and i.filename.count("/") <= 1]
            if len(names) != 1 or names[0].file_size > MAX_PICKLE:
                return None
            pickled = z.read(names[0])
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as e:
        raise WeightsError(f"weights file '{p}' is not a readable torch archive: {_first_line(e)}") from None

    def meta_storage(saved_id: Any) -> Any:
        # ('storage', storage_type, key, location, numel): the bytes stay in the archive
        _, storage_type, _, _, numel = saved_id
        dtype = storage_type.dtype
        nbytes = int(numel) * torch._utils._element_size(dtype)
        return torch.storage.TypedStorage(wrap_storage=torch.UntypedStorage(nbytes, device="meta"), dtype=dtype,
                                          _internal=True)

    # torch queues rebuilt sparse tensors for a check at the end of its own load: these
    # meta ones are not its to check.
    queued = list(torch._utils._sparse_tensors_to_validate)
    try:
        unpickler = _weights_only_unpickler.Unpickler(io.BytesIO(pickled), encoding="utf-8")
        unpickler.persistent_load = meta_storage  # type: ignore[method-assign]  # torch.load sets it so too
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = unpickler.load()
    except Exception:  # noqa: BLE001 - torch.load words the refusal of a pickle that is not weights only
        return None
    finally:
        torch._utils._sparse_tensors_to_validate[:] = queued
    try:
        return _unwrap(data, p)
    except WeightsError:
        return None


class _Described:
    """A tensor as a safetensors header describes it: dtype, shape and byte range."""

    def __init__(self, d: Any, p: Path) -> None:
        ok = isinstance(d, dict) and isinstance(d.get("dtype"), str) and isinstance(d.get("shape"), list) \
            and all(isinstance(x, int) and 0 <= x < (1 << 62) for x in d["shape"])
        if not ok:
            raise WeightsError(f"weights file '{p}' has a malformed safetensors header entry")
        self.dtype: str = d["dtype"]
        self.shape = tuple(d["shape"])


def _safetensors_header(p: Path) -> dict[str, Any]:
    import json
    import struct

    try:
        with p.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a header")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER, p.stat().st_size - 8):
                raise ValueError(f"a header of {n} bytes")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise WeightsError(f"weights file '{p}' is not a readable safetensors file: {_first_line(e)}") from None
    if not isinstance(header, dict):
        raise WeightsError(f"weights file '{p}' is not a readable safetensors file: the header is not a table")
    return header


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
