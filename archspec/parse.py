"""Values written on a command line, read into what the library takes: ``k=v`` params,
``CxHxW`` input shapes and ``k=v1,v2`` variants. Each value is read as a YAML scalar, so
``-p width=32`` is an int; a malformed one is a located ArchSpecError naming its option.

>>> parse_shape("x=3x224x224")
('x', (3, 224, 224))
>>> parse_vary("depth=18,34")
('depth', [18, 34])
"""

from __future__ import annotations

from typing import Any

from .errors import ArchSpecError, SpecValidationError
from .ir import Shape
from .loader import load_text


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` with ``v`` read as a YAML scalar (so ``-p width=32`` is an int)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecValidationError(f"-p expects key=value, got '{text}'", fix="write e.g. -p num_classes=100")
    try:
        value = load_text(f"v: {raw}", "<-p>").data["v"] if raw.strip() else ""
    except ArchSpecError as e:
        raise SpecValidationError(f"-p {text}: {e.message}", fix=e.fix) from None
    return key.strip(), value


def parse_shape(text: str) -> tuple[str | None, Shape]:
    """``3x450x600`` or ``x=3x450x600`` into ``(name or None, (3, 450, 600))``."""
    name, sep, dims = text.rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape) or (sep and not name.strip().isidentifier()):
        raise SpecValidationError(f"--input expects CxHxW or name=CxHxW with positive sizes, got '{text}'",
                                  fix="write e.g. --input 3x224x224", option="--input")
    return (name.strip() if sep else None), shape


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """``depth=18,34,50`` into ``("depth", [18, 34, 50])``: each value read as a YAML scalar."""
    key, sep, raw = text.partition("=")
    values = [v.strip() for v in raw.split(",")]
    if not sep or not key.strip().isidentifier() or not all(values):
        raise SpecValidationError(f"--vary expects KEY=V1,V2,... with a param name and values, got '{text}'",
                                  fix="write e.g. --vary residual=true,false")
    try:
        return key.strip(), [load_text(f"v: {v}", "<--vary>").data["v"] for v in values]
    except ArchSpecError as e:
        raise SpecValidationError(f"--vary {text}: {e.message}", fix=e.fix) from None
