"""The documentation pages, wherever archspec is installed: ``archspec docs TOPIC``.

The pages in the repository's ``docs/`` ship inside the wheel as ``archspec/docs/``; in a
source checkout (an editable install) they are read from ``docs/`` beside the package.
Error messages point here (``archspec docs ops``) so that every hint can be followed
without the repository.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ArchSpecError, close_matches


def folder() -> Path | None:
    """The folder holding the pages: the wheel's ``archspec/docs``, else the checkout's ``docs``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "docs", here.parent / "docs"):
        if (candidate / "spec-format.md").is_file():
            return candidate
    return None


def topics() -> list[str]:
    """The page names: ``spec-format``, ``ops``, ``cli``, ..."""
    where = folder()
    return sorted(p.stem for p in where.glob("*.md")) if where is not None else []


def page(topic: str) -> str:
    """The text (Markdown) of one page; ``topic`` may carry ``.md``."""
    name = topic.removesuffix(".md").removeprefix("docs/")
    if name not in topics():
        raise ArchSpecError(f"no documentation page '{topic}'{close_matches(name, topics())}",
                            expected="one of: " + ", ".join(topics()), fix="run `archspec docs` for the list")
    where = folder()
    assert where is not None  # topics() found pages there
    return (where / f"{name}.md").read_text(encoding="utf-8")


def title(topic: str) -> str:
    """A page's first heading, without its ``#``."""
    for line in page(topic).splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip().strip("`")
    return topic
