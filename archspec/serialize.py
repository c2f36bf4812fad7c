"""Serialize: a flat archspec Graph with module scopes becomes readable spec text.

The graph's dotted names and scopes (a module tree, as the importer gives them) become
nested entries. Then what a person would write instead of a dump:

- scopes with the same structure become one block, called where they were; attribute
  values that differ between the calls become the block's params (equal ones merged,
  multiples written ``${4 * planes}``), the common value a param's default;
- a container whose children are calls of one block, each reading the one before,
  becomes ``repeat:`` (``connect: dense`` where each child reads the concat of all
  before it, DenseNet's pattern), its per-call args written as expressions of ``i``;
- a residual merge's shortcut that the compiler's auto projection builds under the
  same names (torchvision's ``downsample``) is left out, with ``defaults.projection``
  set; other shortcuts are written out;
- attributes equal to the op's default, to ``defaults:`` or to what ``padding: auto``
  gives are left out; ``defaults:`` takes a value most nodes of an op share.

The text is checked before it is returned: expanding it gives the modules of the
graph, in order, with the same attributes and shapes.

No torch here: the projection check uses the project pass, the defaults check the ops'
attribute models, and building modules is the importer's.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ArchSpecError
from .ir import Graph, Node
from .ops import REGISTRY

# A predicate: do these attrs build the same module/call as the node's own, for its input shapes?
Same = Callable[[Node, Mapping[str, Any]], bool]


class _Hole:
    """A value in a rendered body that may differ between calls of one block."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"<{self.value!r}>"


