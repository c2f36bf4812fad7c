"""Deciding what to draw: a Graph -> a :class:`~archspec.render.model.Drawing`.

:func:`drawing` strings the pure steps together (the graph's view, skip roles, folding,
collapsing, drawn ids) and builds the drawn nodes, edges and clusters from their values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ..errors import ArchSpecError, LimitError
from ..ir import Graph, Node
from .collapse import Collapse, DrawnIds, Folding, collapse, drawn_ids, expanded
from .collapse import fold as fold_nodes
from .model import DCluster, DEdge, DNode, Drawing, fmt_count, fmt_shape, prod
from .roles import Roles, back_edges, skip_roles, u_rows
from .view import GraphView, op_of, parent, view

MAX_RENDER_NODES = 600
MAX_RENDER_EDGES = 100_000  # edges of the graph a drawing reads (a dense repeat of 1000 has 500 500)


def drawing(graph: Graph, *, expand: Iterable[str] | str = (), depth: int | None = None, fold: bool = True,
            max_render_nodes: int = MAX_RENDER_NODES) -> Drawing:
    """Decide what to draw: nodes, edges with their roles, clusters. Raises on a bad option.

    ``expand`` names repeats to draw in full (``"all"`` for every one); ``depth`` draws
    scopes nested that deep as single boxes; past ``max_render_nodes`` drawn nodes a
    :class:`~archspec.errors.LimitError` says how to draw less.
    """
    edges = sum(len(n.inputs) for n in graph.nodes)
    if edges > MAX_RENDER_EDGES:  # before any work: each edge is looked at several times
        raise LimitError(f"'{graph.name}' has {edges} edges, more than the {MAX_RENDER_EDGES} a drawing reads",
                         fix="draw a smaller configuration of the spec (fewer repeats, smaller dense blocks)")
    v = view(graph)
    opened = expanded(v, expand)
    if depth is not None and depth < 0:
        raise ArchSpecError(f"--depth must be 0 or more, got {depth}", option="--depth")
    roles = skip_roles(v)
    folding = fold_nodes(v, roles, fold)
    c = collapse(v, opened)
    ids = drawn_ids(v, folding, c, depth)
    d = Drawing(name=graph.name, title=_title(v), nodes=_nodes(v, folding, c, ids), edges=[], clusters={},
                resolutions=_resolutions(v), u_layout=roles.u_layout, errors=graph.errors())
    if len(d.nodes) > max_render_nodes:
        raise LimitError(
            f"the drawing of '{graph.name}' has {len(d.nodes)} nodes, more than the limit of {max_render_nodes}",
            fix="collapse repeats (drop --expand), pass --depth 1, or raise the limit with --max-render-nodes")
    d.edges = _edges(v, roles, folding, c, ids, d)
    d.clusters = _clusters(v, c, d)
    if d.u_layout:
        d.ranked = u_rows(d, roles, ids.ids, c.instances, v)
        for e, back in zip(d.edges, back_edges(d), strict=True):
            e.back = back
    return d



# - nodes -

def _nodes(v: GraphView, folding: Folding, c: Collapse, ids: DrawnIds) -> dict[str, DNode]:
    g = v.g
    nodes: dict[str, DNode] = {}
    for name, shape in g.inputs.items():
        loc = g.input_locs.get(name)
        nodes[name] = DNode(id=name, kind="input", head=name, name="input", shape=tuple(shape),
                            tooltip=f"input {name}: {fmt_shape(tuple(shape))}" + (f"\n{loc}" if loc else ""))
    for n in g.nodes:
        did = ids.ids[n.name]
        if did is None:
            continue
        if did.startswith("scope:"):
            if did not in nodes:
                nodes[did] = _box_node(v, did)
            continue
        if did in nodes or ids.hidden_rep.get(n.name):
            continue
        nodes[did] = _op_node(v, folding, did)
    keyed = g.output_keys is not None
    for k, (label, out) in enumerate(g.named_outputs()):
        src = ids.ids.get(v.resolve(out)) if out not in g.inputs else out
        if src is None:
            continue
        oid = f"output:{label}"
        loc = g.output_locs.get(out)
        head = f"output {label}" if keyed else f"output {k}" if len(g.outputs) > 1 else "output"
        nodes[oid] = DNode(id=oid, kind="output", head=head, name=out, shape=v.shapes.get(out),
                           tooltip=f"output {label}{f' ({out})' if keyed else ''}: {fmt_shape(v.shapes.get(out))}"
                           + (f"\n{loc}" if loc else ""))
    for node in nodes.values():
        if node.kind in ("op", "merge", "proj"):
            node.cluster = _drawn_cluster(v, c, v.scope_chain(node.id))
        elif node.kind == "box":
            chain = v.scope_chain(node.id[len("scope:"):] + ".x")
            node.cluster = _drawn_cluster(v, c, chain[:-1])
    return nodes


def _op_node(v: GraphView, folding: Folding, head: str) -> DNode:
    members = folding.members.get(head, [head])
    nodes = [v.idx[m] for m in members]
    first, last = nodes[0], nodes[-1]
    params = sum(v.param[m] for m in members)
    error = next((m.error for m in nodes if m.error is not None), None)
    if first.provenance == "auto":
        kind: Literal["op", "merge", "proj"] = "proj"
        headline = first.projection.label if first.projection is not None else "projection (auto)"
        extra = [" + ".join(m.op for m in nodes)]
        why = first.projection.rule if first.projection is not None else ""
    else:
        op = op_of(first.op)
        kind = "merge" if op is not None and op.role == "merge" else "op"
        headline = _summary(v, first)
        extra = ["+ " + " + ".join(m.op for m in nodes[1:])] if len(nodes) > 1 else []
        if first.share is not None:
            extra.append(f"weights of {first.share}")
        why = ""
    tip = [f"{first.name} ({first.op})" + (f" — {first.loc}" if first.loc else "")]
    if why:
        tip.append(f"auto projection: {why}")
        tip.append("nodes: " + ", ".join(f"{m.name} ({m.op})" for m in nodes))
    elif len(nodes) > 1:
        tip.append("folded: " + ", ".join(f"{m.name} ({m.op}, line {m.loc.line})" if m.loc else m.name
                                          for m in nodes[1:]))
    if first.path:
        tip.append(f"spec path: {first.path}")
    if first.share is not None:
        tip.append(f"shares the module of {first.share}")
    tip.append(f"output {fmt_shape(last.shape)}, {params:,} parameters")
    if error is not None:
        tip.append(error.render())
    return DNode(id=head, kind=kind, head=headline, name=first.name if kind != "proj" else parent(first.name)
                 or first.name, extra=extra, params=params, shape=last.shape, tooltip="\n".join(tip),
                 error=error.message if error is not None else None, unknown=last.shape is None and error is None)


def _box_node(v: GraphView, did: str) -> DNode:
    """One box for a whole scope (``depth=``): every instance of a collapsed repeat counts."""
    path = did[len("scope:"):]
    s = v.scopes[path]
    members = [n for n in v.members_of[path] if not n.disabled]
    outs = [m for m in members if m.name in v.g.outputs
            or any(not c.startswith(path + ".") for c in v.consumers.get(m.name, []))]
    what = s.block or s.kind
    params = sum(v.param[m.name] for m in members)
    errs = [m.error for m in members if m.error is not None]
    return DNode(id=did, kind="box", head=path, name="", extra=[f"{what} ×{s.count}" if s.kind == "repeat" else what],
                 params=params, shape=outs[-1].shape if outs else members[-1].shape,
                 error=errs[0].message if errs else None,
                 tooltip=(f"{path}: {s.kind} of {len(members)} nodes" + (f" — {s.loc}" if s.loc else "")
                          + f"\n{params:,} parameters" + (f"\n{errs[0].render()}" if errs else "")))


def _summary(v: GraphView, n: Node) -> str:
    """The op and its telling attributes (``conv 3×3/2 64→128``): the op's own label."""
    op = op_of(n.op)
    if op is None:
        return n.op
    try:
        return op.label(n.attrs, [v.shapes.get(i) for i in n.inputs])
    except (AttributeError, ArchSpecError):  # a hand-built node whose attributes the op refuses
        return n.op


