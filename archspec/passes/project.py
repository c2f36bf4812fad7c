"""Project: insert the shortcut projections that residual merges need.

Element-wise merges broadcast first, as torch does: a per-sample dim of size 1 stretches
(a C×1×1 gate, a 1×H×W map), and such a merge is left alone. Only when a residual ``add``
joins shapes that cannot broadcast is every input whose shape differs from input 0's
projected onto it, by the merge's policy: its own ``projection:`` over
``defaults.projection`` (``kind``, ``name``, ``bias``):

==================  =========================================================  ======
kind                inserted nodes                                              params
==================  =========================================================  ======
``conv``            1x1 conv, stride = spatial ratio (pre-activation shortcut)  yes
``conv_bn``         1x1 conv, stride = spatial ratio; then bn                   yes
``avgpool_conv_bn`` avgpool k=s=ratio (ceil, no pad count); 1x1 conv; bn       yes
``zero_pad``        every ratio-th position, zero channels appended            no
``none``            nothing: a mismatch is an error                            —
==================  =========================================================  ======

The conv has a bias only with ``bias: true``. Feature vectors ``(F,)`` have no spatial
dims; the conv kinds project them with one ``linear``. The spatial ratio must be whole
(32 against 16: stride 2); a size that stride-2 layers round up (7 against 4, 57 against
15: stride 2, 4) counts as whole, anything else (16 against 6) is an error, as is a
projection that would have to upsample.

Inserted nodes have ``provenance="auto"`` and deterministic names: inside a block
instance ``layer2.0`` they are ``layer2.0.downsample.0``/``.1`` (torchvision's; one
node, ``layer2.0.downsample``, for ``conv`` and ``zero_pad``), at the top level
``<add>_downsample.0``. Run :func:`~archspec.passes.infer` before: ``project`` infers the
graph again when it inserted anything, so its result is fully annotated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ShapeError
from ..ir import Graph, Node, Projection, Shape
from ..ops import REGISTRY
from ..ops.base import broadcast, fmt
from .infer import infer

DEFAULT_POLICY: Mapping[str, Any] = {"kind": "conv_bn", "name": "downsample", "bias": False}


def policy_of(graph: Graph, n: Node) -> dict[str, Any]:
    """The projection policy of merge ``n``: its own ``projection:`` over the spec's
    ``defaults.projection`` over archspec's defaults."""
    policy = {**DEFAULT_POLICY, **graph.init.get("projection", {})}
    own = n.attrs.get("projection")
    if own is not None:
        policy.update({k: v for k, v in own.items() if v is not None})
    return policy


def project(graph: Graph) -> Graph:
    """Insert the projections that the inferred ``graph``'s merges need; the result is
    inferred (inserted nodes and every node after them), or ``graph`` itself when no
    merge needed one."""
    shapes: dict[str, Shape | None] = {k: tuple(v) for k, v in graph.inputs.items()}
    for n in graph.nodes:
        shapes[n.name] = n.shape
    taken = {n.name for n in graph.nodes} | set(graph.inputs)
    out: list[Node] = []
    changed = False
    for n in graph.nodes:
        op = REGISTRY.get(n.op)
        ins = [shapes[i] for i in n.inputs]
        if not op.projectable or any(s is None for s in ins) or broadcast(ins) is not None:  # type: ignore[arg-type]  # no None: checked before
            out.append(n)
            continue
        changed = True
        policy = policy_of(graph, n)
        kind = policy["kind"]
        target = ins[0]
        assert target is not None
        new_inputs = list(n.inputs)
        error = None
        for slot, (src, s) in enumerate(zip(n.inputs, ins, strict=True)):
            if s == target:
                continue
            assert s is not None
            try:
                stride = _stride(n, src, s, target, kind)
                nodes = _projection(n, slot, src, s, target, stride, policy, _name(n, policy["name"], taken))
            except ShapeError as e:
                error = e.located(n.loc, n.path, graph.source)
                break
            taken.update(x.name for x in nodes)
            out.extend(nodes)
            new_inputs[slot] = nodes[-1].name
        if error is not None:
            out.append(n.replace(error=error, shape=None))
        else:
            out.append(n.replace(inputs=tuple(new_inputs), error=None))
    if not changed:
        return graph
    return infer(graph.replace(nodes=tuple(out)))


def _name(n: Node, base: str, taken: set[str]) -> str:
    scope, _, leaf = n.name.rpartition(".")
    name = f"{scope}.{base}" if scope else f"{leaf}_{base}"
    k = 1
    candidate = name
    while candidate in taken or any(t.startswith(candidate + ".") for t in taken):
        candidate = f"{name}_{k}"
        k += 1
    return candidate


