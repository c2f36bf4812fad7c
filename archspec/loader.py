"""Hardened YAML loading that keeps file:line:col for every value.

Specs are shared and downloaded, so the loader assumes they are hostile:

- PyYAML's pure-Python composer (LibYAML's C composer segfaults on deep nesting), fed
  by LibYAML's event parser where it is installed and the text is one the pure-Python
  reader accepts (every error is parsed again by the pure-Python parser, which words
  it); composing to nodes only, never constructing Python objects from tags;
- core tags only (``!!str``, ``!!int``, ...); ``!!python/*`` and every other tag refused;
- no merge keys (``<<``); duplicate keys rejected with both lines named;
- YAML 1.2 core-schema scalars: ``true``/``false`` are booleans, ``no``/``on``/``yes``
  stay strings, ``1e3`` is a float, dates stay strings;
- nesting depth, number of expanded nodes (alias bombs), file size and integer length
  bounded before anything walks the tree.

The result is a :class:`Document`: plain Python data (dict, list, str, int, float, bool,
None) plus a table from each value's path to its :class:`~archspec.errors.Loc`.
"""

from __future__ import annotations

import copy
import math
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from .errors import LimitError, Loc, SpecFileError, SpecSyntaxError
from .limits import DEFAULT_LIMITS, Limits  # also importable from here, as before

PathT = tuple[str | int, ...]



_PLAIN = "archspec:plain"  # tag the resolver gives untagged plain scalars
_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


class _Resolver(BaseResolver):
    """Resolves nothing implicitly: plain scalars are typed later by the YAML 1.2 rules."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)


class _Composing(Composer, _Resolver):
    """PyYAML's composer (Python: its recursion is bounded here), with a depth bound."""

    _depth: int
    _max_depth: int
    peek_event: Callable[[], Any]  # the parser's, beside this in the loader class
    check_event: Callable[..., bool]

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        if self._depth > self._max_depth:
            mark = self.peek_event().start_mark
            raise LimitError(
                f"YAML nesting is deeper than {self._max_depth} levels",
                loc=Loc("", mark.line + 1, mark.column + 1),
                fix="flatten the structure, or raise the limit with --max-depth",
            )
        try:
            if index is None and isinstance(parent, MappingNode) and self.check_event(AliasEvent):
                # An alias as a key: a copy marked where the alias is, so an error about
                # the key points at it, not at the anchor.
                mark = self.peek_event().start_mark
                node = copy.copy(super().compose_node(parent, index))  # type: ignore[arg-type]  # PyYAML passes None for a key
                if node is not None:
                    node.start_mark = mark
                return node
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Loader(Reader, Scanner, Parser, _Composing):
    """Reader → scanner → parser → composer, all pure Python: the reference, and the
    path that words every error."""

    def __init__(self, stream: str, max_depth: int) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Resolver.__init__(self)
        self._depth = 0
        self._max_depth = max_depth


def _libyaml_parser() -> Any:
    try:
        from yaml import cyaml
    except ImportError:  # PyYAML built without LibYAML
        return None
    return getattr(cyaml, "CParser", None)


_CParser: Any = _libyaml_parser()
_NON_PRINTABLE = Reader.NON_PRINTABLE


def _fast_loader(stream: str, max_depth: int) -> Any:
    """LibYAML's event parser (C, about 5x faster; its state stack is on the heap, so no
    nesting overflows it) under the same Python composer, or None without LibYAML. Only
    text the pure-Python reader accepts comes here, and any error is parsed again by the
    pure-Python loader, so messages, marks and limits are the reference loader's."""
    if _CParser is None:
        return None

    class _CLoader(_Composing, _CParser):
        def __init__(self) -> None:
            _CParser.__init__(self, stream)
            Composer.__init__(self)
            _Resolver.__init__(self)
            self._depth = 0
            self._max_depth = max_depth

    return _CLoader()


