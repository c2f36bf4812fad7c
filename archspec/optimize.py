"""``optimize="inference"``: exact rewrites of a compiled model that only runs forward.

archspec sees the whole graph, so it can rewrite what a hand-written model leaves to
the user, without changing the function the model computes (up to float rounding):

- batch norm folded into the conv before it (``W' = W * gamma / sqrt(var + eps)``,
  ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``), where the conv's output feeds
  only that batch norm and neither module is shared with another node;
- dropout dropped (it is the identity in eval mode);
- every activation and add whose input has no other reader runs in place (without
  autograd, nothing is saved for backward);
- 4-d (N, C, H, W) models run in ``channels_last`` memory format: the weights are stored
  NHWC, 4-d inputs are converted on entry and 4-d outputs back to contiguous on exit;
- 2-d convolutions run oneDNN's kernel on the CPU (archspec/onednn.py): PyTorch would send
  the 1x1 ones of a small batch to a slower GEMM path that copies channels_last tensors;
  a relu that alone reads a conv's output is applied by oneDNN in the conv's own pass, and
  a residual add (with its relu) that alone reads a conv's output becomes oneDNN's sum
  post-op: the conv accumulates into the other operand's memory, where that operand is a
  fresh tensor the add reads last.
  Each conv keeps its weight reordered into oneDNN's own layout, made on the first call
  rather than on every call. Moved off the CPU, the same graph runs plain convolutions
  followed by the add and the relu: no op in it is CPU-only. Under ``torch.autocast``
  the convs run plainly too, so autocast casts them as it does ``nn.Conv2d``.

The result is in eval mode with frozen parameters; its ``state_dict`` is not the
spec's (the folded batch norms are gone), so load weights before optimising
(``archspec.compile(spec, weights=..., optimize="inference")``).
"""

from __future__ import annotations

import operator
from typing import Any

from .errors import ArchSpecError
from .passes.inplace import OVERWRITES, last_reader_may_overwrite, make_inplace, meta_shape

LEVELS = ("none", "inference")


def check_level(level: str | None) -> str:
    """The optimisation level, or an ArchSpecError naming the valid ones."""
    level = "none" if level is None else level
    if level not in LEVELS:
        raise ArchSpecError(f"unknown optimize level {level!r}", expected=" or ".join(map(repr, LEVELS)),
                            got=repr(level), fix="use optimize='inference' for a forward-only model, or leave it out")
    return level


def optimize(model: Any, level: str | None) -> Any:
    """Apply ``level`` (``"none"`` or ``"inference"``) to a compiled GraphModule, in place."""
    if check_level(level) == "inference":
        optimize_for_inference(model)
    return model


def optimize_for_inference(model: Any) -> Any:
    """Rewrite a compiled GraphModule for forward-only use; returns the same object."""
    model.eval()
    model.requires_grad_(False)
    fold_batch_norms(model)
    drop_dropouts(model)
    make_inplace(model.graph, autograd=False)
    if _has_4d_conv(model):
        to_channels_last(model)
        use_onednn_convs(model)
        fuse_conv_relu(model)
        fuse_conv_add(model)
    model.graph.lint()
    model.graph.eliminate_dead_code()
    model.recompile()
    model.meta["archspec_optimize"] = "inference"
    return model


def _calls(model: Any) -> dict[str, int]:
    """How many call_module nodes call each module path (a shared module is called twice)."""
    count: dict[str, int] = {}
    for n in model.graph.nodes:
        if n.op == "call_module":
            count[n.target] = count.get(n.target, 0) + 1
    return count


