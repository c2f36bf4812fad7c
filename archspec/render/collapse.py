"""Collapsing: which IR nodes one drawn node stands for.

Three pure steps, each returning a value: :func:`fold` groups norms and activations with
the op before them (and an auto projection's nodes into one); :func:`collapse` decides
which repeats are drawn as their first instance (or first and second) without hiding an
edge; :func:`drawn_ids` maps every IR name to the drawn node standing for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ArchSpecError, close_matches
from ..ir import Node, Scope
from .roles import Roles
from .view import GraphView, op_of, parent


@dataclass(frozen=True)
class Folding:
    """Folded groups: each node's head, each head's members, and dense concats drawn as a bus."""

    group: dict[str, str]  # node -> the head of its group (itself when it heads one)
    members: dict[str, list[str]]  # head -> the nodes it stands for, in graph order
    bus: dict[str, str]  # dense concat -> the previous concat whose inputs it repeats


def fold(v: GraphView, roles: Roles, on: bool = True) -> Folding:
    """Fold norms/activations into the op before them (when ``on``); one group per auto projection."""
    group: dict[str, str] = {}
    proj: dict[tuple[str, int], str] = {}
    for n in v.g.nodes:
        if n.disabled:
            continue
        if n.provenance == "auto":
            key = (n.projection.merge, n.projection.slot) if n.projection is not None else ("", 0)
            group[n.name] = proj.setdefault(key, n.name)
            continue
        head = n.name
        op = op_of(n.op)
        if on and op is not None and op.foldable and len(n.inputs) == 1 and n.error is None:
            p = n.inputs[0]
            pn = v.idx.get(p)
            if (pn is not None and pn.provenance != "auto" and not pn.disabled
                    and v.consumers.get(p) == [n.name] and p not in v.g.outputs
                    and parent(p) == parent(n.name) and pn.error is None):
                head = group[p]
        group[n.name] = head
    # Dense repeats: each concat whose other inputs are exactly the previous concat's.
    bus: dict[str, str] = {}
    last: dict[str, Node] = {}
    for n in v.g.nodes:
        r = n.dense
        if r is None or n.op != "concat":
            continue
        before = last.get(r)
        main = roles.main_in.get(n.name)
        if before is not None and main == len(n.inputs) - 1 and tuple(n.inputs[:-1]) == tuple(before.inputs):
            bus[n.name] = before.name
        last[r] = n
    members: dict[str, list[str]] = {}
    for name, head in group.items():
        members.setdefault(head, []).append(name)
    return Folding(group=group, members=members, bus=bus)


@dataclass(frozen=True)
class Collapse:
    """Which repeats are drawn collapsed, and how many of their instances are drawn."""

    instances: dict[str, list[str]]  # repeat -> its instances' scope paths
    instance_no: dict[str, dict[str, int]]  # repeat -> instance path -> its index
    reps: dict[str, int]  # collapsed repeat -> instances drawn: the first, or first and second
    dense_loops: dict[str, int]  # collapsed dense repeat -> the concat skips its loop stands for

    @property
    def collapsed(self) -> set[str]:
        return set(self.reps)

    def where(self, r: str, name: str) -> int | None:
        """Instance index of ``name`` in repeat ``r``; -1 for r's own nodes (dense concats); None outside."""
        if not name.startswith(r + "."):
            return None
        first = name[len(r) + 1:].split(".", 1)[0]  # an instance's name is one identifier
        k = self.instance_no[r].get(f"{r}.{first}")
        return -1 if k is None or "." not in name[len(r) + 1:] else k

    def kept_extra(self, v: GraphView, r: str, name: str) -> bool:
        """A repeat's own node (a dense concat) that feeds outside the repeat, or an output."""
        return name in v.g.outputs or any(self.where(r, c) is None for c in v.consumers.get(name, []))

    def inter_instance(self, v: GraphView, src: str, dst: str) -> bool:
        """An edge between two instances of a collapsed repeat: the ×N stands for it."""
        common = set(v.scope_chain(src)) & set(v.scope_chain(dst)) & self.reps.keys()
        for r in sorted(common):
            a, b = self.where(r, src), self.where(r, dst)
            if a is not None and b is not None and a != b and -1 not in (a, b):
                return not (self.reps[r] == 2 and {a, b} == {0, 1})  # first -> second is drawn
            if a is not None and b is not None and (a == -1) != (b == -1):
                # instance <-> a hidden dense concat
                extra = src if a == -1 else dst
                if not self.kept_extra(v, r, extra):
                    return True
        return False


def expanded(v: GraphView, expand: Iterable[str] | str) -> set[str]:
    """The repeats ``expand`` names (``"all"``: every one); an unknown name is an error."""
    repeats = [s.path for s in v.g.scopes if s.kind == "repeat"]
    names = [expand] if isinstance(expand, str) else list(expand)
    if "all" in names:
        return set(repeats)
    for name in names:
        if name not in repeats:
            listed = ", ".join(repeats) if repeats else "none (the spec has no repeat)"
            raise ArchSpecError(f"--expand '{name}' is not a repeat of '{v.g.name}'"
                                f"{close_matches(name, repeats)}", expected=f"one of: {listed}, or all", option="--expand")
    return set(names)


