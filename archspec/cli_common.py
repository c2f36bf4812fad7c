"""What the command-line modules share (cli.py and the experiment and training
commands): exit codes, error reports, the files a command read, number and table text."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .errors import ArchSpecError

EXIT_SPEC_ERROR = 2
EXIT_INTERNAL = 1


def report_error(e: ArchSpecError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"ok": False, **e.to_dict()}, indent=2))
    else:
        click.echo(e.render(), err=True)


def inputs_read(spec: Path, graph: Any, *more: Path | None) -> list[Path]:
    """Every file a command read (the spec, its ``use:`` files, weights): never an output."""
    return [spec, *map(Path, graph.files), *(p for p in more if p is not None)]


def _si(n: float) -> str:
    """``1.814 G``: three decimals and an SI prefix."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3f} {unit}"
    return str(int(n))


def _width() -> int | None:
    """The terminal's width, or a wide page when piped (so tables are not wrapped at 80)."""
    return None if sys.stdout.isatty() else 200


def _rf_text(f: Any) -> tuple[str, str]:
    from .analyse import fmt_stride

    if f is None:
        return "—", "—"
    if f.glob:
        return "global", "—"
    size = f.size if len(set(f.size)) > 1 else f.size[:1]
    stride = f.stride if len(set(f.stride)) > 1 else f.stride[:1]
    return "x".join(map(str, size)) or "—", "x".join(fmt_stride(s) for s in stride) or "—"


def console(*, wide_when_piped: bool = True) -> Any:
    """A rich Console for tables: it draws on :func:`~archspec.errors.terminal_stream`, so
    its own colours pass on a terminal; every cell from a spec goes through :func:`cell`.
    Piped, it is 200 columns wide (``wide_when_piped``) or rich's default."""
    from rich.console import Console

    from .errors import terminal_stream

    return Console(file=terminal_stream(), soft_wrap=True, width=_width() if wide_when_piped else None)


def cell(text: object) -> str:
    """Spec text (a name, a doc, a label) for a rich table or line: control characters
    written as escapes (:func:`~archspec.errors.terminal_safe`) and ``[`` not read as markup."""
    from rich.markup import escape

    from .errors import terminal_safe

    return escape(terminal_safe(str(text)))
