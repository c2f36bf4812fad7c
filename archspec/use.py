"""``use:``: finding, reading and confining the block files a spec uses.

A ``use:`` entry is a path relative to the top spec's folder (no absolute paths, no
``..``, no symlinks, the canonical path inside the folder) or ``archspec:NAME``, a block
file shipped in the package, named, never a path. Cycles, files used twice and nesting
past the limit are errors located at the ``use:`` entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import IncludeError, LimitError, close_matches
from .limits import Limits
from .loader import Document, load_file
from .spec import validate

PathT = tuple[str | int, ...]


def block_files(spec: Any, doc: Document, limits: Limits) -> list[tuple[Path, Any, Document]]:
    """Every block file a validated spec uses, directly or through other block files:
    ``(path, validated BlockFile, document)`` with each file after the files it uses,
    the order in which their blocks are defined."""
    out: list[tuple[Path, Any, Document]] = []
    seen_files: list[Path] = []
    root = Path(doc.file).resolve().parent if Path(doc.file).exists() else None

    def include(model: Any, d: Document, depth: int, chain: tuple[Path, ...]) -> None:
        for k, rel in enumerate(model.use):
            target = _library_file(rel, d, ("use", k)) if rel.startswith(LIBRARY_PREFIX) \
                else _safe_include(rel, d, ("use", k), root)
            if target in chain:
                cycle = " -> ".join(p.name for p in chain[chain.index(target):] + (target,))
                raise IncludeError(f"use: includes '{rel}' twice (an include cycle?): {cycle}", loc=d.loc(("use", k)),
                                   source=d.text,
                                   fix="a block file cannot include a file that includes it")
            if depth >= limits.max_include_depth:
                raise LimitError(f"use: files nest deeper than the limit of {limits.max_include_depth}",
                                 loc=d.loc(("use", k)), source=d.text,
                                 fix="raise the limit with --max-include-depth")
            if target in seen_files:
                raise IncludeError(f"use: includes '{rel}' twice (an include cycle?)", loc=d.loc(("use", k)),
                                   source=d.text, fix="include each block file once")
            seen_files.append(target)
            sub = _load_counted(target, rel, d, ("use", k), limits, used)
            inc = validate(sub, "BlockFile")
            include(inc, sub, depth + 1, (*chain, target))
            out.append((target, inc, sub))

    used = [len(doc.text.encode("utf-8", "surrogatepass")), len(doc.marks)]  # bytes, YAML values so far
    include(spec, doc, 0, (Path(doc.file).resolve(),) if root is not None else ())
    return out


def _load_counted(target: Path, rel: str, d: Document, sub: PathT, limits: Limits, used: list[int]) -> Document:
    """Load a ``use:`` file within what is left of the byte and YAML-value limits: the
    limits bound the spec and all its ``use:`` files together, not each file alone."""
    def over(what: str, limit: int, flag: str) -> LimitError:
        return LimitError(f"use: '{rel}' takes the spec and its use: files past {limit} {what} in all",
                          loc=d.loc(sub), source=d.text, fix=f"include fewer or smaller block files, or raise {flag}")

    try:
        size = target.stat().st_size
    except OSError:
        size = 0
    if used[0] + size > limits.max_bytes:
        raise over("bytes", limits.max_bytes, "--max-bytes")
    left = limits.replace(max_bytes=limits.max_bytes - used[0], max_yaml_nodes=limits.max_yaml_nodes - used[1])
    try:
        doc = load_file(target, left)
    except LimitError as e:
        if "bytes" in e.message:
            raise over("bytes", limits.max_bytes, "--max-bytes") from None
        if "YAML values" in e.message:
            raise over("YAML values", limits.max_yaml_nodes, "--max-yaml-nodes") from None
        raise
    used[0] += len(doc.text.encode("utf-8", "surrogatepass"))
    used[1] += len(doc.marks)
    return doc


LIBRARY_PREFIX = "archspec:"
LIBRARY = Path(__file__).resolve().parent / "library"


def library_names() -> list[str]:
    """The block files shipped with archspec (``use: [archspec:NAME]``)."""
    return sorted(p.stem for p in LIBRARY.glob("*.yaml"))


def _library_file(rel: str, d: Document, sub: PathT) -> Path:
    """``archspec:NAME`` — a block file shipped in the package, named, never a path."""
    name = rel[len(LIBRARY_PREFIX):]
    if name not in library_names():
        raise IncludeError(f"use: '{rel}' is not a block file shipped with archspec{close_matches(name, library_names())}",
                           loc=d.loc(sub), source=d.text,
                           expected="one of: " + ", ".join(LIBRARY_PREFIX + n for n in library_names()))
    return LIBRARY / f"{name}.yaml"


def _safe_include(rel: str, d: Document, sub: PathT, root: Path | None) -> Path:
    """A ``use:`` path, confined to the top spec's folder: no absolute paths, no ``..``,
    no symlinks, and the canonical path inside the folder."""
    def bad(why: str) -> IncludeError:
        return IncludeError(f"use: '{rel}' {why}", loc=d.loc(sub), source=d.text,
                            fix="keep block files in the spec's folder and name them relative to it")

    if root is None:
        raise bad("cannot be resolved: the spec was not loaded from a file")
    p = Path(rel)
    if p.is_absolute() or rel.startswith(("/", "\\")) or ":" in rel:
        raise bad("is an absolute path")
    if ".." in p.parts:
        raise bad("reaches outside the spec's folder ('..')")
    here = Path(d.file).resolve().parent
    cur = here
    for part in p.parts:
        cur = cur / part
        if cur.is_symlink():
            raise bad("goes through a symlink")
    target = (here / p).resolve()
    if not target.is_relative_to(root):
        raise bad("reaches outside the spec's folder")
    if not target.exists():
        raise bad("does not exist")
    if not target.is_file():  # a folder, a FIFO, a device: nothing to read blocks from
        raise bad("is not a regular file")
    return target


