"""Expand: a validated spec becomes a flat :class:`~archspec.ir.Graph`.

Blocks are inlined under their instance's scope (``layer2.0.conv1``), repeats unrolled,
groups flattened, expressions evaluated, op attributes checked against each op's strict
model, references resolved to node names, ``when: false`` nodes turned into identity
and ``share:`` nodes pointed at their owner's module. Nodes come out in topological
order, in spec order wherever the wiring allows.
"""

from __future__ import annotations

import dataclasses
import keyword
import math
import re
from collections import ChainMap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import (
    ArchSpecError,
    ExpressionError,
    GraphError,
    LimitError,
    Loc,
    ShapeError,
    SpecValidationError,
    close_matches,
    fmt_int,
    short_repr,
)
from ..expr import evaluate, evaluate_value, has_expr, work_budget
from ..findings import spec_findings
from ..frozen import value_key
from ..ir import Graph, Node, Scope, Shape
from ..limits import DEFAULT_LIMITS, Limits
from ..loader import Document
from ..names import IDENT as _IDENT
from ..names import INDEXED as _INDEXED
from ..names import MODULE_ATTRS, name_problem
from ..ops import REGISTRY, Op, OpAttrs
from ..ops.base import frozen_attrs
from ..spec import validate
from ..use import block_files
from .infer import shape_rule

PathT = tuple[str | int, ...]

_SCOPE_INPUT = "$__scope_input__"  # marks "the scope's input" in a node's raw inputs
# Stands for an optional block input the call left out (followed by the input's name), and
# for a node that is then absent: nodes reading it drop it.
_MISSING = "$__missing__:"
_WORD = re.compile(r"\w+")


def _missing(ref: str) -> bool:
    return ref.startswith(_MISSING)


@dataclass
class _BlockDef:
    model: Any
    doc: Document
    path: PathT  # spec path of the block, e.g. ("blocks", "basic")


@dataclass
class _Ctx:
    limits: Limits
    params: dict[str, Any]
    defaults: dict[str, dict[str, Any]]
    blocks: dict[str, _BlockDef]
    nodes: list[Node] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    stack: list[str] = field(default_factory=list)  # blocks being expanded (recursion)
    calls: dict[str, tuple[Any, Mapping[str, Any], PathT, Document]] = field(default_factory=dict)
    share: tuple[str, str] | None = None  # (new prefix, owner prefix) while expanding a shared block
    order: int = 0
    by_name: dict[str, Node] = field(default_factory=dict)
    # Every addressable path (a node, group, block call, repeat or repeat instance, as
    # `encoder.layer2.1`) -> the IR name of its output: what dotted references resolve to.
    named: dict[str, str] = field(default_factory=dict)
    # Inference run alongside expansion, on demand: the shapes of ctx.nodes[:inferred]
    # (and of the graph inputs), the error behind every shape that could not be inferred.
    shapes: dict[str, Shape | None] = field(default_factory=dict)
    failed: dict[str, ArchSpecError] = field(default_factory=dict)
    inferred: int = 0
    reads: dict[str, None] = field(default_factory=dict)  # Graph.reads_shapes, in order
    multi: dict[str, int] = field(default_factory=dict)  # multi-output node -> its number of outputs
    plans: dict[tuple[Any, ...], _Plan] = field(default_factory=dict)  # each scope definition's, once
    # Validated op attributes by node definition (when no value is an expression) or by
    # (op, evaluated values): a block called many times validates each distinct node once.
    attrs: dict[Any, tuple[Any, OpAttrs]] = field(default_factory=dict)
    # Block instances that a later call may copy (None: expanded, not copyable), by what
    # determines an instance's expansion (see _reuse_key); the keys written to `named` and
    # `calls`, in order, and how many shapes expansion has asked for: what an instance added.
    reuse: dict[tuple[Any, ...], _Instance | None] = field(default_factory=dict)
    named_log: list[str] = field(default_factory=list)
    calls_log: list[str] = field(default_factory=list)
    shape_reads: int = 0
    reads_index: dict[str, bool] = field(default_factory=dict)  # block -> its expressions may read i or n
    source: str | None = None

    def shape(self, name: str) -> Shape:
        """The per-sample shape of node or input ``name``, already expanded; inference
        catches up with expansion as far as needed, with the infer pass's rules."""
        self.shape_reads += 1
        while name not in self.shapes and self.inferred < len(self.nodes):
            n = self.nodes[self.inferred]
            self.inferred += 1
            self.shapes[n.name] = self._infer(n)
        shape = self.shapes.get(name)
        if shape is None:
            raise self.failed[name]
        return shape

    def _infer(self, n: Node) -> Shape | None:
        ins: list[Shape] = []
        for i in n.inputs:
            s = self.shapes.get(i)
            if s is None:
                self.failed[n.name] = self.failed[i]
                return None
            ins.append(s)
        try:
            return shape_rule(n, ins)
        except ArchSpecError as e:
            if REGISTRY.get(n.op).projectable and len({len(x) for x in ins}) == 1:
                return ins[0]  # as infer: the project pass maps every input onto input 0
            e.message = f"node '{n.name}' ({n.op}): {e.message}"
            self.failed[n.name] = e.located(n.loc, n.path, self.source)
            return None

    def name(self, path: str, ir: str) -> None:
        """``path`` (a node, group, block call or repeat instance) names ``ir``'s output."""
        self.named[path] = ir
        self.named_log.append(path)

    def add(self, node: Node) -> None:
        if len(self.nodes) >= self.limits.max_nodes:
            raise LimitError(f"the spec expands to more than {self.limits.max_nodes} nodes",
                             loc=node.loc, path=node.path, fix="reduce repeat counts, or raise the limit with --max-nodes")
        self.nodes.append(node)
        self.by_name.setdefault(node.name, node)


@dataclass
class _Scope:
    """Names visible while expanding one scope's nodes."""

    prefix: str  # "layer1.0." or ""
    doc: Document
    path: PathT
    env: Mapping[str, Any]  # expression names (never mutated: scopes share them through ChainMap)
    outer: Mapping[str, str]  # names from outside: scope inputs, enclosing scope's nodes
    local: dict[str, str] = field(default_factory=dict)  # local node -> IR name of its output
    instances: dict[str, list[str]] = field(default_factory=dict)  # repeat -> instance outputs
    # Where a dotted reference (`encoder.layer2`) is looked up, innermost first: this scope's
    # prefix, then the enclosing groups' up to the block body or the spec (blocks see no further).
    roots: tuple[str, ...] = ("",)
    named: dict[str, str] = field(default_factory=dict)  # the expansion's _Ctx.named, shared

    def loc(self, *sub: str | int, key: bool = False) -> Loc | None:
        return self.doc.loc(self.path + sub, key=key)

    def err(self, cls: type[ArchSpecError], msg: str, *sub: str | int, key: bool = False, **kw: Any) -> ArchSpecError:
        return cls(msg, loc=self.loc(*sub, key=key), path=".".join(map(str, self.path + sub)),
                   source=self.doc.text, **kw)


def expand(doc: Document, params: Mapping[str, Any] | None = None, limits: Limits = DEFAULT_LIMITS,
           spec: Any = None, inputs: Mapping[str, Shape] | None = None) -> Graph:
    """Validate and expand a loaded spec into a Graph. ``inputs`` replaces some of the
    spec's input shapes (before expansion: a block's expressions may read them)."""
    with work_budget():  # every expression of the spec shares one bound on the work they do
        return _expand(doc, params, limits, spec, inputs)