def fold_batch_norms(model: Any) -> list[str]:
    """Fold each eval-mode batch norm into the conv that feeds only it; returns the folded
    batch norms' module paths."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    calls = _calls(model)
    folded = []
    for bn_node in list(model.graph.nodes):
        if bn_node.op != "call_module" or not isinstance(model.get_submodule(bn_node.target), norms):
            continue
        conv_node = bn_node.args[0]
        if getattr(conv_node, "op", None) != "call_module" or len(conv_node.users) != 1:
            continue
        conv, bn = model.get_submodule(conv_node.target), model.get_submodule(bn_node.target)
        if not isinstance(conv, convs) or bn.running_mean is None or calls[conv_node.target] != 1 \
                or calls[bn_node.target] != 1 or conv.out_channels != bn.num_features:
            continue
        _set_submodule(model, conv_node.target, fuse_conv_bn_eval(conv, bn))
        bn_node.replace_all_uses_with(conv_node)
        conv_node.meta["archspec"] = bn_node.meta.get("archspec", conv_node.meta.get("archspec"))
        model.graph.erase_node(bn_node)
        model.delete_submodule(bn_node.target)
        folded.append(bn_node.target)
    return folded


def drop_dropouts(model: Any) -> int:
    """Remove dropout calls (the identity in eval mode); returns how many."""
    from torch import nn

    calls = _calls(model)
    dropped = 0
    for n in list(model.graph.nodes):
        if n.op == "call_module" and isinstance(model.get_submodule(n.target), nn.modules.dropout._DropoutNd):
            n.replace_all_uses_with(n.args[0])
            model.graph.erase_node(n)
            calls[n.target] -= 1
            if calls[n.target] == 0:
                model.delete_submodule(n.target)
            dropped += 1
    return dropped


def use_onednn_convs(model: Any) -> int:
    """Replace each ``nn.Conv2d`` by an :class:`~archspec.onednn.OneDNNConv2d` sharing its
    parameters (same module path); returns how many."""
    from torch import nn

    from .onednn import OneDNNConv2d

    swapped = 0
    for path, m in list(model.named_modules()):
        if type(m) is nn.Conv2d and (new := OneDNNConv2d.from_conv(m)) is not None:
            _set_submodule(model, path, new)
            swapped += 1
    return swapped


def fuse_conv_relu(model: Any) -> int:
    """A oneDNN conv whose output only a ``relu_`` reads applies the relu itself (oneDNN's
    post-op, in the same pass over the output); returns how many. Runs after the in-place
    pass and use_onednn_convs; a module called from two places is left alone."""
    import torch

    from .onednn import OneDNNConv2d

    calls = _calls(model)
    fused = 0
    for relu in list(model.graph.nodes):
        if relu.op != "call_function" or relu.target is not torch.relu_ or len(relu.args) != 1:
            continue
        conv = relu.args[0]
        if getattr(conv, "op", None) != "call_module" or len(conv.users) != 1 or calls[conv.target] != 1:
            continue
        module = model.get_submodule(conv.target)
        if type(module) is not OneDNNConv2d or module.relu:
            continue
        module.relu = True
        relu.replace_all_uses_with(conv)
        conv.meta["archspec"] = relu.meta.get("archspec", conv.meta.get("archspec"))
        model.graph.erase_node(relu)
        fused += 1
    return fused


def fuse_conv_add(model: Any) -> int:
    """A residual add ``a += b`` (with the ``relu_`` that alone reads its sum, if any) where
    one operand is a oneDNN conv's output that nothing else reads, and the other a tensor
    the add may overwrite (its last reader, see ``last_reader_may_overwrite``), becomes the
    conv called with that operand: oneDNN writes ``conv(x) + other`` (and the relu) into
    ``other``'s memory in the conv's own pass. Returns how many. Runs after the in-place
    pass and fuse_conv_relu; a module called from two places is left alone."""
    import torch

    from .onednn import OneDNNConv2d

    calls = _calls(model)
    g = model.graph
    order = {n: i for i, n in enumerate(g.nodes)}
    fused = 0
    for add in list(g.nodes):
        if add.op != "call_function" or add.target is not operator.iadd or len(add.args) != 2 or add.kwargs \
                or meta_shape(add.args[0]) is None or meta_shape(add.args[0]) != meta_shape(add.args[1]):
            continue
        users = list(add.users)
        relu = users[0] if len(users) == 1 and users[0].op == "call_function" and users[0].target is torch.relu_ \
            and users[0].args == (add,) and not users[0].kwargs else None
        for conv, other in (add.args, reversed(add.args)):
            if getattr(conv, "op", None) != "call_module" or len(conv.users) != 1 or len(conv.args) != 1 \
                    or conv.args[0] is other or calls[conv.target] != 1 or not last_reader_may_overwrite(other, add, order):
                continue
            module = model.get_submodule(conv.target)
            if type(module) is not OneDNNConv2d or module.relu:
                continue
            module.relu = relu is not None
            last = relu or add
            with g.inserting_before(add):
                call = g.call_module(conv.target, (conv.args[0], other))
            call.meta = dict(last.meta)
            call.meta[OVERWRITES] = 1
            order[call] = order[add]
            last.replace_all_uses_with(call)
            if relu is not None:
                g.erase_node(relu)
            g.erase_node(add)
            g.erase_node(conv)
            fused += 1
            break
    return fused


def _has_4d_conv(model: Any) -> bool:
    from torch import nn

    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules())


def to_channels_last(model: Any) -> None:
    """Store 4-d weights NHWC; convert 4-d inputs on entry and 4-d outputs back on exit."""
    import torch

    model.to(memory_format=torch.channels_last)
    g = model.graph
    for ph in [n for n in g.nodes if n.op == "placeholder"]:
        if len(meta_shape(ph) or ()) != 3:
            continue
        with g.inserting_after(ph):
            cl = g.call_method("contiguous", (ph,), {"memory_format": torch.channels_last})
        ph.replace_all_uses_with(cl, delete_user_cb=lambda user, cl=cl: user is not cl)
    (out,) = [n for n in g.nodes if n.op == "output"]
    result = out.args[0]
    results = list(result.values()) if isinstance(result, dict) else result if isinstance(result, tuple) \
        else (result,)
    fixed = []
    for r in results:
        shape = meta_shape(r)
        if shape is not None and len(shape) == 3:
            with g.inserting_before(out):
                r = g.call_method("contiguous", (r,))
        fixed.append(r)
    out.args = (dict(zip(result, fixed, strict=True)) if isinstance(result, dict)
                else tuple(fixed) if isinstance(result, tuple) else fixed[0],)


def _set_submodule(model: Any, path: str, module: Any) -> None:
    parent, _, leaf = path.rpartition(".")
    owner = model.get_submodule(parent) if parent else model
    owner._modules[leaf] = module  # same slot, same order