@dataclass
class Document:
    """Loaded YAML: plain data, and where each value (and each mapping key) came from."""

    data: Any
    file: str
    text: str
    marks: dict[PathT, Loc] = field(default_factory=dict)
    key_marks: dict[PathT, Loc] = field(default_factory=dict)

    def loc(self, path: PathT, *, key: bool = False) -> Loc | None:
        """The location of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        if key and p in self.key_marks:
            return self.key_marks[p]
        while p:
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get(())


def load_text(text: str, file: str = "<string>", limits: Limits = DEFAULT_LIMITS) -> Document:
    """Parse one YAML document safely. Raises SpecSyntaxError or LimitError."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise LimitError(f"spec is {size} bytes, more than the limit of {limits.max_bytes}",
                         loc=Loc(file, 1, 1), fix="raise the limit with --max-bytes")
    parsed, restore = _yaml12_breaks(text)
    root = _compose_fast(parsed, limits.max_depth)
    if root is not None:
        doc = Document(data=None, file=file, text=text)
        try:
            doc.data = _Builder(doc, limits, restore).build(root, ())
            return doc
        except (SpecSyntaxError, LimitError, RecursionError):
            pass  # the reference path below finds the problem again and words it
    loader: _Loader | None = None
    try:
        loader = _Loader(parsed, limits.max_depth)
        root = loader.get_single_node()
    except LimitError as e:
        assert e.loc is not None
        e.loc = Loc(file, e.loc.line, e.loc.col)
        raise e.located(e.loc, source=text) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Loc(file, mark.line + 1, mark.column + 1) if mark else Loc(file, 1, 1)
        problem = e.problem or e.context or "invalid YAML"
        if e.context and e.problem and e.problem.startswith("but "):  # "expected X" + "but found Y"
            problem, ctx = f"{e.context}, {e.problem}", ""
        else:
            ctx = f" ({e.context})" if e.context and e.problem else ""
        raise SpecSyntaxError(f"YAML syntax error: {problem}{ctx}", loc=loc, source=text,
                              fix=_syntax_hint(text, loc.line, problem)) from None
    except yaml.YAMLError as e:  # reader errors (bad characters) carry a position too
        pos = getattr(e, "position", None)
        line, col = _line_col(text, pos) if isinstance(pos, int) else (1, 1)
        ch = getattr(e, "character", None)
        ch = ord(ch) if isinstance(ch, str) and len(ch) == 1 else ch
        reason = (f"special characters are not allowed: U+{ch:04X} is a control character" if isinstance(ch, int)
                  else getattr(e, "reason", None) or str(e))
        raise SpecSyntaxError(f"YAML error: {reason}", loc=Loc(file, line, col), source=text) from None
    except RecursionError:
        raise LimitError("YAML nesting is too deep to parse", loc=Loc(file, 1, 1), source=text) from None
    finally:
        if loader is not None:
            loader.dispose()
    doc = Document(data=None, file=file, text=text)
    if root is None:
        raise SpecSyntaxError("the spec is empty", loc=Loc(file, 1, 1), source=text)
    try:
        doc.data = _Builder(doc, limits, restore).build(root, ())
    except RecursionError:  # only reachable when --max-depth is raised past Python's stack
        raise LimitError("YAML nesting is too deep to walk", loc=Loc(file, 1, 1), source=text,
                         fix="lower --max-depth") from None
    return doc


# Where LibYAML and PyYAML differ (found by a differential fuzzer): LibYAML accepts a tab
# as separation (``a:\tb``) and ``?`` key indicators where PyYAML does not, and marks an
# empty flow value (``{a: , b: 1}``) one column later. Text that may hold any of these
# (any tab, any ``?``) takes the reference path; so does every error, including the
# builder's (LibYAML reads some tags differently).
_EMPTY_FLOW_VALUE = re.compile(r"[:,]\s*[,}\]]")


def _compose_fast(text: str, max_depth: int) -> Node | None:
    """The composed document by LibYAML's parser, or None: no LibYAML, text the Python
    reader would refuse (a control character, a byte-order mark) or that may hold a
    construct where LibYAML is laxer, an empty document, or
    any error (the pure-Python loader then parses it again and words the error)."""
    if text.startswith("\ufeff") or "\t" in text or "?" in text or _NON_PRINTABLE.search(text) \
            or _EMPTY_FLOW_VALUE.search(text):
        return None
    loader = _fast_loader(text, max_depth)
    if loader is None:
        return None
    try:
        root: Node | None = loader.get_single_node()
        return root
    except (yaml.YAMLError, LimitError, RecursionError):
        return None
    finally:
        loader.dispose()


_YAML11_BREAKS = "\x85\u2028\u2029"