def collapse(v: GraphView, expand: set[str]) -> Collapse:
    """Which repeats draw collapsed (as their first instance) without hiding an edge."""
    instances: dict[str, list[str]] = {}
    for s in v.g.scopes:
        up = v.scopes.get(parent(s.path))
        if s.kind == "block" and up is not None and up.kind == "repeat":
            instances.setdefault(up.path, []).append(s.path)
    c = Collapse(instances=instances,
                 instance_no={r: {inst: k for k, inst in enumerate(insts)} for r, insts in instances.items()},
                 reps={}, dense_loops={})
    for s in v.g.scopes:
        if s.kind != "repeat" or s.path in expand or len(instances.get(s.path, [])) < 2:
            continue
        loops = _collapsible(v, c, s)
        if loops is None:
            continue
        c.reps[s.path] = 1 if s.connect == "dense" or _alike(v, instances[s.path]) else 2
        if loops:
            c.dense_loops[s.path] = loops
    return c


def _alike(v: GraphView, instances: list[str]) -> bool:
    """Are the first and second instance the same ops with the same attributes?"""
    def signature(inst: str) -> list[tuple[str, str, str, str]]:
        return [(n.name[len(inst):], n.op, n.provenance, repr(sorted(n.attrs.items())))
                for n in v.members_of[inst]]

    first, second = instances[:2]
    return signature(first) == signature(second)


def _collapsible(v: GraphView, c: Collapse, s: Scope) -> int | None:
    """None when collapsing repeat ``s`` would hide an edge or an error; else the number of
    concat skips a dense repeat's loop stands for (0 for a chain)."""
    r, last = s.path, len(c.instances[s.path]) - 1
    r_input: set[str] = set()
    for n in v.members_of[r]:
        w = c.where(r, n.name)
        if w != 0 and n.error is not None:
            return None  # never hide an error
        shown_end = w == last or (w == -1 and c.kept_extra(v, r, n.name))
        if n.name in v.g.outputs and not shown_end:
            return None
        for src in n.inputs:
            src = v.resolve(src)
            if c.where(r, src) is None:  # entering r
                if w == 0 or (w == -1 and c.kept_extra(v, r, n.name)):
                    r_input.add(src)
                elif w == -1 and s.connect == "dense" and src in r_input:
                    pass  # the block input to a dense concat: the loop stands for it
                else:
                    return None
        if not shown_end and any(c.where(r, x) is None for x in v.consumers.get(n.name, [])):
            return None  # leaving r from an instance that will not be drawn
    if s.connect == "dense":
        hidden = [n for n in v.members_of[r] if c.where(r, n.name) == -1 and not c.kept_extra(v, r, n.name)]
        return sum(len(n.inputs) - 1 for n in hidden)  # all but each concat's main input
    return 0


@dataclass(frozen=True)
class DrawnIds:
    """Every IR name -> the drawn id standing for it (None: not drawn)."""

    ids: dict[str, str | None]
    hidden_rep: dict[str, bool]  # mapped onto a drawn instance of a collapsed repeat


def drawn_ids(v: GraphView, folding: Folding, c: Collapse, depth: int | None) -> DrawnIds:
    """Map each IR name through disabled nodes, collapsed repeats, ``depth`` boxes and folding."""
    ids: dict[str, str | None] = {k: k for k in v.g.inputs}
    hidden: dict[str, bool] = {}
    for n in v.g.nodes:
        if n.disabled:
            ids[n.name] = None
            continue
        rep, mapped = _rep(v, c, n.name)
        hidden[n.name] = mapped
        if rep is None:
            ids[n.name] = None
            continue
        if depth is not None:
            chain = v.scope_chain(rep)
            if len(chain) > depth:
                ids[n.name] = "scope:" + chain[depth]
                continue
        ids[n.name] = folding.group.get(rep, rep)
    return DrawnIds(ids=ids, hidden_rep=hidden)


def _rep(v: GraphView, c: Collapse, name: str) -> tuple[str | None, bool]:
    """The name in the drawn (first) instance of each collapsed repeat around ``name``."""
    mapped = False
    for r in v.scope_chain(name):
        if r not in c.reps or not name.startswith(r + "."):
            continue
        w = c.where(r, name)
        if w == -1:
            if not c.kept_extra(v, r, name):
                return None, True
        elif w is not None and w >= c.reps[r]:
            # Instances past the drawn ones map onto the last drawn one.
            shown = c.instances[r][c.reps[r] - 1]
            name = shown + name[len(c.instances[r][w]):]
            mapped = True
            if name not in v.idx:
                return None, True
    return name, mapped