# - clusters -

def _is_cluster(v: GraphView, c: Collapse, path: str) -> bool:
    """Repeats, groups, top-level blocks, and the instances of an expanded repeat."""
    s = v.scopes[path]
    up = v.scopes.get(parent(path))
    if s.kind in ("repeat", "group"):
        return True
    if up is None:
        return True
    if up.kind == "repeat":
        return up.path not in c.reps or c.reps[up.path] > 1
    return up.kind == "group"


def _drawn_cluster(v: GraphView, c: Collapse, chain: list[str]) -> str | None:
    drawn = [x for x in chain if _is_cluster(v, c, x)]
    return drawn[-1] if drawn else None


def _clusters(v: GraphView, c: Collapse, d: Drawing) -> dict[str, DCluster]:
    used: set[str] = set()
    for node in d.nodes.values():
        x = node.cluster
        while x is not None and x not in used:
            used.add(x)
            x = _drawn_cluster(v, c, v.scope_chain(x + ".x")[:-1])
    clusters: dict[str, DCluster] = {}
    for s in v.g.scopes:
        if s.path not in used:
            continue
        up = _drawn_cluster(v, c, v.scope_chain(s.path + ".x")[:-1])
        params = sum(v.param[m.name] for m in v.members_of[s.path])
        note = ""
        if s.kind == "repeat":
            label = f"{s.path} · {s.block} ×{s.count}" + (" · dense" if s.connect == "dense" else "")
            if c.reps.get(s.path) == 1:
                note = f"\nthe first of {s.count} alike is drawn"
            elif c.reps.get(s.path) == 2 and s.count is not None and s.count > 2:
                note = f"\nthe second stands for the {s.count - 1} after the first"
            kind = "repeat"
        elif s.kind == "group":
            label, kind = s.path, "group"
        else:
            label = f"{s.path} · {s.block}" if s.block else s.path
            kind = "instance" if up is not None and v.scopes[up].kind == "repeat" else "block"
            r = parent(s.path)
            if kind == "instance" and c.reps.get(r) == 2 and c.instances[r].index(s.path) == 1:
                count = len(c.instances[r]) - 1
                label = f"{s.path} … {c.instances[r][-1]} · ×{count}" if count > 1 else label
                params = sum(v.param[m.name] for i in c.instances[r][1:] for m in v.members_of[i])
        if params:
            label += f" · {fmt_count(params)} params"
        label += note
        what = {"repeat": f"repeat of block {s.block} ×{s.count}, connect: {s.connect}",
                "block": f"instance of block {s.block}", "group": "group"}[s.kind]
        tip = f"{s.path}: {what}" + (f" — {s.loc}" if s.loc else "") + f"\n{params:,} parameters"
        clusters[s.path] = DCluster(s.path, kind, label, up, tip)
    return clusters