def _yaml12_breaks(text: str) -> tuple[str, dict[int, str]]:
    """YAML 1.2 breaks lines only at CR and LF; PyYAML (YAML 1.1) also at U+0085, U+2028
    and U+2029, which would end a comment early and count lines differently from an
    editor. They are parsed as private-use stand-ins (one character each, so columns
    hold) and put back in every scalar; the table maps the stand-ins back."""
    if not any(c in text for c in _YAML11_BREAKS):
        return text, {}
    used = set(text)
    stand = [c for c in map(chr, range(0xE000, 0xF8FF)) if c not in used][:3]
    there = {ord(a): b for a, b in zip(_YAML11_BREAKS, stand, strict=True)}
    return text.translate(there), {ord(b): a for a, b in zip(_YAML11_BREAKS, stand, strict=True)}


def _syntax_hint(text: str, line: int, problem: str) -> str | None:
    """A fix for the YAML mistakes spec authors make most."""
    lines = re.split(r"\r\n|\r|\n", text)
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    if "'\\t'" in problem or "\t" in src[: len(src) - len(src.lstrip())]:
        return "indent with spaces: YAML does not allow tabs"
    if "${" in src and "{" in src.split("${")[0]:
        return 'quote expressions inside {...}: write out: "${2 * width}", not out: ${2 * width}'
    if "] ->" in src:
        return "write an edge from several nodes as 'a, b -> c'; '[a, b] -> c' is not valid YAML"
    return None