@dataclass(eq=False)
class _Tree:
    path: str
    cls: str | None
    items: list[_Tree | Node] = field(default_factory=list)
    ins: list[str] = field(default_factory=list)
    outs: list[str] = field(default_factory=list)
    parent: _Tree | None = None
    alias: dict[str, str] = field(default_factory=dict)  # value -> "input" (a dense layer's concat)
    dense: bool = False
    mode: str = "inline"  # inline | block | repeat
    key: Any = None
    block: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    height: int = 0

    @property
    def local(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def out(self) -> str:
        return self.outs[-1] if self.outs else (self.items[-1].name if isinstance(self.items[-1], Node)
                                                else self.items[-1].out)

    def nodes(self) -> list[Node]:
        out: list[Node] = []
        for it in self.items:
            out.extend([it] if isinstance(it, Node) else it.nodes())
        return out


class _Unexpressible(Exception):
    pass


def to_spec(graph: Graph, same: Same | None = None, *, check: bool = True,
            arg_names: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The spec text of ``graph`` (shapes known). ``same(node, attrs)`` says whether
    ``attrs`` build what ``node`` builds (the importer builds modules to answer it);
    without it only attributes equal to the op's own defaults are left out.
    ``arg_names[scope][value]`` names a block's inputs (the forward() arguments of the
    module the scope is: ``x, skip``)."""
    problem = None
    try:
        text = _Writer(graph, same, elide=True, arg_names=arg_names).write()
    except _Unexpressible as e:
        problem = str(e)
    if problem is None and check:
        problem = mismatch(graph, text, same)
    if problem is not None:
        try:
            text = _Writer(graph, same, elide=False, arg_names=arg_names).write()
            again = mismatch(graph, text, same) if check else None
        except _Unexpressible as e:
            again = str(e)
        if again is not None:
            raise ArchSpecError(f"the spec written for '{graph.name}' does not rebuild it: {problem}; "
                                f"without leaving projections to the compiler: {again}",
                                fix="report this: the graph uses a form the writer does not know")
    return text


def mismatch(graph: Graph, text: str, same: Same | None = None) -> str | None:
    """Why expanding ``text`` does not give ``graph``'s modules (same names, order, ops,
    attributes, shapes) and its ops (the same count of each), or ``None``."""
    from .api import load

    try:
        built = load(text)
    except ArchSpecError as e:
        return f"{type(e).__name__}: {e}"
    want = [(n.module, n.op, dict(n.attrs), n.shape) for n in graph.nodes if n.owns_module]
    got = [(n.module, n.op, dict(n.attrs), n.shape) for n in built.nodes if n.owns_module]
    if [w[0] for w in want] != [g[0] for g in got]:
        for w, g in zip(want, got, strict=False):
            if w[0] != g[0]:
                return f"module '{g[0]}' where '{w[0]}' was expected"
        return f"{len(got)} modules where {len(want)} were expected"
    index = graph.index()
    for w, g in zip(want, got, strict=True):
        if w[1] != g[1] or w[3] != g[3] or w[2] != g[2] and not (same is not None and same(index[str(w[0])], g[2])):
            return f"module '{w[0]}': {g[1:]} where {w[1:]} was expected"
    if list(graph.outputs) and [built.shape_of(o) for o in built.outputs] != [graph.shape_of(o) for o in graph.outputs]:
        return "the outputs' shapes differ"

    def ops(g: Graph) -> Counter[str]:
        return Counter(n.op for n in g.nodes if not REGISTRY.get(n.op).passthrough
                       and not (n.op == "concat" and len(n.inputs) == 1))

    if ops(graph) != ops(built):
        diff = (ops(graph) - ops(built)) + (ops(built) - ops(graph))
        return "the op counts differ: " + ", ".join(f"{k} {ops(graph)[k]} vs {ops(built)[k]}" for k in diff)
    return None


# -- the writer ---------------------------------------------------------------------------

class _Writer:
    def __init__(self, graph: Graph, same: Same | None, *, elide: bool,
                 arg_names: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.graph = graph
        self.same = same
        self.arg_names = arg_names or {}
        self.projection: dict[str, Any] | None = None
        if elide:
            graph, self.projection = _elide_projections(graph)
        self.g = graph
        self.index = graph.index()
        self.users: dict[str, list[str]] = graph.consumers()
        self.defaults = _spec_defaults(graph, same)
        self.blocks: dict[str, tuple[list[str], dict[str, Any], Any, _Tree]] = {}
        self.block_names: dict[Any, str] = {}
        self.outputs: list[str] = list(graph.outputs)
        self.groups: dict[Any, list[_Tree]] = {}

    # -- structure ----------------------------------------------------------------------
    def tree(self) -> _Tree:
        scopes = {s.path: s for s in self.g.scopes}
        root = _Tree("", None)
        trees: dict[str, _Tree] = {"": root}
        for n in self.g.nodes:
            parts = n.name.split(".")
            parent = root
            for k in range(1, len(parts)):
                p = ".".join(parts[:k])
                t = trees.get(p)
                if t is None:
                    s = scopes.get(p)
                    t = _Tree(p, s.block if s is not None else None, parent=parent)
                    trees[p] = t
                    parent.items.append(t)
                parent = t
            parent.items.append(n)
        self._interface(root)
        return root

    def _interface(self, t: _Tree) -> None:
        inside = {n.name for n in t.nodes()}
        ins: list[str] = []
        outs: list[str] = []
        for n in t.nodes():
            for i in n.inputs:
                if i not in inside and i not in ins:
                    ins.append(i)
            if any(u not in inside for u in self.users.get(n.name, ())) or n.name in self.g.outputs:
                outs.append(n.name)
        t.ins, t.outs = ins, outs
        for it in t.items:
            if isinstance(it, _Tree):
                self._interface(it)
        t.height = 1 + max((it.height for it in t.items if isinstance(it, _Tree)), default=0)

    def _dense(self, t: _Tree) -> None:
        """A container whose children each start with the concat of its input and the
        outputs before them, and which ends with the concat of all: ``connect: dense``."""
        for it in t.items:
            if isinstance(it, _Tree):
                self._dense(it)
        kids = [it for it in t.items if isinstance(it, _Tree)]
        last = t.items[-1] if t.items else None
        if (len(kids) < 1 or len(kids) != len(t.items) - 1 or not isinstance(last, Node) or last.op != "concat"
                or last.attrs.get("dim") != 0 or len(t.ins) != 1 or len({k.cls for k in kids}) != 1):
            return
        source = t.ins[0]
        outs = [k.out for k in kids]
        if list(last.inputs) != [source, *outs]:
            return
        for j, k in enumerate(kids):
            first = k.items[0]
            if not (isinstance(first, Node) and first.op == "concat" and first.attrs.get("dim") == 0
                    and list(first.inputs) == [source, *outs[:j]] and len(k.outs) == 1):
                return
        for k in kids:
            first = k.items.pop(0)
            assert isinstance(first, Node)
            k.alias[first.name] = "input"
            k.ins = [source]
        t.items.pop()
        t.dense = True
        t.outs = [last.name]  # what follows reads the concat of all: the dense repeat's output

    # -- keys and modes ------------------------------------------------------------------
    def _key(self, t: _Tree) -> Any:
        items: list[Any] = []
        for it in t.items:
            if isinstance(it, Node):
                items.append(("op", self._local(t, it.name), it.op, tuple(sorted(dict(it.attrs))),
                              tuple(self._rel(t, i) for i in it.inputs), it.share and self._rel(t, it.share)))
            else:
                items.append(("tree", it.local, self._key(it), tuple(self._rel(t, i) for i in it.ins)))
        t.key = (t.cls, t.dense, len(t.ins), tuple(items), self._rel(t, t.out))
        return t.key

    def _rel(self, t: _Tree, v: str) -> str:
        """A key's view of a reference: inside names relative to ``t``, outside ones by slot."""
        if v in t.alias:
            return "@in0"
        if t.path and not v.startswith(t.path + "."):
            return f"@in{t.ins.index(v)}" if v in t.ins else "@out:" + v
        if not t.path and v in self.g.inputs:
            return v
        return v[len(t.path) + 1:] if t.path else v

    def _modes(self, root: _Tree, blocks: bool) -> None:
        every = _all_trees(root)
        count = Counter(t.key for t in every)
        for t in every:
            if t is root:
                continue
            if t.parent is not None and t.parent.mode == "repeat":
                continue
            if blocks and self._repeatable(t):
                t.mode = "repeat"
                for it in t.items:
                    assert isinstance(it, _Tree)
                    it.mode = "block"
            elif t.mode != "block" and blocks and count[t.key] >= 2 and (t.parent is None or t.parent.mode != "repeat"):
                t.mode = "block"
        # In a list (a sequential scope) an element takes no in:, so an element that reads
        # more than the one before it is written inline, where it names the others.
        for t in every:
            if t.mode != "repeat" and self._chained_list(t):
                for it in t.items:
                    if isinstance(it, _Tree) and it.mode == "block" and len(it.ins) > 1:
                        it.mode = "inline"

    def _chained_list(self, t: _Tree) -> bool:
        """Elements named by position, each reading the one before it first."""
        if not t.items or not all((it.local if isinstance(it, _Tree) else self._local(t, it.name)).isdigit()
                                  for it in t.items):
            return False
        prev = t.ins[0] if t.ins else None
        for it in t.items:
            first = (it.ins if isinstance(it, _Tree) else list(it.inputs))[:1]
            if first != [prev]:
                return False
            prev = it.name if isinstance(it, Node) else it.out
        return True

    def _repeatable(self, t: _Tree) -> bool:
        kids = [it for it in t.items if isinstance(it, _Tree)]
        if not kids or len(kids) != len(t.items) or len({k.key for k in kids}) != 1 or len(t.ins) != 1:
            return False
        if len(kids[0].ins) != 1 or _names_pattern([k.local for k in kids]) is None:
            return False
        if t.dense:
            return True
        prev = t.ins[0]
        for k in kids:
            if k.ins != [prev] or len(k.outs) != 1:
                return False
            prev = k.out
        return t.outs == [prev]

    # -- rendering ------------------------------------------------------------------------
    def write(self) -> str:
        root = self.tree()
        self._dense(root)
        self._key(root)
        self._modes(root, blocks=True)
        self._resolve_blocks(root)
        body = self._body(root, holes=False)
        self.outputs = [self._ref(root, o) for o in self.g.outputs]
        return self._text(body)

    def _resolve_blocks(self, root: _Tree) -> None:
        """Blocks from the lowest up: each group of calls with one key becomes a block; its
        params are the values that differ between the calls."""
        trees = [t for t in _all_trees(root) if t.mode == "block"]
        by_key: dict[Any, list[_Tree]] = {}
        for t in trees:
            by_key.setdefault(t.key, []).append(t)
        self.groups = by_key
        for key, group in sorted(by_key.items(), key=lambda kv: kv[1][0].height):
            bodies = [self._body(t, holes=True) for t in group]
            holes = [_holes(b) for b in bodies]
            nvals = {len(h) for h in holes}
            if len(nvals) != 1:
                raise _Unexpressible(f"calls of {group[0].cls} differ in structure")
            name = self._block_name(group[0].cls or "block")
            params, template = _params(bodies[0], holes, self._attr_names(bodies[0]))
            template = self._minimize(template, group)
            self.blocks[name] = (list(params), {p: d for p, (d, _) in params.items()}, template, group[0])
            self.block_names[key] = name
            for j, t in enumerate(group):
                t.block = name
                t.args = {p: vals[j] for p, (_, vals) in params.items()}

    def _in_names(self, t: _Tree) -> list[str]:
        """A block's input names: its module's forward() arguments where every call agrees
        and they are usable names, else ``input`` for one and ``x, x1, ...`` for several."""
        default = _input_names(len(t.ins))
        if len(t.ins) < 2:
            return default
        group = [u for u in self.groups.get(t.key, [t])] if t.mode == "block" else [t]
        names = None
        for u in group:
            given = self.arg_names.get(u.path, {})
            these = [given.get(v) for v in u.ins]
            if names is None:
                names = these
            if these != names:
                return default
        locals_ = {it.local if isinstance(it, _Tree) else self._local(t, it.name) for it in t.items}
        if names is None or any(n is None or not n.isidentifier() or n in ("input", "prev") or n in locals_
                                for n in names) or len(set(names)) != len(names):
            return default
        return [str(n) for n in names]

    def _block_name(self, cls: str) -> str:
        base = _snake(cls)
        name, k = base, 2
        while name in self.blocks:
            name, k = f"{base}_{k}", k + 1
        return name

    def _attr_names(self, body: Any) -> list[str]:
        """For each hole in order, the name a param standing for it would take."""
        return [name for _, name in _walk_holes(body, "p")]

    def _body(self, t: _Tree, holes: bool) -> dict[str, Any]:
        """The entries of scope ``t``: ``{"nodes": [(local, entry)], "inputs": [...], "output": ...}``."""
        entries: list[tuple[str, dict[str, Any]]] = []
        if t.path:
            prev = t.ins[0] if len(t.ins) == 1 or t.mode not in ("block",) else None
        else:
            prev = next(iter(self.g.inputs)) if len(self.g.inputs) == 1 else None
        for it in t.items:
            if isinstance(it, Node) and it.share is not None:
                entry: dict[str, Any] = {"share": self._ref(t, it.share)}  # the module of the node of that name
            elif isinstance(it, Node):
                entry = {"op": it.op}
                attrs = dict(it.attrs)
                for k, v in attrs.items():
                    entry[k] = _Hole(v) if holes else v
            if isinstance(it, Node):
                ins = list(it.inputs)
                local = self._local(t, it.name)
                value = it.name
            else:
                entry = self._call(it, holes)
                ins = list(it.ins)
                local = it.local
                value = it.out
            ins = [t.ins[0] if i in t.alias else i for i in ins]
            if ins != [prev]:
                refs = [self._ref(t, i) for i in ins]
                if isinstance(it, _Tree) and it.mode in ("block", "repeat") and len(ins) > 1:
                    entry = {**entry, "in": dict(zip(self._in_names(it), refs, strict=True))}
                elif isinstance(it, _Tree):  # a group reads the others by name: its input is the first
                    if ins[:1] == [prev]:
                        refs = []
                    if refs:
                        entry = {**entry, "in": refs[0]}
                else:
                    entry = {**entry, "in": refs[0] if len(refs) == 1 else refs}
            if isinstance(it, Node) and not holes and "op" in entry:
                entry = self._trim(it, entry)
            entries.append((local, entry))
            prev = value
        if entries and all(local.isdigit() for local, _ in entries):
            entries = _positions(entries)
        out: dict[str, Any] = {"nodes": entries}
        last = t.items[-1]
        last_value = last.name if isinstance(last, Node) else last.out
        if t.path and t.out != last_value:
            out["output"] = self._ref(t, t.out)
        return out

    def _call(self, t: _Tree, holes: bool) -> dict[str, Any]:
        if t.mode == "block":
            args = {p: (_Hole(v) if holes else v) for p, v in t.args.items()}
            defaults = self.blocks[t.block or ""][1] if t.block in self.blocks else {}
            if not holes:
                args = {p: v for p, v in args.items() if not (p in defaults and defaults[p] is not _NO_DEFAULT
                                                               and _eq(defaults[p], v))}
            entry: dict[str, Any] = {"block": t.block}
            if args:
                entry["args"] = args
            return entry
        if t.mode == "repeat":
            kids = [it for it in t.items if isinstance(it, _Tree)]
            block = kids[0].block
            entry = {"block": block, "repeat": _Hole(len(kids)) if holes else len(kids)}
            pattern = _names_pattern([k.local for k in kids])
            if pattern:
                entry["names"] = pattern
            if t.dense:
                entry["connect"] = "dense"
            defaults = self.blocks[block or ""][1]
            per: dict[str, Any] = {}
            for p in self.blocks[block or ""][0]:
                vals = [k.args[p] for k in kids]
                d = defaults.get(p, _NO_DEFAULT)
                if d is not _NO_DEFAULT and all(_eq(v, d) for v in vals):
                    continue
                per[p] = _Hole(_per_instance(vals)) if holes else _per_instance(vals)
            if per:
                entry["args"] = per
            return entry
        body = self._body(t, holes)
        entry = {"nodes": body["nodes"]}
        if "output" in body:
            entry["output"] = body["output"]
        return entry

    def _local(self, t: _Tree, name: str) -> str:
        return name[len(t.path) + 1:] if t.path else name

    def _ref(self, t: _Tree, v: str) -> str:
        """How a node in scope ``t`` names the value ``v``."""
        if v in t.alias:
            return "input"
        inside = not t.path or v.startswith(t.path + ".")
        if inside and v not in self.g.inputs:
            rest = self._local(t, v)
            head = rest.split(".")[0]
            child = next((it for it in t.items if isinstance(it, _Tree) and it.local == head), None)
            if child is None:
                return head
            return _path_ref(child, v)  # the child's name, dotted into it where v is not its output
        if t.mode in ("block",) or (t.parent is not None and t.parent.mode == "repeat"):
            names = self._in_names(t)
            if v in t.ins:
                return names[t.ins.index(v)]
            raise _Unexpressible(f"block {t.path} reads {v}, which is not one of its inputs")
        if not t.path:
            return v
        if t.ins and v == t.ins[0]:
            return "input"
        assert t.parent is not None
        r = self._ref(t.parent, v)
        if r == "input" or r.split(".")[0] in {it.local for it in t.items if isinstance(it, _Tree)} | {
                self._local(t, n.name) for n in t.items if isinstance(n, Node)}:
            raise _Unexpressible(f"group {t.path} reads {v}, which it cannot name")
        return r

    def _trim(self, n: Node, entry: dict[str, Any]) -> dict[str, Any]:
        """Leave out the attributes a node gets anyway (op defaults, ``defaults:``, auto padding)."""
        keys = [k for k in entry if k not in ("op", "in")]
        return self._trim_keys(entry, keys, [n])

    def _trim_keys(self, entry: dict[str, Any], keys: list[str], instances: list[Node]) -> dict[str, Any]:
        op = REGISTRY.get(entry["op"])
        spec_default = self.defaults.get(op.name, {})
        kept = dict(entry)
        for k in keys:
            trial = {kk: vv for kk, vv in kept.items() if kk != k}
            ok = True
            for n in instances:
                attrs = {**spec_default, **{kk: (dict(n.attrs)[kk] if _is_param(vv) else vv)
                                             for kk, vv in trial.items() if kk not in ("op", "in")}}
                if not self._builds_same(n, attrs):
                    ok = False
                    break
            if ok:
                kept = trial
        return kept

    def _builds_same(self, n: Node, attrs: Mapping[str, Any]) -> bool:
        op = REGISTRY.get(n.op)
        try:
            a = op.Attrs.model_validate(dict(attrs))
        except ValueError:
            return False
        if dict(a) == dict(n.attrs):
            return True
        if self.same is None:
            return False
        return self.same(n, dict(a))

    def _minimize(self, template: dict[str, Any], group: list[_Tree]) -> dict[str, Any]:
        """The block's op entries without the attributes every call gets anyway."""
        out = []
        for j, (local, entry) in enumerate(template["nodes"]):
            if "op" in entry:
                instances = []
                for t in group:
                    it = t.items[j]
                    assert isinstance(it, Node)
                    instances.append(it)
                entry = self._trim_keys(entry, [k for k in entry if k not in ("op", "in")], instances)
            out.append((local, entry))
        return {**template, "nodes": out}

    # -- text -----------------------------------------------------------------------------
    def _text(self, body: dict[str, Any]) -> str:
        g = self.g
        lines = ["archspec: 1", f"name: {g.name}"]
        if g.doc:
            lines.append(f"doc: {_scalar(g.doc)}")
        lines.append("inputs: {" + ", ".join(f"{k}: {_flow(list(v))}" for k, v in g.inputs.items()) + "}")
        defaults = {op: d for op, d in self.defaults.items() if d}
        if self.projection is not None:
            defaults["projection"] = self.projection
        if defaults:
            lines.append("defaults:")
            for op, d in defaults.items():
                lines.append(f"  {op}: {_flow(d)}")
        if self.blocks:
            lines.append("")
            lines.append("blocks:")
            for name, (params, pdefaults, template, first) in self.blocks.items():
                lines.append(f"  {name}:")
                if params:
                    req = [p for p in params if pdefaults[p] is _NO_DEFAULT]
                    opt = [p for p in params if pdefaults[p] is not _NO_DEFAULT]
                    ps = req + ["{" + f"{p}: {_flow(pdefaults[p])}" + "}" for p in opt]
                    lines.append(f"    params: [{', '.join(ps)}]")
                if len(first.ins) > 1:
                    lines.append(f"    inputs: [{', '.join(self._in_names(first))}]")
                lines.extend(_nodes_text(template["nodes"], 4))
                if "output" in template:
                    lines.append(f"    output: {_scalar(template['output'])}")
        lines.append("")
        lines.extend(_nodes_text(body["nodes"], 0))
        outs = self.outputs
        lines.append(f"outputs: [{', '.join(map(_scalar, outs))}]")
        return "\n".join(lines) + "\n"