# - edges -

def _edges(v: GraphView, roles: Roles, folding: Folding, c: Collapse, ids: DrawnIds, d: Drawing) -> list[DEdge]:
    g = v.g
    edges: list[DEdge] = []
    seen: dict[tuple[str, str, str], DEdge] = {}
    for n in g.nodes:
        dst = ids.ids[n.name]
        if dst is None or dst not in d.nodes:
            continue
        prev = folding.bus.get(n.name)
        bus = prev is not None and ids.ids.get(prev) in d.nodes
        for slot, src in enumerate(n.inputs):
            carried = 1
            if bus and prev is not None and slot != roles.main_in.get(n.name):
                # A dense concat's other inputs are exactly the previous concat's: draw
                # that one edge (the running concat) instead of one per earlier layer.
                src, carried = prev, len(n.inputs) - 1
            src_r = v.resolve(src)
            u = ids.ids.get(src_r)
            if u is None or u == dst or u not in d.nodes:
                continue
            if c.inter_instance(v, src_r, n.name):
                continue
            role, span = roles.of(v, n, slot)
            if carried > 1 and prev is not None:
                span = roles.depth[n.inputs[roles.main_in[n.name]]] - roles.depth[prev]
            key = (u, dst, role)
            if key in seen:
                seen[key].count += 0 if carried > 1 else 1
                if span is not None and (seen[key].span or 0) < span:
                    seen[key].span = span  # a collapsed repeat's skips: the longest
                continue
            e = DEdge(u, dst, role, v.shapes.get(src), span, error=n.error is not None, carried=carried)
            seen[key] = e
            edges.append(e)
    for label, out in g.named_outputs():
        oid = f"output:{label}"
        if oid in d.nodes:
            drawn = out if out in g.inputs else ids.ids.get(v.resolve(out))
            if drawn is not None:
                edges.append(DEdge(drawn, oid, "main", v.shapes.get(out)))
    for r, count in sorted(c.dense_loops.items()):
        inst0 = c.instances[r][0]
        ins = [x for x in d.nodes.values() if x.id.startswith(inst0 + ".")]
        if ins and count:
            edges.append(DEdge(ins[-1].id, ins[0].id, "concat", None, count=count, dense=True))
    return edges


# - title, colours -

def _title(v: GraphView) -> str:
    g = v.g
    total = sum(v.param.values())
    ins = ", ".join(f"{k} {fmt_shape(tuple(s))}" for k, s in g.inputs.items())
    outs = ", ".join((f"{k} " if g.output_keys is not None else "") + fmt_shape(v.shapes.get(o))
                     for k, o in g.named_outputs())
    errs = len(g.errors())
    bad = f" · {errs} error{'s' if errs > 1 else ''}" if errs else ""
    return f"{g.name} · {total:,} params · {ins} → {outs}{bad}"


def _resolutions(v: GraphView) -> list[tuple[int, ...]]:
    sizes = {tuple(s[1:]) for s in v.shapes.values() if s is not None and len(s) >= 2}
    return sorted(sizes, key=lambda t: (-prod(t), t))