def _expand(doc: Document, params: Mapping[str, Any] | None, limits: Limits, spec: Any,
            override: Mapping[str, Shape] | None = None) -> Graph:
    _check_overrides(params, limits)
    spec = spec if spec is not None else validate(doc)
    top = _Scope(prefix="", doc=doc, path=(), env={}, outer={})
    # Symbolic input sizes (`x: [3, H, W]`, H not a param) take their value from `params`
    # (-p H=224); they are not params, so expressions cannot see them.
    symbolic = {d for dims in spec.inputs.values() for d in dims if isinstance(d, str) and d not in spec.params}
    sizes = {k: v for k, v in (params or {}).items() if k in symbolic}
    resolved = _resolve_params(spec, {k: v for k, v in (params or {}).items() if k not in symbolic}, top)
    _check_asserts(spec, resolved, top)
    blocks, files = _collect_blocks(spec, doc, limits)
    defaults = {op: m.model_dump(exclude_none=True) for op in REGISTRY.names()
                if (m := getattr(spec.defaults, op, None)) is not None}
    ctx = _Ctx(limits=limits, params=resolved, defaults=defaults, blocks=blocks)
    top.named = ctx.named

    inputs: dict[str, tuple[int, ...]] = {}
    input_locs: dict[str, Loc] = {}
    for name, dims in spec.inputs.items():
        _check_name(top, name, ("inputs", name))
        shape = []
        for k, d in enumerate(dims):
            if isinstance(d, str):
                if d not in resolved and d not in sizes:
                    raise top.err(SpecValidationError, f"input '{name}' has symbolic size '{d}' with no value",
                                  "inputs", name, k,
                                  fix=f"pass -p {d}=<size> (`archspec check` lists the sizes that work), "
                                      f"declare '{d}' under params:, or give a number")
                d = resolved[d] if d in resolved else sizes[d]
                if not isinstance(d, int) or isinstance(d, bool) or d < 1:
                    raise top.err(SpecValidationError, f"input size '{dims[k]}' must be a positive int, got {short_repr(d)}",
                                  "inputs", name, k)
            shape.append(d)
        _check_elements(top, shape, ("inputs", name), limits)
        inputs[name] = tuple(shape)
        input_locs[name] = top.loc("inputs", name) or Loc(doc.file, 1, 1)

    if override:
        inputs.update({k: tuple(v) for k, v in override.items()})
    ctx.shapes = dict(inputs)
    ctx.source = doc.text
    top.env = dict(resolved)
    top.outer = {n: n for n in inputs}
    default_input = next(iter(inputs)) if len(inputs) == 1 else None
    _expand_scope(ctx, top, spec.nodes, spec.edges, ("nodes",), default_input, output=None, named="nodes")

    keys: tuple[str, ...] | None = None
    if isinstance(spec.outputs, dict):  # {out: head}: the module returns a dict
        keys = tuple(spec.outputs)
        outs: list[tuple[str, PathT]] = [(ref, ("outputs", key)) for key, ref in spec.outputs.items()]
    elif isinstance(spec.outputs, str):
        outs = [(spec.outputs, ("outputs",))]
    else:
        outs = [(ref, ("outputs", k)) for k, ref in enumerate(spec.outputs)]
    outputs: list[str] = []
    output_locs: dict[str, Loc] = {}
    for ref, sub in outs:
        ir = _resolve(top, ref, sub)
        if ir in ctx.multi:
            raise top.err(GraphError, f"output '{ref}' has {ctx.multi[ir]} outputs: pick one ({ref}.0, ...)", *sub,
                          fix="list each output you want: outputs: [name.0, name.1]")
        if _missing(ir):
            raise top.err(GraphError, f"output '{ref}' is missing: it passes on an optional input that a call "
                          "leaves out", *sub, fix="name a node that is always computed")
        outputs.append(ir)
        output_locs[ir] = top.loc(*sub) or Loc(doc.file, 1, 1)
    if not outputs:
        raise top.err(SpecValidationError, "outputs: lists no node", "outputs", fix="name at least one node")

    order = _toposort(ctx.nodes, set(inputs), doc)
    init = spec.init.model_dump()
    init["projection"] = spec.defaults.projection.model_dump()
    graph = Graph(name=spec.name, inputs=inputs, nodes=order, outputs=tuple(outputs), scopes=tuple(ctx.scopes),
                 doc=spec.doc, file=doc.file, source=doc.text, params=resolved, init=init,
                 input_locs=input_locs, output_locs=output_locs, output_keys=keys,
                 reads_shapes=tuple(ctx.reads),
                 files=tuple(str(f) for f in ([Path(doc.file)] if _is_file(doc.file) else []) + files))
    return graph.replace(warnings=tuple(spec_findings(graph, doc.loc)))


def _check_overrides(params: Any, limits: Limits) -> None:
    """Params given from Python (or -p) hold what a spec could: a mapping with str keys
    of YAML-like values, within the spec limits on digits, string length, nesting and
    count. Anything else is one error before it is walked."""
    if params is None:
        return
    if not isinstance(params, Mapping):
        raise SpecValidationError(f"params must be a mapping of names to values, got {type(params).__name__}",
                                  fix="pass params={'width': 64}")
    count = 0
    todo: list[tuple[Any, str, int]] = []
    for k, v in params.items():
        if not isinstance(k, str):
            raise SpecValidationError(f"param names must be strings, got {short_repr(k)}", fix="pass params={'width': 64}")
        todo.append((v, k, 1))
    while todo:
        v, where, depth = todo.pop()
        count += 1
        if count > limits.max_yaml_nodes:
            raise LimitError(f"params hold more than {limits.max_yaml_nodes} values", fix="raise --max-yaml-nodes")
        if depth > limits.max_depth:
            raise LimitError(f"param '{where.split('.')[0]}' nests deeper than {limits.max_depth} levels",
                             fix="flatten it, or raise --max-depth")
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            if v.bit_length() > 4 * limits.max_int_digits or len(str(abs(v))) > limits.max_int_digits:
                raise LimitError(f"param '{where}' is an integer of more than {limits.max_int_digits} digits",
                                 fix="raise --max-int-digits")
        elif isinstance(v, float):
            continue
        elif isinstance(v, str):
            if len(v) > limits.max_string:
                raise LimitError(f"param '{where}' is a string of {len(v)} characters, longer than the limit of "
                                 f"{limits.max_string}", fix="raise --max-string")
        elif isinstance(v, (list, tuple)):
            todo.extend((x, f"{where}.{i}", depth + 1) for i, x in enumerate(v))
        elif isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise SpecValidationError(f"param '{where}' has a key {short_repr(k)}: keys are strings or integers")
                todo.append((x, f"{where}.{k}", depth + 1))
        else:
            raise SpecValidationError(f"param '{where}' is a {type(v).__name__}: params are numbers, strings, "
                                      "booleans, null, lists and mappings", got=short_repr(v))


def _is_file(name: str) -> bool:
    try:
        return Path(name).is_file()
    except (OSError, ValueError):  # a name that is no path: too long, a NUL
        return False


# -- params, blocks, includes -----------------------------------------------------------

def _resolve_params(spec: Any, overrides: Mapping[str, Any], top: _Scope) -> dict[str, Any]:
    declared = dict(spec.params)
    for k, v in overrides.items():
        if k not in declared:
            hint = close_matches(k, declared)
            raise top.err(SpecValidationError, f"unknown param '{k}'{hint}", "params",
                          expected="one of: " + ", ".join(declared) if declared else "no params (the spec declares none)")
        d = declared[k]
        if _kind_of(d) != _kind_of(v) and not (isinstance(d, float) and _kind_of(v) == "int") and not has_expr(d):
            raise top.err(SpecValidationError, f"param '{k}' is {_article(_kind_of(d))}, got {short_repr(v)}",
                          "params", k, expected=_kind_of(d), got=short_repr(v, 400))
    env: dict[str, Any] = {}
    for k, v in declared.items():
        if not _IDENT.match(k) or keyword.iskeyword(k):
            raise top.err(SpecValidationError, f"param name '{k}' is not an identifier", "params", k, key=True)
        raw = overrides[k] if k in overrides else v
        try:
            env[k] = evaluate_value(raw, env)
        except ExpressionError as e:
            raise e.located(top.loc("params", k), f"params.{k}", top.doc.text) from None
    return env