def load_file(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Document:
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise SpecFileError(f"file not found: '{path}'", fix="check the path; `archspec check -` reads stdin") from None
    except OSError as e:
        raise SpecFileError(f"cannot read spec '{path}': {e.strerror}") from None
    if size > limits.max_bytes:
        raise LimitError(f"spec is {size} bytes, more than the limit of {limits.max_bytes}",
                         loc=Loc(str(path), 1, 1), fix="raise the limit with --max-bytes")
    try:
        # Read no more than the limit: stat() says nothing for a FIFO or /dev/zero, and a
        # file may grow after it.
        # O_NONBLOCK: opening a FIFO waits for a writer; the open returns at once and a
        # FIFO, a device or a folder is then refused before a byte is read.
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SpecSyntaxError(f"cannot read spec '{path}': it is not a regular file",
                                      loc=Loc(str(path), 1, 1), fix="give the path of a .yaml file")
            raw = f.read(limits.max_bytes + 1)
        if len(raw) > limits.max_bytes:
            raise LimitError(f"spec is more than the limit of {limits.max_bytes} bytes", loc=Loc(str(path), 1, 1),
                             fix="raise the limit with --max-bytes")
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        before = raw[: e.start].decode("utf-8", "replace")
        line, col = _line_col(before, len(before))
        raise SpecSyntaxError("spec is not valid UTF-8", loc=Loc(str(path), line, col)) from None
    except OSError as e:
        raise SpecFileError(f"cannot read spec '{path}': {e.strerror}") from None
    return load_text(text, str(path), limits)


def _line_col(text: str, pos: int) -> tuple[int, int]:
    before = text[:pos]
    return before.count("\n") + 1, pos - (before.rfind("\n") + 1) + 1


class _Builder:
    """Walks composed nodes into plain data, counting every visit (alias bombs)."""

    def __init__(self, doc: Document, limits: Limits, restore: dict[int, str] | None = None) -> None:
        self.doc = doc
        self.limits = limits
        self.count = 0
        self.restore = restore or {}

    def loc(self, node: Node) -> Loc:
        return Loc(self.doc.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, cls: type[SpecSyntaxError] | type[LimitError], msg: str, node: Node, **kw: Any) -> Exception:
        return cls(msg, loc=self.loc(node), source=self.doc.text, **kw)

    def enter(self, node: Node, depth: int) -> str:
        """Count ``node`` against the limits and check its tag; the tag."""
        self.count += 1
        if self.count > self.limits.max_yaml_nodes:
            raise self.error(LimitError, f"the spec expands to more than {self.limits.max_yaml_nodes} YAML values "
                             "(aliases are expanded when counted)", node,
                             fix="do not nest aliases of aliases; raise the limit with --max-yaml-nodes")
        if depth > self.limits.max_depth:
            raise self.error(LimitError, f"YAML nesting is deeper than {self.limits.max_depth} levels "
                             "(a recursive alias?)", node)
        tag: str = node.tag
        if tag != _PLAIN and tag not in _ALLOWED_TAGS:
            raise self.error(SpecSyntaxError, f"YAML tag '{tag}' is not allowed", node,
                             fix="specs use plain YAML only: remove the tag")
        return tag

    def build(self, node: Node, path: PathT, depth: int = 0) -> Any:
        tag = self.enter(node, depth)
        if path not in self.doc.marks:
            self.doc.marks[path] = self.loc(node)
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            if tag not in (_CORE + "seq",):
                raise self.error(SpecSyntaxError, f"tag '{tag}' cannot be a sequence", node)
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, MappingNode)
        if tag not in (_CORE + "map",):
            raise self.error(SpecSyntaxError, f"tag '{tag}' cannot be a mapping", node)
        out: dict[str | int, Any] = {}
        key_lines: dict[str | int, Node] = {}
        for knode, vnode in node.value:
            if knode.tag == _CORE + "merge" or (isinstance(knode, ScalarNode) and knode.value == "<<" and knode.tag == _PLAIN):
                raise self.error(SpecSyntaxError, "YAML merge keys ('<<') are not allowed", knode,
                                 fix="write the keys out, or use a block with params for reuse")
            if not isinstance(knode, ScalarNode):
                raise self.error(SpecSyntaxError, "mapping keys must be plain strings", knode)
            self.enter(knode, depth + 1)
            key = self.scalar(knode)
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise self.error(SpecSyntaxError, f"mapping key {knode.value!r} must be a string or an integer", knode)
            if key in key_lines:
                first = key_lines[key].start_mark.line + 1
                raise self.error(SpecSyntaxError, f"duplicate key '{key}' (first defined on line {first})", knode,
                                 fix="keep one of the two; YAML would silently keep the last")
            key_lines[key] = knode
            self.doc.key_marks[path + (key,)] = self.loc(knode)
            out[key] = self.build(vnode, path + (key,), depth + 1)
        return out

    def scalar(self, node: ScalarNode) -> Any:
        v: str = node.value.translate(self.restore) if self.restore else node.value
        if len(v) > self.limits.max_string:
            raise self.error(LimitError, f"string of {len(v)} characters is longer than the limit of {self.limits.max_string}",
                             node, fix="raise the limit with --max-string")
        tag = node.tag
        if tag == _CORE + "str":
            return v
        if tag == _PLAIN:
            if _NULL.match(v):
                return None
            if v in _BOOL:
                return _BOOL[v]
            if _INT.match(v) or _INT_OCT.match(v) or _INT_HEX.match(v):
                return self.integer(v, node)
            if _FLOAT.match(v):
                return self.real(v, node)
            if _INF.match(v):
                return -math.inf if v.startswith("-") else math.inf
            if _NAN.match(v):
                return math.nan
            return v
        # explicitly tagged scalars
        if tag == _CORE + "null":
            if not _NULL.match(v):
                raise self.error(SpecSyntaxError, f"!!null value {v!r} is not null", node)
            return None
        if tag == _CORE + "bool":
            if v not in _BOOL:
                raise self.error(SpecSyntaxError, f"!!bool value {v!r} is not true or false", node)
            return _BOOL[v]
        if tag == _CORE + "int":
            if not (_INT.match(v) or _INT_OCT.match(v) or _INT_HEX.match(v)):
                raise self.error(SpecSyntaxError, f"!!int value {v!r} is not an integer", node)
            return self.integer(v, node)
        if tag == _CORE + "float":
            if not (_FLOAT.match(v) or _INF.match(v) or _NAN.match(v)):
                raise self.error(SpecSyntaxError, f"!!float value {v!r} is not a number", node)
            return float(v.replace(".inf", "inf").replace(".Inf", "inf").replace(".INF", "inf").replace(".nan", "nan").replace(".NaN", "nan").replace(".NAN", "nan"))
        raise self.error(SpecSyntaxError, f"tag '{tag}' cannot be a scalar", node)

    def integer(self, v: str, node: ScalarNode) -> int:
        digits = len(v.lstrip("+-"))
        if digits > self.limits.max_int_digits:
            raise self.error(LimitError, f"integer of {digits} digits is longer than the limit of {self.limits.max_int_digits}", node)
        if v.startswith("0o"):
            return int(v[2:], 8)
        if v.startswith("0x"):
            return int(v[2:], 16)
        return int(v)

    def real(self, v: str, node: ScalarNode) -> float:
        if len(v) > 64:
            raise self.error(LimitError, f"number of {len(v)} characters is longer than the limit of 64", node)
        return float(v)