_NO_DEFAULT: Any = object()


def _is_param(v: Any) -> bool:
    return isinstance(v, str) and v.startswith("$")


def _path_ref(t: _Tree, v: str) -> str:
    """The shortest dotted name of ``v`` inside ``t``, from ``t``'s parent scope: a scope's
    name stands for its output (``encoder.layer3``, not ``encoder.layer3.5.relu_1``)."""
    if v == t.out:
        return t.local
    for it in t.items:
        if isinstance(it, Node) and it.name == v:
            return f"{t.local}.{it.name.rpartition('.')[2]}"
        if isinstance(it, _Tree) and v.startswith(it.path + "."):
            return f"{t.local}.{_path_ref(it, v)}"
    return f"{t.local}.{v[len(t.path) + 1:]}"


def _all_trees(t: _Tree) -> list[_Tree]:
    out = [t]
    for it in t.items:
        if isinstance(it, _Tree):
            out.extend(_all_trees(it))
    return out


def _input_names(n: int) -> list[str]:
    return ["input"] if n == 1 else ["x"] + [f"x{k}" for k in range(1, n)]


def _names_pattern(names: Sequence[str]) -> str | None:
    """``None`` when the names are 0..n-1 (a repeat's own), a ``names:`` pattern such as
    ``denselayer{i+1}`` when they follow one, else ``False``-like ``None`` with a check."""
    if [str(k) for k in range(len(names))] == list(names):
        return ""
    m = re.fullmatch(r"([A-Za-z_][A-Za-z_0-9]*?)(\d+)", names[0]) if names else None
    if m is None:
        return None
    prefix, start = m.group(1), int(m.group(2))
    if [f"{prefix}{start + k}" for k in range(len(names))] != list(names):
        return None
    return f"{prefix}{{i+{start}}}" if start else f"{prefix}{{i}}"