def _check_asserts(spec: Any, env: Mapping[str, Any], top: _Scope) -> None:
    """``assert:``: each condition on the params, in order, before anything is built; the
    first false one is the error, in the spec's own words."""
    sc = _Scope(prefix="", doc=top.doc, path=(), env=env, outer={})
    for k, a in enumerate(spec.assert_):
        value = _eval(sc, a.that, ("assert", k, "that"))
        if not isinstance(value, bool):
            raise top.err(SpecValidationError, f"assert: '{a.that}' must be true or false, got {short_repr(value)}",
                          "assert", k, "that", fix="write a comparison, e.g. '${depth in (18, 34)}'")
        if not value:
            shown = ", ".join(f"{n}={short_repr(env[n])}" for n in env if re.search(rf"\b{re.escape(n)}\b", str(a.that)))
            raise top.err(SpecValidationError, a.message, "assert", k, "that",
                          got=shown or None, fix=f"change the params so that {str(a.that).strip()} holds")


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _kind_of(v: Any) -> str:
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "list"), (dict, "dict")):
        if isinstance(v, t):
            return name
    return "null"


def _collect_blocks(spec: Any, doc: Document, limits: Limits) -> tuple[dict[str, _BlockDef], list[Path]]:
    """The blocks a spec can call, and the ``use:`` files read to find them."""
    blocks: dict[str, _BlockDef] = {}

    def add_blocks(model: Any, d: Document) -> None:
        for name, b in model.blocks.items():
            if not _IDENT.match(name):
                raise SpecValidationError(f"block name '{name}' is not an identifier", loc=d.loc(("blocks", name), key=True),
                                          source=d.text)
            if name in blocks:
                first = blocks[name].doc.loc(blocks[name].path, key=True)
                where = "" if first is None else f" (first on line {first.line})" if first.file == d.file \
                    else f" (first in {Path(first.file).name}, line {first.line})"
                raise GraphError(f"block '{name}' is defined twice{where}",
                                 loc=d.loc(("blocks", name), key=True), source=d.text)
            blocks[name] = _BlockDef(b, d, ("blocks", name))

    used = block_files(spec, doc, limits)
    for _, model, d in used:
        add_blocks(model, d)
    add_blocks(spec, doc)
    return blocks, [path for path, _, _ in used]


# -- scopes -------------------------------------------------------------------------------

def _expand_scope(ctx: _Ctx, sc: _Scope, nodes: Mapping[str, Any] | list[Any], edges: list[str], sub: PathT,
                  default_input: str | None, output: str | None, named: str) -> str:
    """Expand one scope's nodes; returns the IR name of the scope's output."""
    plan = _plan(ctx, sc, nodes, edges, sub, default_input, output, named)
    for n in plan.order:
        k = plan.position[n]
        before = plan.names[k - 1] if k > 0 else None
        _expand_node(ctx, sc, n, plan.nodes[n], plan.raw[n], sub + (n,), default_input, before)
        ctx.name(sc.prefix + n, sc.local[n])

    if plan.output is not None:
        return _resolve(sc, plan.output, sub[:-1] + ("output",))
    return sc.local[plan.names[-1]]


@dataclass(frozen=True)
class _Plan:
    """What a scope's definition says about its nodes, whatever the params: their names,
    each one's raw input references (with where they were written) and the order to
    expand them in. A block called many times is planned once."""

    source: Any  # the definition planned (kept alive: the cache is keyed by its id)
    nodes: Mapping[str, Any]
    names: list[str]
    position: dict[str, int]
    raw: dict[str, tuple[Any, PathT]]
    order: list[str]
    output: str | None


def _plan(ctx: _Ctx, sc: _Scope, nodes: Mapping[str, Any] | list[Any], edges: list[str], sub: PathT,
          default_input: str | None, output: str | None, named: str) -> _Plan:
    key = (id(nodes), id(edges), id(sc.doc), sc.path, sub, default_input is None, output, named)
    plan = ctx.plans.get(key)
    if plan is not None:
        return plan
    if not nodes:
        raise sc.err(SpecValidationError, f"{named}: has no nodes", *sub[:-1] or sub)
    source = nodes
    if isinstance(nodes, list):
        nodes = _sequential(sc, nodes, edges, sub, default_input, output, named)
        output = None
    else:
        for n in nodes:
            _check_name(sc, n, sub + (n,))
    names = list(nodes)
    incoming = _parse_edges(sc, edges, set(names), sub[:-1] + ("edges",))

    # Each node's raw input references, with where they were written.
    raw: dict[str, tuple[Any, PathT]] = {}
    for k, n in enumerate(names):
        nd = nodes[n]
        written = getattr(nd, "in_", None)
        if written is not None and n in incoming:
            raise sc.err(GraphError, f"node '{n}' gets inputs from both in: and edges:", *sub, n, "in",
                         fix="use one of the two")
        if written is not None:
            raw[n] = (written, sub + (n, "in"))
        elif n in incoming:
            raw[n] = incoming[n]
        elif k > 0:
            raw[n] = (names[k - 1], sub + (n,))
        elif default_input is not None:
            raw[n] = (_SCOPE_INPUT, sub + (n,))
        else:
            raise sc.err(GraphError, f"node '{n}' has no input", *sub, n,
                         fix="say where it reads from with in:, or add it to edges:")

    order = _local_order(sc, names, nodes, raw, sub)
    plan = _Plan((source, edges), nodes, names, {n: k for k, n in enumerate(names)}, raw, order, output)
    ctx.plans[key] = plan
    return plan


def _sequential(sc: _Scope, nodes: list[Any], edges: list[str], sub: PathT, default_input: str | None,
                output: str | None, named: str) -> dict[str, Any]:
    """A ``nodes:`` list (as ``nn.Sequential``): elements named by position, each reading
    the one before, the first the scope's input, the last the scope's output. An element
    with ``in:`` reads that instead (as the members of an ``nn.ModuleList`` read what the
    forward gives them), and the next element without ``in:`` still reads it."""
    where = sub[:-1] or sub
    if edges:
        raise sc.err(GraphError, f"{named}: a sequential nodes: list takes no edges:", *where, "edges",
                     fix="its elements are chained in order, or name their input with in:; write nodes: as a "
                         "mapping to wire them otherwise")
    if output is not None:
        raise sc.err(GraphError, f"{named}: a sequential nodes: list takes no output: (its output is the last "
                     "element)", *where, "output", fix="remove output:, or write nodes: as a mapping")
    if default_input is None and getattr(nodes[0], "in_", None) is None:
        raise sc.err(GraphError, f"{named}: a sequential nodes: list reads the scope's one input, and there is "
                     "none to read", *sub, 0, fix="put the list in a group node with in:, give its first element "
                     "in:, or give the spec one input")
    return {str(k): nd for k, nd in enumerate(nodes)}


def _parse_edges(sc: _Scope, edges: list[str], local: set[str], sub: PathT) -> dict[str, tuple[list[str], PathT]]:
    """``a -> b -> c`` and ``x, y -> add`` into each target's ordered sources."""
    incoming: dict[str, tuple[list[str], PathT]] = {}
    for k, line in enumerate(edges):
        steps = [[t.strip() for t in seg.split(",")] for seg in line.split("->")]
        if len(steps) < 2 or any(not t for seg in steps for t in seg):
            raise sc.err(GraphError, f"edge '{line}' is not a chain like 'a -> b' or 'a, b -> c'", *sub, k)
        for srcs, dsts in zip(steps, steps[1:], strict=False):
            for d in dsts:
                if d not in local:
                    raise sc.err(GraphError, f"edge '{line}' targets '{d}', which is not a node here"
                                 f"{close_matches(d, local)}", *sub, k)
                incoming.setdefault(d, ([], sub + (k,)))[0].extend(srcs)
    return incoming


def _refs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, str)]
    return []


def _local_deps(ref: str, local: set[str]) -> str | None:
    if "$" in ref:
        # An expression: depend on every local name it mentions (conservative).
        return None
    base = _base(ref)
    return base if base in local else None


def _base(ref: str) -> str:
    """The local name a reference starts from: ``enc`` of ``enc[2]``, ``encoder`` of
    ``encoder.layer2``."""
    m = _INDEXED.match(ref)
    return m.group(1) if m else ref.split(".", 1)[0]


