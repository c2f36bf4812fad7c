"""In place where autograd allows it: activations and residual adds overwrite their input.

A hand-written ResNet says ``ReLU(inplace=True)`` and ``out += identity``; archspec
decides the same from the graph. An op may overwrite its input tensor ``t`` when

- ``t`` is a fresh tensor made by an archspec op (``Op.fresh_output``): never a graph
  input, never a view or alias of another tensor (flatten, dropout, identity), never state;
- the op is the only reader of ``t`` (it has one user, which reads it once), so ``t`` is
  neither a graph output nor an input of another op that may save it for backward;
- the op that made ``t`` does not save it for backward (``Op.saves_output``: relu,
  sigmoid, tanh and softmax do; an in-place op's own ``Op.inplace_saves_output``);
- ``t`` has the result's shape (a broadcasting add cannot write into its smaller input).

So ``bn -> relu`` and ``bn2, x -> add -> relu`` run in place as in torchvision, while
``relu -> add`` (relu saves its result) or a tensor read by a skip connection stays out
of place. The pass works on the emitted ``torch.fx`` graph, where identities have
already disappeared, and imports no torch itself.

With ``autograd=False`` (models that only run under ``torch.no_grad``, see
archspec/optimize.py) the saved-for-backward rule is dropped, and ``last_reader_may_overwrite``
lets a tensor's last reader overwrite it once every earlier reader is done with it.

A rewritten node records which of its arguments it overwrites in
``node.meta["archspec_overwrites"]`` (the argument's position).
"""

from __future__ import annotations

from typing import Any

from ..ops import REGISTRY, Op

OVERWRITES = "archspec_overwrites"


def _op(node: Any) -> tuple[Op, dict[str, Any]] | None:
    """The archspec op and its raw attributes behind an fx node, if the node is one op's result."""
    info = node.meta.get("archspec")
    if not info or info.get("op") in (None, "input"):
        return None
    if info["op"] not in REGISTRY:
        return None
    return REGISTRY.get(info["op"]), info.get("attrs") or {}


def meta_shape(node: Any) -> Any:
    """The archspec shape (without the batch) recorded on an fx node, if any."""
    info = node.meta.get("archspec") if hasattr(node, "meta") else None
    return None if not info else info.get("shape")


def make_inplace(graph: Any, *, autograd: bool = True) -> list[str]:
    """Rewrite the call_function nodes of an fx ``graph`` that may run in place; returns
    the archspec node names made in place, in graph order."""
    saves: dict[Any, bool] = {}  # fx node -> its result is saved for backward
    done: list[str] = []
    for node in graph.nodes:
        found = _op(node)
        if found is None:
            continue
        op, raw = found
        saves[node] = op.saves_output
        if node.op != "call_function" or node.kwargs.get("inplace"):
            continue
        args = list(node.args)
        if not args or not all(meta_shape(a) is not None for a in args):
            continue
        attrs = raw if isinstance(raw, op.Attrs) else op.Attrs.model_validate(dict(raw))
        shapes = [tuple(meta_shape(a)) for a in args]
        out_shape = tuple(node.meta["archspec"]["shape"])
        for slot, t in enumerate(args):
            if not _overwritable(t, node, args, saves, autograd) or shapes[slot] != out_shape:
                continue
            call = op.inplace(attrs, shapes, args, slot)
            if call is None:
                continue
            node.target, node.args, node.kwargs = call[0], tuple(call[1]), dict(call[2])
            node.meta[OVERWRITES] = slot
            saves[node] = op.inplace_saves_output
            done.append(node.meta["archspec"]["node"])
            break
    return done


def _overwritable(t: Any, user: Any, args: list[Any], saves: dict[Any, bool], autograd: bool) -> bool:
    found = _op(t)
    if found is None or not found[0].fresh_output:
        return False
    if len(t.users) != 1 or sum(a is t for a in args) != 1:
        return False
    return not (autograd and saves.get(t, True))


def last_reader_may_overwrite(t: Any, reader: Any, order: dict[Any, int]) -> bool:
    """Without autograd, may ``reader`` overwrite the fresh tensor ``t``? Yes when it reads
    ``t`` once and last (``order``: each node's position in the graph, which a GraphModule
    runs in order), and each earlier reader made a fresh tensor without overwriting ``t``,
    so nothing that aliases ``t`` is read after ``reader``: a graph output, a view
    (flatten, identity) or an in-place result would be a reader that is not fresh or not
    earlier."""
    found = _op(t)
    if found is None or not found[0].fresh_output or sum(a is t for a in reader.args) != 1 or reader.kwargs:
        return False
    for user in t.users:
        if user is reader:
            continue
        made = _op(user)
        if made is None or not made[0].fresh_output or order[user] >= order[reader]:
            return False
        slot = user.meta.get(OVERWRITES)
        if slot is not None and user.args[slot] is t:
            return False
    return True
