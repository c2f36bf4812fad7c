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

from dataclasses import dataclass


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
    ) -> None:
        self.message = message
        self.loc = loc
        self.path = path
        self.expected = expected
        self.got = got
        self.fix = fix
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
            src = self.source.splitlines()
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


def _window(text: str, col: int, width: int = 120) -> tuple[str, int]:
    """A long source line cut to ``width`` characters around ``col``; the caret's new column."""
    if len(text) <= width:
        return text, col
    start = max(0, min(col - width // 2, len(text) - width))
    cut = text[start:start + width]
    head = "…" if start > 0 else ""
    tail = "…" if start + width < len(text) else ""
    return head + cut + tail, col - start + len(head)


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


def close_matches(word: str, choices: object) -> str:
    """`` (did you mean 'conv'?)`` or the empty string."""
    import difflib

    matches = difflib.get_close_matches(word, sorted(str(c) for c in choices), n=3, cutoff=0.6)  # type: ignore[attr-defined]
    if not matches:
        return ""
    return " (did you mean " + " or ".join(f"'{m}'" for m in matches) + "?)"