def _local_order(sc: _Scope, names: list[str], nodes: Mapping[str, Any], raw: dict[str, tuple[Any, PathT]],
                 sub: PathT) -> list[str]:
    """Spec order, except where a node reads one written after it; cycles are errors."""
    local = set(names)
    index_of = {n: i for i, n in enumerate(names)}
    deps: dict[str, list[str]] = {}
    for n in names:
        found: list[str] = []
        refs = _refs(raw[n][0])
        share = getattr(nodes[n], "share", None)
        if isinstance(share, str):
            refs.append(share)
        refs += _group_refs(nodes[n])
        k = index_of[n]
        if k > 0 and any("prev" in _words(r) for r in refs):
            found.append(names[k - 1])  # `prev` of instance 0 is the node listed before
        for r in refs:
            if r == _SCOPE_INPUT:
                continue
            if "$" in r:
                found += [m for m in _words(r) if m in local and m != n]
            elif (d := _local_deps(r, local)) is not None:
                found.append(d)
        deps[n] = found
    done: list[str] = []
    state: dict[str, int] = {}

    def visit(start: str) -> None:
        # Depth-first with an explicit stack: a scope may list thousands of nodes in
        # reverse order, deeper than Python's recursion limit.
        trail: list[str] = []
        stack: list[tuple[str, Iterator[str] | None]] = [(start, None)]  # None: not entered yet
        while stack:
            n, todo = stack[-1]
            if todo is None:
                if state.get(n) == 2:
                    stack.pop()
                    continue
                if state.get(n) == 1:
                    cyc = list(reversed(trail[trail.index(n):] + [n]))
                    if len(cyc) > 12:  # a long loop: its ends say where it is
                        cyc = [*cyc[:5], f"... ({len(cyc) - 1} nodes) ...", *cyc[-5:]]
                    raise sc.err(GraphError, "cycle: " + " -> ".join(cyc), *sub, n,
                                 fix="a network is a DAG; break the loop (recurrent use needs share:)")
                state[n] = 1
                trail.append(n)
                todo = iter(sorted(set(deps[n]), key=index_of.__getitem__))
                stack[-1] = (n, todo)
            d = next(todo, None)
            if d is not None:
                stack.append((d, None))
                continue
            stack.pop()
            trail.pop()
            state[n] = 2
            done.append(n)

    for n in names:
        visit(n)
    return done


def _words(ref: str) -> list[str]:
    """The words of a reference (runs of word characters): a local name it mentions is one."""
    return _WORD.findall(ref)


def _group_refs(nd: Any) -> list[str]:
    """References a group's insides make to names outside it (for ordering)."""
    inner = getattr(nd, "nodes", None)
    if inner is None or getattr(nd, "kind", None) != "group":
        return []
    children = inner if isinstance(inner, list) else list(inner.values())
    own = {str(k) for k in range(len(inner))} if isinstance(inner, list) else set(inner)
    out: list[str] = []
    for child in children:
        out += _refs(getattr(child, "in_", None))
        out += _group_refs(child)
    for line in nd.edges:
        for seg in line.split("->"):
            out += [t.strip() for t in seg.split(",")]
    return [r for r in out if "$" in r or _base(r) not in own]


def _check_name(sc: _Scope, name: str, sub: PathT) -> None:
    problem = name_problem(name, is_input=sub[0] == "inputs")
    if problem is not None:
        message, fix = problem
        raise sc.err(SpecValidationError, message, *sub, key=True, fix=fix)


def _check_elements(sc: _Scope, shape: list[int], sub: PathT, limits: Limits) -> None:
    n = 1
    for d in shape:
        n *= d
    if n > limits.max_elements:
        raise sc.err(LimitError, f"input of {fmt_int(n)} elements per sample is larger than the limit of {limits.max_elements}",
                     *sub, fix="raise the limit with --max-elements")


# -- references --------------------------------------------------------------------------

def _resolve(sc: _Scope, ref: str, sub: PathT, prev: str | None = None, scope_input: str | None = None) -> str:
    """A reference written in the spec → the IR name it denotes."""
    if ref is None:
        return _MISSING + "null"
    if not isinstance(ref, str):
        raise sc.err(SpecValidationError, f"a reference must be a node name, got {short_repr(ref)}", *sub)
    if ref == _SCOPE_INPUT:
        assert scope_input is not None
        return scope_input
    if "$" in ref:
        try:
            ref = evaluate_value(ref, sc.env)
        except ExpressionError as e:
            raise e.located(sc.loc(*sub), ".".join(map(str, sc.path + sub)), sc.doc.text) from None
        if ref is None:  # as a literal null: an optional block input left out
            return _MISSING + "null"
        if not isinstance(ref, str):
            raise sc.err(SpecValidationError, f"a reference must evaluate to a node name, got {short_repr(ref)}", *sub)
    ref = ref.strip()
    if ref == "prev":
        if prev is None:
            raise sc.err(GraphError, "'prev' is only meaningful inside a repeat", *sub,
                         fix="name the node to read from")
        return prev
    m = _INDEXED.match(ref)
    if m:
        base, k = m.group(1), int(m.group(2))
        if base not in sc.instances:
            what = "is not a repeat" if base in sc.local else "is not defined here"
            raise sc.err(GraphError, f"'{ref}': '{base}' {what}", *sub,
                         fix="name[k] picks instance k of a repeated block")
        inst = sc.instances[base]
        if not -len(inst) <= k < len(inst):
            raise sc.err(GraphError, f"'{ref}': '{base}' has {len(inst)} instances (0..{len(inst) - 1})", *sub)
        return inst[k]
    if ref in sc.local:
        return sc.local[ref]
    if ref in sc.outer:
        return sc.outer[ref]
    if "." in ref:
        return _resolve_dotted(sc, ref, sub)
    known = list(sc.local) + list(sc.outer)
    raise sc.err(GraphError, f"unknown node '{ref}'{close_matches(ref, known)}", *sub,
                 expected="one of: " + ", ".join(known) if known else None)


def _resolve_dotted(sc: _Scope, ref: str, sub: PathT) -> str:
    """``encoder.layer2.1.conv1``: the node (or group, block call, repeat instance) at that
    path, looked up from this scope outward."""
    for root in sc.roots:
        found = sc.named.get(root + ref)
        if found is not None:
            return found
    parts = ref.split(".")
    for root in sc.roots:  # the scope the path starts in: say where it stops existing
        if root + parts[0] not in sc.named:
            continue
        k = 1
        while k < len(parts) and root + ".".join(parts[:k + 1]) in sc.named:
            k += 1
        head = ".".join(parts[:k])
        inside = root + head + "."
        children = list(dict.fromkeys(p[len(inside):].split(".", 1)[0] for p in sc.named if p.startswith(inside)))
        if not children:
            raise sc.err(GraphError, f"unknown node '{ref}': '{head}' is an op node, with no nodes inside", *sub,
                         fix=f"name '{head}' itself")
        shown = ", ".join(children[:12]) + (", ..." if len(children) > 12 else "")
        hint = close_matches(parts[k], children) or f" (it has {shown})"
        raise sc.err(GraphError, f"unknown node '{ref}': '{head}' has no node '{parts[k]}'{hint}", *sub,
                     expected="one of: " + ", ".join(children))
    known = list(sc.local) + list(sc.outer)
    raise sc.err(GraphError, f"unknown node '{ref}': '{parts[0]}' is not defined here{close_matches(parts[0], known)}",
                 *sub, expected="one of: " + ", ".join(known) if known else None,
                 fix="a dotted name starts at a node of this scope or of an enclosing group")


def _inputs(sc: _Scope, raw: tuple[Any, PathT], prev: str | None, scope_input: str | None) -> list[str] | dict[str, str]:
    value, sub = raw
    if isinstance(value, dict):
        return {k: _resolve(sc, v, sub + (k,), prev, scope_input) for k, v in value.items()}
    if isinstance(value, list):
        subs = [sub + (i,) if sub[-1] == "in" else sub for i in range(len(value))]
        return [_resolve(sc, v, s, prev, scope_input) for v, s in zip(value, subs, strict=True)]
    return [_resolve(sc, value, sub, prev, scope_input)]


