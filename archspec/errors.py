"""The one exception root of archspec, and source locations.

Every error archspec raises for a spec problem is an :class:`ArchSpecError`. It says
what went wrong, where (file:line:col and the spec path such as
``blocks.basic.nodes.add``), what was expected and what was found, and how to fix it
when that is known. :meth:`ArchSpecError.render` shows the source line with a caret.

>>> err = ShapeError("channels differ", loc=Loc("net.yaml", 3, 7), path="nodes.add")
>>> str(err)
'net.yaml:3:7: channels differ (at nodes.add)'
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO, overload


@dataclass(frozen=True, slots=True)
class Loc:
    """A position in a spec file; ``line`` and ``col`` count from 1."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ArchSpecError(Exception):
    """Root of every error about a spec.

    ``message`` says what is wrong; ``loc`` where in the YAML; ``path`` the dotted spec
    path; ``expected``/``got`` the two sides of a mismatch; ``fix`` what would mend it.
    ``option`` names the command-line option (``--expand``) whose value is wrong when
    the problem is in the command rather than the spec: the CLI shows a usage error.
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        loc: Loc | None = None,
        path: str | None = None,
        expected: str | None = None,
        got: str | None = None,
        fix: str | None = None,
        source: str | None = None,
        option: str | None = None,
    ) -> None:
        self.message = _clip(message)
        self.option = option
        self.loc = loc
        self.path = _clip(path)
        self.expected = _clip(expected)
        self.got = _clip(got)
        self.fix = _clip(fix)
        self.source = source  # the spec text, for the caret display
        self.others: list[ArchSpecError] = []  # further problems found in the same pass
        super().__init__(self.headline())

    @property
    def errors(self) -> list[ArchSpecError]:
        """Every problem found: this one first, then the others (each with its place)."""
        return [self, *self.others]

    def with_others(self, others: list[ArchSpecError]) -> ArchSpecError:
        """Attach the further problems found beside this one; returns ``self``."""
        self.others = [o for o in others if o is not self]
        return self

    def headline(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        at = f" (at {self.path})" if self.path else ""
        return f"{where}{self.message}{at}"

    def __str__(self) -> str:
        return self.headline()

    def located(self, loc: Loc | None, path: str | None = None, source: str | None = None) -> ArchSpecError:
        """Fill in a location the raiser did not know; keeps an existing one."""
        if self.loc is None and loc is not None:
            self.loc = loc
        if self.path is None and path is not None:
            self.path = path
        if self.source is None and source is not None:
            self.source = source
        self.args = (self.headline(),)
        return self

    def render(self) -> str:
        """The full report: headline, source line with a caret, expected/got, fix; then
        each further problem the same way."""
        return "\n".join([self._render_one(), *(o._render_one() for o in self.others)])

    def _render_one(self) -> str:
        lines = [f"{type(self).__name__}: {self.headline()}"]
        if self.loc is not None and self.source is not None:
            src = re.split(r"\r\n|\r|\n", self.source)  # YAML's line breaks, not str.splitlines()'s
            if 1 <= self.loc.line <= len(src):
                text, caret = _window(src[self.loc.line - 1], max(self.loc.col - 1, 0))
                gutter = f"{self.loc.line:>5} | "
                lines.append(gutter + text)
                lines.append(" " * (len(gutter) + caret) + "^")
        if self.expected is not None:
            lines.append(f"  expected: {self.expected}")
        if self.got is not None:
            lines.append(f"  got:      {self.got}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """This problem as JSON; ``errors`` lists every problem found (this one first)."""
        one = self._dict_one()
        return {**one, "errors": [one, *(o._dict_one() for o in self.others)]}

    def _dict_one(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "file": self.loc.file if self.loc else None,
            "line": self.loc.line if self.loc else None,
            "col": self.loc.col if self.loc else None,
            "path": self.path,
            "expected": self.expected,
            "got": self.got,
            "fix": self.fix,
        }


MAX_FIELD = 1000  # characters of one message field: a spec value never floods a terminal


@overload
def _clip(text: str) -> str: ...
@overload
def _clip(text: None) -> None: ...
def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_FIELD:
        return text
    return text[:MAX_FIELD] + f"… ({len(text) - MAX_FIELD} more characters)"


def _window(text: str, col: int, width: int = 120) -> tuple[str, int]:
    """A long source line cut to ``width`` characters around ``col``; the caret's new column."""
    if len(text) <= width:
        return text, col
    start = max(0, min(col - width // 2, len(text) - width))
    cut = text[start:start + width]
    head = "…" if start > 0 else ""
    tail = "…" if start + width < len(text) else ""
    return head + cut + tail, col - start + len(head)


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, never walking more of ``value``
    than that: a spec value in a message is bounded however large it is."""
    if isinstance(value, (list, tuple, dict)):
        items = list(value.items())[:limit // 2] if isinstance(value, dict) else list(value[:limit // 2])
        parts: list[str] = []
        used = 0
        for it in items:
            part = (short_repr(it[0], limit // 2) + ": " + short_repr(it[1], limit // 2)) if isinstance(value, dict) \
                else short_repr(it, limit // 2)
            parts.append(part)
            used += len(part) + 2
            if used > limit:
                break
        brackets: str = {list: "[]", tuple: "()", dict: "{}"}.get(type(value), "[]")
        open_, close = brackets[0], brackets[1]
        more = len(parts) < len(value)
        text = open_ + ", ".join(parts) + (", …" if more else "") + close
        return text if len(text) <= limit + 8 else text[:limit] + "…" + close
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + "…"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def fmt_int(n: int) -> str:
    """``str(n)`` for a number a person reads, ``about 10^N`` past 30 digits: never the
    thousands of digits (past Python's int-to-str limit) a product of sizes can reach."""
    if n.bit_length() <= 96:
        return str(n)
    return f"{'-' if n < 0 else ''}about 10^{int(abs(n).bit_length() * 0.30103)}"


class SpecSyntaxError(ArchSpecError):
    """The file is not valid YAML, or uses YAML that archspec refuses (tags, merge keys,
    duplicate keys)."""


class SpecFileError(ArchSpecError):
    """The spec file cannot be read: it does not exist, or is a folder or unreadable."""


class SpecValidationError(ArchSpecError):
    """The YAML is well formed but does not describe a valid spec (unknown field, wrong
    type, missing parameter)."""


class ExpressionError(SpecValidationError):
    """A ``$name`` or ``${...}`` expression is malformed or cannot be evaluated."""


class UnknownOpError(SpecValidationError):
    """An ``op:`` that the registry does not hold."""


class ShapeError(ArchSpecError):
    """Shapes that cannot flow through a node."""


class GraphError(ArchSpecError):
    """A problem with the graph's wiring: dangling references, cycles, duplicate names."""


class IncludeError(ArchSpecError):
    """A ``use:`` that is missing, cyclic, or reaches outside the spec's folder."""


class LimitError(ArchSpecError):
    """A size limit (file bytes, nesting, nodes, channels, parameters) was exceeded."""


class OutputError(ArchSpecError):
    """An output file could not be written safely."""


class WeightsError(ArchSpecError):
    """A state_dict does not match the compiled model."""


class OpDefinitionError(ArchSpecError):
    """An op class given to ``register_op`` is broken (its name, its ``Attrs``): a fault of
    the Python that defines the op, not of any spec. ``loc`` points at the class."""


class ExportError(ArchSpecError):
    """A checked graph that a chosen export format cannot write (a module or function
    with no standalone Python form): a limit of the format, not a fault of the spec."""


class UnsupportedModuleError(ArchSpecError):
    """A torch module (or function it calls) that no archspec op is, met while importing a
    module: names it, where it is in the module tree, and the ops that exist."""


class ImportTargetError(ArchSpecError):
    """What ``archspec import`` was asked to import is not a module it can build: a target
    that does not import, a constructor that fails, input shapes that do not fit."""


def close_matches(word: str, choices: Iterable[object]) -> str:
    """`` (did you mean 'conv'?)`` or the empty string."""
    import difflib

    matches = difflib.get_close_matches(word, sorted(str(c) for c in choices), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(f"'{m}'" for m in matches) + "?)"


# Characters a terminal acts on rather than shows: C0 controls but newline and tab (ESC
# starts colour, title and clipboard sequences; BEL rings; CR overwrites the line), DEL,
# C1 controls, line and paragraph separators, bidirectional overrides, lone surrogates.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def terminal_safe(text: str) -> str:
    """``text`` with every character a terminal would act on written as an escape
    (``\\x1b``, ``\\u202e``): nothing a spec says reaches a terminal raw."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)


# CSI sequences (colour, cursor moves, line erases) and CR: what rich writes for tables
# and progress bars on a terminal. On a terminal's stdout they pass; OSC (title,
# clipboard), DCS, BEL and every other control are escaped everywhere.
_CSI = re.compile("(\x1b\\[[0-?]*[ -/]*[@-~]|\r)")


class _SafeStream:
    """A text stream that escapes what :func:`terminal_safe` escapes; bytes pass through."""

    def __init__(self, stream: TextIO, allow_csi: bool = False) -> None:
        self._stream = stream
        self._allow_csi = allow_csi

    def write(self, text: str) -> int:
        if self._allow_csi and ("\x1b[" in text or "\r" in text) and self._isatty():
            parts = _CSI.split(text)
            self._stream.write("".join(p if k % 2 else terminal_safe(p) for k, p in enumerate(parts)))
        else:
            self._stream.write(terminal_safe(text))
        return len(text)

    def _isatty(self) -> bool:
        try:
            return bool(self._stream.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_terminal: list[TextIO] = []  # inside safe_streams(): the stream rich draws on (see terminal_stream)


@contextlib.contextmanager
def safe_streams() -> Iterator[None]:
    """Every line printed on stdout and stderr inside the block goes through
    :func:`terminal_safe` (the command line's commands run inside it).

    Text printed there is written as escapes whatever it holds, so spec text (a name, a
    doc) never reaches a terminal raw. rich draws tables and progress bars with CSI
    sequences of its own: it writes to :func:`terminal_stream`, where on a terminal CSI
    passes, and every piece of spec text it draws is escaped where it is produced
    (``cli_common.cell``)."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _SafeStream(out), _SafeStream(err)
    _terminal.append(_SafeStream(out, allow_csi=True))  # type: ignore[arg-type]  # a TextIO by duck typing
    try:
        yield
    finally:
        _terminal.pop()
        sys.stdout, sys.stderr = out, err


def terminal_stream() -> TextIO:
    """The stream rich's Console draws on: inside :func:`safe_streams`, stdout with CSI
    sequences passing on a terminal (OSC, BEL and other controls still escaped); outside
    it, ``sys.stdout``. Only text already escaped with :func:`terminal_safe` may be
    written here."""
    return _terminal[-1] if _terminal else sys.stdout