def _stride(n: Node, src: str, s: Shape, t: Shape, kind: str) -> int:
    """The integer stride taking ``s``'s spatial size to ``t``'s, or a ShapeError."""
    what = f"node '{n.name}' ({n.op}): input '{src}' is {fmt(s)} but input 0 is {fmt(t)}"
    if kind == "none":
        raise ShapeError(f"{what}, and the projection policy is 'none'", expected=fmt(t), got=fmt(s),
                         fix="make the shapes equal, or set a projection kind (projection: {kind: conv_bn} on the "
                             "node or in defaults)")
    if len(s) != len(t):
        raise ShapeError(f"{what}: ranks differ, so no projection can join them", expected=fmt(t), got=fmt(s))
    strides = set()
    for a, b in zip(s[1:], t[1:], strict=True):
        if b > a:
            # A projection maps input `src` onto input 0 and can only shrink it: here input 0 is the larger.
            raise ShapeError(f"{what}: a projection would have to upsample {a} to {b}", expected=fmt(t), got=fmt(s),
                             fix=f"a projection maps each input onto input 0 and can only shrink it: upsample "
                                 f"'{src}' to input 0's size before the {n.op} (op: upsample), or, if input 0 is "
                                 f"the one to shrink, list '{src}' first")
        if a == 1:
            continue  # every stride keeps a size of 1: no constraint from this dim
        k = whole_ratio(a, b)
        if k is None:
            raise ShapeError(f"{what}: the spatial ratio {a}/{b} is not a whole number", expected=fmt(t), got=fmt(s),
                             fix="change a stride or padding so the sizes divide evenly")
        strides.add(k)
    if len(strides) > 1:
        raise ShapeError(f"{what}: spatial dims shrink by different ratios {sorted(strides)}", expected=fmt(t), got=fmt(s))
    stride = strides.pop() if strides else 1
    if kind == "zero_pad" and t[0] < s[0]:
        raise ShapeError(f"{what}: zero_pad cannot reduce {s[0]} channels to {t[0]}", expected=fmt(t), got=fmt(s),
                         fix="use projection kind conv_bn")
    return stride


def whole_ratio(a: int, b: int) -> int | None:
    """The stride taking a size ``a`` to ``b`` when the ratio is whole, else ``None``.

    ``a = s * b`` for any ``s``; besides, a power-of-two ``s`` may round up, as a chain of
    stride-2 layers does on odd sizes (``ceil(57 / 4) = 15``). ``16`` against ``6`` is no
    whole ratio, though a stride of 3 happens to round 16 to 6.

    >>> whole_ratio(32, 16), whole_ratio(7, 4), whole_ratio(57, 15), whole_ratio(16, 6)
    (2, 2, 4, None)
    """
    if b < 1 or a < b:
        return None
    if a % b == 0:
        return a // b
    s = 2
    while s < a:
        if -(-a // s) == b:
            return s
        s *= 2
    return None


def _projection(n: Node, slot: int, src: str, s: Shape, t: Shape, stride: int, policy: Mapping[str, Any],
                base: str) -> list[Node]:
    kind: str = policy["kind"]
    bias: bool = policy["bias"]
    sp = "x".join("1" for _ in s[1:])
    how = "zero-pad" if kind == "zero_pad" else f"{sp}/{stride}" if sp else "linear"
    label = f"proj {how}, {s[0]}\u2192{t[0]} (auto)"
    why = Projection(kind, n.name, slot, label, f"{n.op} '{n.name}' joins {fmt(s)} into {fmt(t)}: {kind} projection")

    def node(name: str, op: str, attrs: dict[str, Any], inp: str, stateful: bool) -> Node:
        return Node(name, op, REGISTRY.get(op).Attrs.model_validate(attrs), (inp,), module=name if stateful else None,
                    provenance="auto", loc=n.loc, path=n.path, projection=why)

    if kind == "zero_pad":
        return [node(base, "zero_pad", {"out": t[0], "stride": stride}, src, False)]
    if len(s) == 1:
        # Feature vectors have no spatial dims: the projection is a linear map.
        name = base if kind == "conv" else f"{base}.0"
        return [node(name, "linear", {"out": t[0], "bias": bias}, src, True)]
    conv = {"out": t[0], "k": 1, "stride": stride, "padding": 0, "bias": bias}
    if kind == "conv":
        return [node(base, "conv", conv, src, True)]
    if kind == "conv_bn":
        a = node(f"{base}.0", "conv", conv, src, True)
        return [a, node(f"{base}.1", "bn", {}, a.name, True)]
    # avgpool_conv_bn (ResNet-D): pool first so the 1x1 conv sees every position.
    nodes: list[Node] = []
    inp = src
    if stride > 1:
        pool = node(f"{base}.0", "avgpool", {"k": stride, "stride": stride, "ceil_mode": True,
                                              "count_include_pad": False}, src, False)
        nodes.append(pool)
        inp = pool.name
    c = node(f"{base}.1", "conv", {**conv, "stride": 1}, inp, True)
    return [*nodes, c, node(f"{base}.2", "bn", {}, c.name, True)]