# -- nodes --------------------------------------------------------------------------------

def _when(sc: _Scope, nd: Any, sub: PathT) -> bool:
    w = getattr(nd, "when", None)
    if w is None:
        return True
    if isinstance(w, str):
        w = _eval(sc, w, sub + ("when",))
    if not isinstance(w, bool):
        raise sc.err(SpecValidationError, f"when: must be true or false, got {short_repr(w)}", *sub, "when")
    return w


def _memory_efficient(sc: _Scope, nd: Any, sub: PathT) -> bool:
    v = nd.memory_efficient
    if isinstance(v, str):
        v = _eval(sc, v, sub + ("memory_efficient",))
    if not isinstance(v, bool):
        raise sc.err(SpecValidationError, f"memory_efficient: must be true or false, got {v!r}", *sub,
                     "memory_efficient")
    return v


def _eval(sc: _Scope, value: Any, sub: PathT) -> Any:
    if isinstance(value, list) and any(has_expr(v) for v in value):  # [$H, $W]: an error names its element
        return [_eval(sc, v, sub + (k,)) for k, v in enumerate(value)]
    try:
        return evaluate_value(value, sc.env)
    except ExpressionError as e:
        raise e.located(sc.loc(*sub), ".".join(map(str, sc.path + sub)), sc.doc.text) from None


def _expand_node(ctx: _Ctx, sc: _Scope, name: str, nd: Any, raw: tuple[Any, PathT], sub: PathT,
                 scope_input: str | None, before: str | None) -> None:
    kind = nd.kind
    if kind == "block" and _memory_efficient(sc, nd, sub) and (nd.connect != "dense" or not (
            nd.repeat != 1 or "repeat" in nd.model_fields_set)):
        raise sc.err(SpecValidationError, "memory_efficient: true applies only to a dense repeat", *sub,
                     "memory_efficient", fix="add repeat: and connect: dense, or remove memory_efficient")
    if kind == "block" and (nd.repeat != 1 or "repeat" in nd.model_fields_set):
        # `prev` for instance 0 is the node listed before the repeat (or the scope input).
        first_prev = sc.local[before] if before is not None and before in sc.local else scope_input
        _expand_repeat(ctx, sc, name, nd, raw, sub, scope_input, first_prev)
        return
    ins = _inputs(sc, raw, None, scope_input)
    _check_single(ctx, sc, name, ins, sub)
    if kind != "block" and any(r == _MISSING + "null" for r in (ins.values() if isinstance(ins, dict) else ins)):
        raise sc.err(GraphError, f"node '{name}' has null in in:; only a block call may pass null (for an optional "
                     "input)", *sub, "in", fix="name a node, or leave the input out")
    if not _when(sc, nd, sub):
        first = next(iter(ins.values())) if isinstance(ins, dict) else ins[0]
        if _missing(first):  # it would pass on a missing input: it is missing too
            sc.local[name] = first
            return
        ir = sc.prefix + name
        ctx.add(Node(ir, "identity", frozen_attrs("identity", {}), (first,), loc=sc.loc(*sub, key=True), path=_p(sc, sub), disabled=True))
        sc.local[name] = ir
        return
    if kind != "block" and isinstance(ins, list) and any(_missing(r) for r in ins):
        ins, dropped = [r for r in ins if not _missing(r)], [r[len(_MISSING):] for r in ins if _missing(r)]
        if not ins:
            raise sc.err(GraphError, f"node '{name}' reads only the optional input{'s' if len(dropped) > 1 else ''} "
                         f"{', '.join(repr(d) for d in dropped)}, which this call leaves out", *sub,
                         fix=f"skip it with when: \"${{{dropped[0]} != null}}\", or pass the input")
        op = REGISTRY.get(nd.op) if kind == "op" else None
        if len(ins) == 1 and op is not None and (op.name == "concat" or op.arity[0] > 1):
            sc.local[name] = ins[0]  # a merge left with one input passes it on
            return
    if kind == "op":
        sc.local[name] = _expand_op(ctx, sc, name, nd, ins, sub)
    elif kind == "block":
        sc.local[name] = _expand_block(ctx, sc, sc.prefix + name, nd, ins, sub, sc.env)
        ctx.calls[sc.prefix + name] = (nd, sc.env, sub, sc.doc)
        ctx.calls_log.append(sc.prefix + name)
    elif kind == "group":
        if isinstance(ins, dict):
            raise sc.err(GraphError, f"group '{name}' takes a list of inputs, not a mapping", *sub, "in")
        inner = _Scope(prefix=sc.prefix + name + ".", doc=sc.doc, path=sc.path, env=sc.env,
                       outer=ChainMap({"input": ins[0]}, sc.local, sc.outer),  # type: ignore[arg-type]  # the chain is only read: a Mapping suffices
                       roots=(sc.prefix + name + ".", *sc.roots), named=ctx.named)
        ctx.scopes.append(Scope(sc.prefix + name, "group", loc=sc.loc(*sub, key=True)))
        sc.local[name] = _expand_scope(ctx, inner, nd.nodes, nd.edges, sub + ("nodes",), ins[0], nd.output, name)
    else:
        sc.local[name] = _expand_share(ctx, sc, name, nd, ins, sub)


def _check_single(ctx: _Ctx, sc: _Scope, name: str, ins: list[str] | dict[str, str], sub: PathT) -> None:
    """A reference names one tensor: a multi-output node's outputs are picked one by one."""
    for ref in ins.values() if isinstance(ins, dict) else ins:
        if ref in ctx.multi:
            n = ctx.multi[ref]
            short = ref.rsplit(".", 1)[-1] if ref.startswith(sc.prefix) else ref
            raise sc.err(GraphError, f"node '{name}' reads '{short}', which has {n} outputs: pick one "
                         f"({', '.join(f'{short}.{k}' for k in range(min(n, 4)))}{', ...' if n > 4 else ''})",
                         *sub, fix=f"write in: {short}.0")


def _p(sc: _Scope, sub: PathT) -> str:
    return ".".join(map(str, sc.path + sub))


def _expand_op(ctx: _Ctx, sc: _Scope, name: str, nd: Any, ins: list[str] | dict[str, str], sub: PathT) -> str:
    op = REGISTRY.get(nd.op)
    if isinstance(ins, dict):
        raise sc.err(GraphError, f"op '{nd.op}' takes a list of inputs, not a mapping", *sub, "in")
    lo, hi = op.arity
    if len(ins) < lo or (hi is not None and len(ins) > hi):
        want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
        raise sc.err(GraphError, f"op '{nd.op}' takes {want} input{'s' if (lo if hi is None else hi) != 1 else ''}, got {len(ins)}",
                     *sub, expected=want, got=str(len(ins)))
    attrs = _attrs(ctx, sc, nd, sub)
    ir = sc.prefix + name
    module = None if op.stateless else ir
    if ctx.share is not None and module is not None:
        new, owner = ctx.share
        module = owner + module[len(new):]
    share = module if ctx.share is not None and module is not None else None
    node = Node(ir, nd.op, attrs, tuple(ins), module=module, loc=sc.loc(*sub, key=True), path=_p(sc, sub), share=share)
    ctx.add(node)
    if type(op).outputs is not Op.outputs:
        # A multi-output op: one node per output, `name.0`, `name.1`, ...; how many is
        # known from the input's shape (chunk may give fewer than asked).
        try:
            outs = op.outputs(attrs, [ctx.shape(i) for i in ins])
        except ShapeError as e:
            e.message = f"node '{ir}' ({nd.op}): {e.message}"
            raise e.located(node.loc, node.path, sc.doc.text) from None
        ctx.multi[ir] = len(outs or ())
        for k in range(len(outs or ())):
            out = Node(f"{ir}.{k}", nd.op, attrs, (ir,), loc=node.loc, path=node.path, output=k)
            ctx.add(out)
            ctx.name(out.name, out.name)
    return ir


