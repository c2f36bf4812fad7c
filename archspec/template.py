"""Templates: the starting specs shipped in ``archspec/templates/``, and a new spec made
from one with its ``params:`` defaults and ``name:`` rewritten in place (comments and
layout kept).

>>> text = instantiate(templates()["resnet18_cifar"].read_text(), {"num_classes": 100}, "mynet")
>>> "num_classes: 100" in text and "name: mynet" in text
True
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from .errors import SpecValidationError, close_matches
from .limits import DEFAULT_LIMITS, Limits
from .loader import Document, load_text

if TYPE_CHECKING:
    from importlib.abc import Traversable  # importlib.resources.abc from Python 3.11


def templates() -> dict[str, Traversable]:
    """The shipped templates by name, in name order."""
    folder = files("archspec") / "templates"
    return {p.name.removesuffix(".yaml"): p for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".yaml")}


def instantiate(text: str, params: dict[str, Any], name: str | None, limits: Limits = DEFAULT_LIMITS) -> str:
    """A template's text with ``params:`` defaults and ``name:`` replaced in place.

    Comments and layout are kept: each value is replaced where it is written. The
    result must pass ``check``.
    """
    from .api import check

    doc = load_text(text, "<template>", limits)
    declared = dict(doc.data.get("params") or {})
    for k in params:
        if k not in declared:
            raise SpecValidationError(f"the template has no param '{k}'{close_matches(k, declared)}",
                                      expected="one of: " + ", ".join(declared))
    edits: list[tuple[tuple[str | int, ...], str]] = [(("params", k), _yaml_scalar(v)) for k, v in params.items()]
    if name is not None:
        if not name.isidentifier():
            raise SpecValidationError(f"--name '{name}' is not an identifier", fix="use letters, digits and _",
                                      option="--name")
        edits.append((("name",), name))
    # Replace from the end so earlier positions stay valid.
    spans = sorted((_value_span(text, doc, path), new) for path, new in edits)
    for (start, end), new in reversed(spans):
        text = text[:start] + new + text[end:]
    check(text, limits=limits)
    return text


def _value_span(text: str, doc: Document, path: tuple[str | int, ...]) -> tuple[int, int]:
    """Character offsets of the scalar written at ``path`` (a plain scalar on one line)."""
    loc = doc.loc(path)
    assert loc is not None, f"the loader marks every value it read, {path} too"
    starts = [0]
    for line in re.split(r"(?<=\n)", text):  # YAML line breaks only, like the loader
        starts.append(starts[-1] + len(line))
    start = starts[loc.line - 1] + loc.col - 1
    value = doc.data
    for p in path:
        value = value[p]
    if isinstance(value, (list, dict)) and text[start:start + 1] not in "[{":
        raise SpecValidationError(f"cannot rewrite '{'.'.join(map(str, path))}' in place: its value spans several lines",
                                  fix="write the new spec without -p for it, then edit that value by hand")
    if text[start:start + 1] in ("[", "{"):  # a flow collection: up to its closing bracket
        depth, end = 0, start
        for end in range(start, len(text)):
            depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        return start, end + 1
    m = re.compile(r"\"[^\"]*\"|'[^']*'|[^,}\]#\n]*").match(text, start)
    end = m.end() if m else start
    while end > start and text[end - 1] in " \t":
        end -= 1
    return start, end


def _yaml_scalar(v: Any) -> str:
    """A value as YAML flow text (JSON is YAML): ``100``, ``"gelu"``, ``[3, 4]``, ``true``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)