def _per_instance(vals: Sequence[Any]) -> Any:
    if all(_eq(v, vals[0]) for v in vals):
        return vals[0]
    if len(vals) > 1 and all(_eq(v, vals[1]) for v in vals[1:]):
        return f"${{{_expr(vals[0])} if i == 0 else {_expr(vals[1])}}}"
    return "${" + _expr(list(vals)) + "[i]}"


def _expr(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_expr(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def _eq(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _holes(body: Any) -> list[Any]:
    return [h.value for h, _ in _walk_holes(body, "p")]


def _walk_holes(v: Any, name: str) -> list[tuple[_Hole, str]]:
    """Every hole in a rendered body, in order, with the attribute or arg name it fills."""
    if isinstance(v, _Hole):
        return [(v, name)]
    out: list[tuple[_Hole, str]] = []
    if isinstance(v, dict):
        for k, x in v.items():
            out += _walk_holes(x, f"{name}_n" if k == "repeat" else name if k in ("args", "nodes") else k)
    elif isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str):  # (local name, entry)
        out += _walk_holes(v[1], v[0])
    elif isinstance(v, list | tuple):
        for x in v:
            out += _walk_holes(x, name)
    return out


def _params(body: dict[str, Any], holes: list[list[Any]], names: list[str]
            ) -> tuple[dict[str, tuple[Any, list[Any]]], dict[str, Any]]:
    """The params of a block from its calls' hole values: ``{param: (default, values per
    call)}``, and the body with every hole filled (a constant, ``$p`` or ``${k * p}``)."""
    n_holes = len(holes[0])
    params: dict[str, tuple[Any, list[Any]]] = {}
    fill: list[Any] = []
    for h in range(n_holes):
        vals = [hs[h] for hs in holes]
        if all(_eq(v, vals[0]) for v in vals):
            fill.append(vals[0])
            continue
        found = None
        for p, (_, pv) in params.items():
            if all(_eq(a, b) for a, b in zip(vals, pv, strict=True)):
                found = f"${p}"
                break
            if all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in (*vals, *pv)):
                if all(a % b == 0 for a, b in zip(vals, pv, strict=True)):
                    ks = {a // b for a, b in zip(vals, pv, strict=True)}
                    if len(ks) == 1:
                        found = f"${{{ks.pop()} * {p}}}"
                        break
                if all(b % a == 0 for a, b in zip(vals, pv, strict=True)):
                    ks = {b // a for a, b in zip(vals, pv, strict=True)}
                    if len(ks) == 1:
                        found = f"${{{p} // {ks.pop()}}}"
                        break
        if found is None:
            name = names[h] if names[h].isidentifier() else "p"
            base, k = name, 2
            while name in params:
                name, k = f"{base}{k}", k + 1
            common, count = Counter(map(_expr, vals)).most_common(1)[0]
            default = next(v for v in vals if _expr(v) == common) if count * 2 > len(vals) else _NO_DEFAULT
            params[name] = (default, vals)
            found = f"${name}"
        fill.append(found)

    it = iter(fill)

    def put(v: Any) -> Any:
        if isinstance(v, _Hole):
            return next(it)
        if isinstance(v, dict):
            return {k: put(x) for k, x in v.items()}
        if isinstance(v, list):
            return [put(x) for x in v]
        if isinstance(v, tuple):
            return tuple(put(x) for x in v)
        return v

    return params, put(body)


def _spec_defaults(graph: Graph, same: Same | None) -> dict[str, dict[str, Any]]:
    """``defaults:``: per op, an attribute value more than half of its nodes share that
    differs from the op's own default (``conv: {bias: false}`` in a ResNet)."""
    out: dict[str, dict[str, Any]] = {}
    by_op: dict[str, list[Node]] = {}
    for n in graph.nodes:
        if n.provenance == "spec" and n.share is None:
            by_op.setdefault(n.op, []).append(n)
    for op_name, nodes in by_op.items():
        if len(nodes) < 3:
            continue
        op = REGISTRY.get(op_name)
        fields = op.Attrs.model_fields
        for k, f in fields.items():
            if f.is_required() or k in ("padding",):
                continue
            vals = Counter(_expr(dict(n.attrs).get(k)) for n in nodes)
            common, count = vals.most_common(1)[0]
            value = next(dict(n.attrs).get(k) for n in nodes if _expr(dict(n.attrs).get(k)) == common)
            if count * 2 > len(nodes) and not _eq(value, f.default) and isinstance(value, bool | str | int | float):
                out.setdefault(op_name, {})[k] = value
    return out


def _elide_projections(graph: Graph) -> tuple[Graph, dict[str, Any] | None]:
    """Leave out the shortcuts the project pass would build itself, under its names."""
    from .passes.infer import infer
    from .passes.project import project

    index = graph.index()
    users = graph.consumers()
    found: dict[tuple[str, str], list[tuple[Node, int, list[Node]]]] = {}
    for m in graph.nodes:
        op = REGISTRY.get(m.op)
        if not op.projectable or len(m.inputs) < 2:
            continue
        target = graph.shape_of(m.inputs[0])
        for slot in range(1, len(m.inputs)):
            chain: list[Node] = []
            v = m.inputs[slot]
            scope = None
            while v in index:
                n = index[v]
                head = n.name.rpartition(".")[0]
                if scope is None:
                    scope = head
                if head != scope or len(users.get(n.name, [])) != 1 or not n.inputs:
                    break
                chain.insert(0, n)
                v = n.inputs[0]
            if not chain or scope is None:
                continue
            src_shape = graph.shape_of(v)
            if src_shape == target or src_shape is None:
                continue
            base = scope.rpartition(".")[2]
            for kind in ("conv_bn", "avgpool_conv_bn"):
                mini = Graph("probe", {"a": tuple(target or ()), "b": tuple(src_shape)},
                             (Node(m.name, m.op, m.attrs, ("a", "b") if slot == 1 else ("a", "a", "b")),),
                             (m.name,), init={"projection": {"kind": kind, "name": base}})
                try:
                    built = project(infer(mini))
                except ArchSpecError:
                    continue
                made = [n for n in built.nodes if n.provenance == "auto"]
                want = [(n.name, n.op, dict(n.attrs), n.module) for n in chain]
                have = [(n.name, n.op, dict(n.attrs), n.module) for n in made]
                if want == have:
                    found.setdefault((kind, base), []).append((m, slot, chain))
                    break
    if not found:
        return graph, None
    (kind, base), hits = max(found.items(), key=lambda kv: len(kv[1]))
    drop: set[str] = set()
    rewire: dict[str, dict[int, str]] = {}
    for m, slot, chain in hits:
        drop.update(n.name for n in chain)
        rewire.setdefault(m.name, {})[slot] = chain[0].inputs[0]
    nodes = []
    for n in graph.nodes:
        if n.name in drop:
            continue
        if n.name in rewire:
            ins = list(n.inputs)
            for slot, src in rewire[n.name].items():
                ins[slot] = src
            n = n.replace(inputs=tuple(ins))
        nodes.append(n)
    policy: dict[str, Any] = {"kind": kind, "name": base}
    return graph.replace(nodes=tuple(nodes)), policy


# -- YAML text ------------------------------------------------------------------------------

_PLAIN = re.compile(r"^(\$[A-Za-z_][A-Za-z_0-9]*|[A-Za-z_][A-Za-z_0-9.\[\]-]*)$")
# Quoted although archspec reads YAML 1.2: YAML 1.1 readers take these for booleans or null.
_YAML_WORDS = frozenset({"true", "false", "null", "yes", "no", "on", "off", "~"})


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int | float):
        return repr(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s)


def _flow(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return _scalar(v)


def _positions(entries: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """A sequential scope's elements by position; a position whose module did nothing
    (``nn.Identity``) holds an identity, as nn.Sequential counts it."""
    at = {int(local): e for local, e in entries}
    if len(at) != len(entries) or max(at) >= 2 * len(at):
        return entries
    return [(str(k), at.get(k, {"op": "identity"})) for k in range(max(at) + 1)]


def _sequential(entries: list[tuple[str, dict[str, Any]]]) -> bool:
    return bool(entries) and [local for local, _ in entries] == [str(k) for k in range(len(entries))] and not any(
        "in" in e or "output" in e for _, e in entries)


def _nodes_text(entries: list[tuple[str, dict[str, Any]]], indent: int) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}nodes:"]
    if _sequential(entries):
        for _, e in entries:
            if "nodes" in e:  # a group element: its nodes in block style under "- nodes:"
                inner = _nodes_text(e["nodes"], indent + 4)
                lines.append(f"{pad}  - {inner[0].lstrip()}")
                lines.extend(inner[1:])
                if "output" in e:
                    lines.append(f"{pad}    output: {_scalar(e['output'])}")
            else:
                lines.append(f"{pad}  - {_flow(e)}")
        return lines
    width = max((len(local) for local, e in entries if "nodes" not in e), default=0)
    for local, entry in entries:
        if "nodes" in entry:
            lines.append(f"{pad}  {local}:")
            if "in" in entry:
                lines.append(f"{pad}    in: {_flow(entry['in'])}")
            lines.extend(_nodes_text(entry["nodes"], indent + 4))
            if "output" in entry:
                lines.append(f"{pad}    output: {_scalar(entry['output'])}")
            continue
        body = {k: v for k, v in entry.items() if k != "in"}
        if "in" in entry:
            body["in"] = entry["in"]
        lines.append(f"{pad}  {(local + ':').ljust(width + 1)} {_flow(body)}")
    return lines


def _snake(name: str) -> str:
    words = re.findall(r"[A-Z][a-z][A-Z]+(?![a-z])|[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z]+", name)  # ReLU: one word
    return "_".join(w.lower() for w in words) or "block"