def _attrs(ctx: _Ctx, sc: _Scope, nd: Any, sub: PathT) -> OpAttrs:
    """Defaults, then the node's own attributes, evaluated and checked strictly."""
    cached = ctx.attrs.get(id(nd))
    if cached is not None and cached[0] is nd:
        return cached[1]
    op = REGISTRY.get(nd.op)
    written = {k: getattr(nd, k) for k in nd.model_fields_set if k in op.Attrs.model_fields}
    values = {**ctx.defaults.get(nd.op, {}), **written}
    evaluated = {k: _eval(sc, v, sub + (k,)) for k, v in values.items()}
    static = not any(_has_expr(v) for v in values.values())
    key = (nd.op, value_key(evaluated))
    if key in ctx.attrs:
        model = ctx.attrs[key][1]
        if static:
            ctx.attrs[id(nd)] = (nd, model)
        return model
    for k, v in evaluated.items():
        if any(isinstance(x, float) and not math.isfinite(x) for x in (v if isinstance(v, list) else [v])):
            raise sc.err(SpecValidationError, f"op '{nd.op}', {k}: must be a finite number, got {short_repr(v)}",
                         *sub, *((k,) if k in written else ()), got=short_repr(v, 400))
    try:
        model = op.Attrs.model_validate(evaluated)
    except ValidationError as e:
        errs = e.errors(include_url=False)
        # An `int | list` attribute fails once per branch: for a list value, the list
        # branch's complaint names the element ([$H, 0]: element 1).
        err = max(errs, key=lambda x: (x["loc"][:1] == errs[0]["loc"][:1], _element(x["loc"]) is not None))
        k = err["loc"][0] if err["loc"] else None
        item = _element(err["loc"])
        if err["type"] == "missing":
            raise sc.err(SpecValidationError, f"missing required field '{k}' (op '{nd.op}')", *sub,
                         fix=f"add {k}: to the node, or set it for every {nd.op} under defaults:") from None
        where = sub + ((k,) if k in written else ())
        src = "" if k in written else f" (from defaults.{nd.op})" if k in values else ""
        msg = err["msg"].removeprefix("Value error, ")
        value = evaluated.get(k)
        if item is not None and isinstance(value, list) and item < len(value):
            if k in written and isinstance(written[k], list) and item < len(written[k]):
                where += (item,)
            k, value = f"{k}.{item}", value[item]
        raise sc.err(SpecValidationError, f"op '{nd.op}'{f', {k}' if k is not None else ''}: {msg}{src}", *where,
                     got=short_repr(value, 400) if k is not None else None) from None
    ctx.attrs[key] = (None, model)
    if static:
        ctx.attrs[id(nd)] = (nd, model)
    return model


def _has_expr(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_expr(v) for v in value)
    if isinstance(value, dict):
        return any(_has_expr(v) for v in value.values())
    return has_expr(value)


def _element(loc: tuple[Any, ...]) -> int | None:
    """The list index in a pydantic error location (``('size', 'list[int]', 1)`` → 1)."""
    return next((p for p in loc[1:] if isinstance(p, int)), None)


class _InputShapes(Mapping[str, Any]):
    """A block's inputs by name -> their per-sample shapes (tuples), in the block's
    expressions: ``${input[0]}`` is the input's channel count. A shape is inferred when an
    expression first reads it, so a block that reads none costs nothing."""

    __slots__ = ("_binding", "_block", "_ctx")

    def __init__(self, ctx: _Ctx, binding: Mapping[str, str], block: str) -> None:
        self._ctx, self._binding, self._block = ctx, binding, block

    def __getitem__(self, key: str) -> Any:
        ir = self._binding[key]
        if _missing(ir):
            return None  # an optional input the call left out
        self._ctx.reads.setdefault(f"block '{self._block}' reads the shape of its input '{key}'")
        return self._ctx.shape(ir)

    def __contains__(self, key: object) -> bool:
        return key in self._binding

    def __iter__(self) -> Iterator[str]:
        return iter(self._binding)

    def __len__(self) -> int:
        return len(self._binding)


def _bind_args(ctx: _Ctx, sc: _Scope, bdef: _BlockDef, args: dict[str, Any], sub: PathT, bname: str,
               shapes: Mapping[str, Any]) -> dict[str, Any]:
    """A block's params from a call's args: required first, then those with defaults
    (whose expressions see the block's input shapes)."""
    declared: dict[str, Any] = {}
    required: list[str] = []
    for pos, p in enumerate(bdef.model.params):
        for name in [p] if isinstance(p, str) else list(p):
            if name in shapes:
                raise SpecValidationError(
                    f"block '{bname}' has a param and an input both named '{name}'",
                    loc=bdef.doc.loc(bdef.path + ("params", pos)), path=".".join(map(str, bdef.path + ("params", pos))),
                    source=bdef.doc.text, fix="rename one: in the block's expressions an input's name is its shape")
        if isinstance(p, str):
            declared[p] = None
            required.append(p)
        else:
            for k, v in p.items():
                declared[k] = v
    for k in args:
        if k not in declared:
            raise sc.err(SpecValidationError, f"block '{bname}' has no param '{k}'{close_matches(k, declared)}",
                         *sub, "args", k, key=True, expected="one of: " + ", ".join(declared) if declared else "no args")
    bound: dict[str, Any] = {}
    for k in declared:
        if k in args:
            bound[k] = _eval(sc, args[k], sub + ("args", k))
        elif k in required:
            raise sc.err(SpecValidationError, f"block '{bname}' needs param '{k}'", *sub,
                         fix=f"add it to the call: args: {{{k}: ...}}")
        else:
            bscope = _Scope("", bdef.doc, bdef.path, ChainMap(bound, shapes, ctx.params), {})  # type: ignore[arg-type]  # the chain is only read: a Mapping suffices
            bound[k] = _eval(bscope, declared[k], ("params",))
    return bound


def _expand_block(ctx: _Ctx, sc: _Scope, path: str, nd: Any, ins: list[str] | dict[str, str], sub: PathT,
                  env: Mapping[str, Any], extra_env: dict[str, Any] | None = None) -> str:
    """One block instance at ``path``; returns its output's IR name."""
    # No copy: a block with many params is called many times.
    call_env = ChainMap(extra_env or {}, env)  # type: ignore[arg-type]  # the chain is only read: a Mapping suffices
    bname = _block_name(sc, nd, sub, call_env)
    if bname not in ctx.blocks:
        raise sc.err(SpecValidationError, f"unknown block '{bname}'{close_matches(bname, ctx.blocks)}", *sub, "block",
                     expected="one of: " + ", ".join(ctx.blocks) if ctx.blocks else "a block under blocks:")
    if bname in ctx.stack:
        chain = " -> ".join(ctx.stack[ctx.stack.index(bname):] + [bname])
        raise sc.err(GraphError, f"block '{bname}' uses itself: {chain}", *sub, "block",
                     fix="blocks may use other blocks, but not recursively")
    if len(ctx.stack) >= ctx.limits.max_block_depth:
        raise sc.err(LimitError, f"blocks nest deeper than {ctx.limits.max_block_depth}", *sub, "block")
    bdef = ctx.blocks[bname]
    call_sc = _Scope(sc.prefix, sc.doc, sc.path, call_env, sc.outer, sc.local, sc.instances, sc.roots, sc.named)
    names, optional = _block_inputs(bdef, bname)
    if isinstance(ins, dict):
        for k in ins:
            if k not in names:
                raise sc.err(GraphError, f"block '{bname}' has no input '{k}'{close_matches(k, names)}", *sub, "in", k,
                             expected="one of: " + ", ".join(names))
        binding = {k: ins.get(k, _MISSING + k) for k in names}
    else:
        need = max((k + 1 for k, n in enumerate(names) if n not in optional), default=0)
        if not need <= len(ins) <= len(names):
            want = str(len(names)) if need == len(names) else f"{need} to {len(names)}"
            raise sc.err(GraphError, f"block '{bname}' takes {want} input{'s' if len(names) > 1 else ''} "
                         f"({', '.join(names)}), got {len(ins)}", *sub, expected=want, got=str(len(ins)))
        binding = {k: ins[j] if j < len(ins) else _MISSING + k for j, k in enumerate(names)}
    for k, ref in binding.items():
        if _missing(ref):
            if k not in optional:
                why = "" if ref[len(_MISSING):] in (k, "null") else \
                    f" (it reads '{ref[len(_MISSING):]}', an optional input left out)"
                raise sc.err(GraphError, f"block '{bname}' input '{k}' is not connected{why}", *sub,
                             *(("in",) if isinstance(ins, dict) else ()), expected="inputs " + ", ".join(names),
                             fix=f"make it optional in the block (inputs: [{{{k}: optional}}]), or pass it")
            binding[k] = _MISSING + k
    shapes = _InputShapes(ctx, binding, bname)
    reads = ctx.shape_reads
    bound = _bind_args(ctx, call_sc, bdef, dict(nd.args), sub, bname, shapes)
    ctx.scopes.append(Scope(path, "block", block=bname, loc=sc.loc(*sub, key=True)))
    key = _reuse_key(ctx, bdef, bname, bound, binding, extra_env) if ctx.shape_reads == reads else None
    earlier = ctx.reuse.get(key) if key is not None else None
    if earlier is not None:
        return earlier.copy(ctx, path + ".", binding)
    start = _Mark(len(ctx.nodes), len(ctx.scopes), len(ctx.named_log), len(ctx.calls_log), ctx.shape_reads)
    benv = ChainMap(bound, shapes, extra_env or {}, ctx.params)  # type: ignore[arg-type]  # the chain is only read: a Mapping suffices
    inner = _Scope(prefix=path + ".", doc=bdef.doc, path=bdef.path, env=benv, outer=binding, roots=(path + ".",),
                   named=ctx.named)
    ctx.stack.append(bname)
    try:
        out = _expand_scope(ctx, inner, bdef.model.nodes, bdef.model.edges, ("nodes",), binding[names[0]],
                            bdef.model.output, f"blocks.{bname}")
    finally:
        ctx.stack.pop()
    if key is not None and key not in ctx.reuse:
        ctx.reuse[key] = _Instance.record(ctx, start, path + ".", binding, out)
    return out


# -- copying a block instance --------------------------------------------------------------

def _reuse_key(ctx: _Ctx, bdef: _BlockDef, bname: str, bound: dict[str, Any], binding: dict[str, str],
               extra_env: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What a block instance's expansion depends on, when nothing else does: the block, its
    bound params, which inputs the call leaves out, and a repeat's ``i`` and ``n`` where the
    block's text mentions them. None when the instance must be expanded: it is a shared
    block's copy, or an input is a multi-output node (an error to report there)."""
    if ctx.share is not None or any(r in ctx.multi for r in binding.values()):
        return None
    if bname not in ctx.reads_index:
        ctx.reads_index[bname] = any({"i", "n"} & set(_WORD.findall(text))
                                     for text in _strings(bdef.model.model_dump()) if "$" in text)
    env = value_key(extra_env) if extra_env and ctx.reads_index[bname] else None
    return (bname, value_key(bound), tuple(_missing(r) for r in binding.values()), env)


def _strings(value: Any) -> Iterator[str]:
    """Every string in nested data."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


@dataclass(frozen=True)
class _Mark:
    """Where the expansion's lists stood when an instance began."""

    nodes: int
    scopes: int
    named: int
    calls: int
    shape_reads: int


@dataclass(frozen=True)
class _Instance:
    """A block instance's expansion as a later identical call can copy it: every name under
    the instance's prefix is renamed, and the instance's inputs become the call's."""

    prefix: str
    binding: tuple[str, ...]  # the instance's inputs, in the block's order
    nodes: tuple[Node, ...]
    scopes: tuple[Scope, ...]
    named: tuple[tuple[str, str], ...]
    calls: tuple[tuple[str, Any], ...]
    output: str

    @staticmethod
    def record(ctx: _Ctx, start: _Mark, prefix: str, binding: dict[str, str], out: str) -> _Instance | None:
        """The instance expanded since ``start``, or None when it cannot be copied: it asked
        for a shape (its expansion then depends on its inputs' shapes), two of its inputs
        are one node, or a name it holds is neither its own nor an input."""
        ins = tuple(binding.values())
        if ctx.shape_reads != start.shape_reads or len(set(ins)) != len(ins) \
                or any(r.startswith(prefix) for r in ins):
            return None
        inst = _Instance(prefix, ins, tuple(ctx.nodes[start.nodes:]), tuple(ctx.scopes[start.scopes:]),
                         tuple((k, ctx.named[k]) for k in ctx.named_log[start.named:]),
                         tuple((k, ctx.calls[k]) for k in ctx.calls_log[start.calls:]), out)
        known = set(ins)
        refs = [out, *(s.path for s in inst.scopes), *(r for kv in inst.named for r in kv), *(k for k, _ in inst.calls)]
        for n in inst.nodes:
            refs += [n.name, *n.inputs, *(r for r in (n.module, n.share, n.dense) if r is not None)]
        if not all(r.startswith(prefix) or r in known for r in refs):
            return None
        return inst

    def copy(self, ctx: _Ctx, prefix: str, binding: dict[str, str]) -> str:
        """Add this instance again under ``prefix``, reading ``binding``; its output's name."""
        outside = dict(zip(self.binding, binding.values(), strict=True))
        cut = len(self.prefix)

        def rename(ref: str) -> str:
            return prefix + ref[cut:] if ref.startswith(self.prefix) else outside[ref]

        def renamed(ref: str | None) -> str | None:
            return None if ref is None else rename(ref)

        for n in self.nodes:
            ctx.add(n.replace(name=rename(n.name), inputs=tuple(map(rename, n.inputs)), module=renamed(n.module),
                              share=renamed(n.share), dense=renamed(n.dense)))
        ctx.scopes += [dataclasses.replace(s, path=rename(s.path)) for s in self.scopes]
        for k, v in self.named:
            ctx.name(rename(k), rename(v))
        for k, call in self.calls:
            ctx.calls[rename(k)] = call
            ctx.calls_log.append(rename(k))
        return rename(self.output)


def _block_inputs(bdef: _BlockDef, bname: str) -> tuple[list[str], set[str]]:
    """A block's input names, in order, and which of them are optional."""
    names: list[str] = []
    optional: set[str] = set()
    for k, entry in enumerate(bdef.model.inputs):
        if isinstance(entry, str):
            names.append(entry)
            continue
        if len(entry) != 1:
            raise SpecValidationError(f"block '{bname}': an input entry is a name or {{name: optional}}, got "
                                      f"{len(entry)} keys", loc=bdef.doc.loc(bdef.path + ("inputs", k)),
                                      path=".".join(map(str, bdef.path + ("inputs", k))), source=bdef.doc.text,
                                      fix="write one input per entry: inputs: [x, {skip: optional}]")
        (name,) = entry
        names.append(name)
        optional.add(name)
    return names, optional


def _block_name(sc: _Scope, nd: Any, sub: PathT, env: Mapping[str, Any]) -> str:
    """``block:`` is a name, or an expression giving one (``"${'bottleneck' if depth >= 50 else 'basic'}"``)."""
    if "$" not in nd.block:
        return nd.block
    try:
        name = evaluate_value(nd.block, env)
    except ExpressionError as e:
        raise e.located(sc.loc(*sub, "block"), _p(sc, sub + ("block",)), sc.doc.text) from None
    if not isinstance(name, str):
        raise sc.err(SpecValidationError, f"block: must evaluate to a block name, got {short_repr(name)}", *sub, "block")
    return name


def _instance_names(sc: _Scope, nd: Any, n: int, sub: PathT) -> list[str]:
    out = []
    for i in range(n):
        if nd.names is None:
            out.append(str(i))
            continue
        env: Mapping[str, Any] = ChainMap({"i": i, "n": n}, sc.env)  # type: ignore[arg-type]  # the chain is only read: a Mapping suffices

        def fill(m: re.Match[str], env: Mapping[str, Any] = env) -> str:
            return str(_eval_pattern(sc, m.group(1), env, sub))

        text = re.sub(r"\{([^{}]*)\}", fill, nd.names)
        if (not _IDENT.match(text) and not text.isdigit()) or keyword.iskeyword(text):
            raise sc.err(SpecValidationError, f"names: '{nd.names}' gives '{text}', which is not an identifier",
                         *sub, "names")
        if text in MODULE_ATTRS or text.startswith("_") or text == "self":
            raise sc.err(SpecValidationError, f"names: '{nd.names}' gives '{text}', which would shadow an attribute "
                         "of torch's nn.Module", *sub, "names", fix="add a prefix, e.g. 'layer{i}'")
        out.append(text)
    if len(set(out)) != len(out):
        raise sc.err(GraphError, f"names: '{nd.names}' gives the same name twice", *sub, "names",
                     fix="use i in the pattern, e.g. 'layer{i+1}'")
    return out


def _eval_pattern(sc: _Scope, src: str, env: Mapping[str, Any], sub: PathT) -> Any:
    try:
        return evaluate(src, env)
    except ExpressionError as e:
        raise e.located(sc.loc(*sub, "names"), _p(sc, sub + ("names",)), sc.doc.text) from None


def _expand_repeat(ctx: _Ctx, sc: _Scope, name: str, nd: Any, raw: tuple[Any, PathT], sub: PathT,
                   scope_input: str | None, first_prev: str | None) -> None:
    n = _eval(sc, nd.repeat, sub + ("repeat",))
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise sc.err(SpecValidationError, f"repeat: must be a positive int, got {short_repr(n)}", *sub, "repeat")
    if n > ctx.limits.max_repeat:
        raise sc.err(LimitError, f"repeat: {n} is more than the limit of {ctx.limits.max_repeat}", *sub, "repeat",
                     fix="raise the limit with --max-repeat")
    base = sc.prefix + name
    inst_names = _instance_names(sc, nd, n, sub)
    first_env = ChainMap({"i": 0, "n": n}, sc.env)  # type: ignore[arg-type]  # the chain is only read: a Mapping suffices
    ctx.scopes.append(Scope(base, "repeat", block=_block_name(sc, nd, sub, first_env), count=n,
                            connect=nd.connect, loc=sc.loc(*sub, key=True),
                            memory_efficient=_memory_efficient(sc, nd, sub)))
    value, _ = raw
    per_instance = any(r != _SCOPE_INPUT and (re.search(r"\bprev\b", r) or "$" in r) for r in _refs(value))
    outs: list[str] = []
    sc.instances[name] = outs
    first_in: list[str] | dict[str, str] | None = None
    enabled = _when(sc, nd, sub)
    for i in range(n):
        env_i = {"i": i, "n": n}
        isc = _Scope(sc.prefix, sc.doc, sc.path, ChainMap(env_i, sc.env),  # type: ignore[arg-type]  # the chain is only read: a Mapping suffices
                     sc.outer, sc.local, sc.instances, sc.roots, sc.named)
        prev = outs[-1] if outs else None
        if i == 0 or per_instance:
            prev_for_i = prev if prev is not None else first_prev
            ins = _inputs(isc, raw, prev_for_i, scope_input)
            if i == 0:
                first_in = ins
        else:
            ins = [outs[-1]]
        if nd.connect == "dense":
            assert first_in is not None
            x0 = first_in if isinstance(first_in, list) else list(first_in.values())
            if len(x0) != 1:
                raise sc.err(GraphError, "connect: dense needs exactly one input", *sub, "in")
            feats = [x0[0], *outs]
            if len(feats) > 1:
                cat = f"{base}.cat{i}"
                ctx.add(Node(cat, "concat", frozen_attrs("concat", {"dim": 0}), tuple(feats), loc=sc.loc(*sub, key=True), path=_p(sc, sub),
                             dense=base))
                ins = [cat]
            else:
                ins = [feats[0]]
        if not enabled:
            first = next(iter(ins.values())) if isinstance(ins, dict) else ins[0]
            outs.append(first)
            continue
        path = f"{base}.{inst_names[i]}"
        outs.append(_expand_block(ctx, isc, path, nd, ins, sub, isc.env, env_i))
        ctx.name(path, outs[-1])
    if nd.connect == "dense" and enabled:
        assert first_in is not None
        x0 = first_in if isinstance(first_in, list) else list(first_in.values())
        out = f"{base}.cat"
        ctx.add(Node(out, "concat", frozen_attrs("concat", {"dim": 0}), (x0[0], *outs), loc=sc.loc(*sub, key=True), path=_p(sc, sub),
                     dense=base))
        sc.local[name] = out
    else:
        sc.local[name] = outs[-1]


def _expand_share(ctx: _Ctx, sc: _Scope, name: str, nd: Any, ins: list[str] | dict[str, str], sub: PathT) -> str:
    owner = nd.share
    if owner not in sc.local:
        raise sc.err(GraphError, f"share: '{owner}' is not a node in this scope{close_matches(owner, sc.local)}",
                     *sub, "share")
    owner_ir = sc.prefix + owner
    ir = sc.prefix + name
    if owner_ir in ctx.calls:
        call, env, csub, _ = ctx.calls[owner_ir]
        saved = ctx.share
        ctx.share = (ir, owner_ir)
        try:
            return _expand_block(ctx, sc, ir, call, ins, sub, env)
        finally:
            ctx.share = saved
    src = ctx.by_name.get(owner_ir)
    if src is None or src.module is None:
        raise sc.err(GraphError, f"share: '{owner}' has no module to share (it is stateless or repeated)",
                     *sub, "share", fix="share an op with parameters, or a block called once")
    if isinstance(ins, dict):
        raise sc.err(GraphError, f"node '{name}' shares op '{src.op}', which takes a list of inputs", *sub, "in")
    ctx.add(Node(ir, src.op, src.attrs, tuple(ins), module=src.module, loc=sc.loc(*sub, key=True), path=_p(sc, sub),
                 share=src.module))
    return ir


def _in_order(nodes: list[Node], inputs: set[str]) -> bool:
    """Every node reads only inputs and nodes before it, and no name is used twice."""
    seen = set(inputs)
    for n in nodes:
        if n.name in seen or not all(i in seen for i in n.inputs):
            return False
        seen.add(n.name)
    return True


def _toposort(nodes: list[Node], inputs: set[str], doc: Document) -> tuple[Node, ...]:
    """Nodes in dependency order, keeping expansion order wherever the wiring allows."""
    import heapq

    if _in_order(nodes, inputs):
        return tuple(nodes)  # what the sort below gives for nodes already in dependency order
    index: dict[str, int] = {}
    for k, n in enumerate(nodes):
        if n.name in inputs:
            raise GraphError(f"node '{n.name}' has the name of an input", loc=n.loc, path=n.path, source=doc.text,
                             fix="rename the node or the input")
        if n.name in index:
            first = nodes[index[n.name]].loc
            raise GraphError(f"two nodes expand to the name '{n.name}'" + (f" (the other at line {first.line})"
                             if first is not None else ""), loc=n.loc, path=n.path, source=doc.text,
                             fix="rename one; a repeat's instances are named <repeat>.<i>")
        index[n.name] = k
    waiting = {n.name: sum(1 for i in set(n.inputs) if i not in inputs) for n in nodes}
    users: dict[str, list[str]] = {}
    for n in nodes:
        for i in set(n.inputs):
            users.setdefault(i, []).append(n.name)
    ready = [index[name] for name, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    out: list[Node] = []
    while ready:
        n = nodes[heapq.heappop(ready)]
        out.append(n)
        for u in users.get(n.name, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, index[u])
    if len(out) != len(nodes):
        stuck = next(n for n in nodes if waiting[n.name] > 0)
        raise GraphError(f"node '{stuck.name}' is part of a cycle", loc=stuck.loc, source=doc.text,
                         fix="a network is a DAG; break the loop")
    return tuple(out)
