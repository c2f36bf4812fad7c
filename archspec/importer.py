"""Import: an ``nn.Module`` becomes an archspec :class:`~archspec.ir.Graph`, then spec text.

torch.fx traces the module. A submodule whose class an op builds (``REGISTRY.for_torch``,
a stateful op: ``nn.Conv2d`` is ``conv``) stays one ``call_module`` node, named by its
module path so the original ``state_dict`` loads into the compiled spec; every other
module is traced through, so ``nn.ReLU`` becomes the ``F.relu`` call the ``relu`` op reads
back. Each node's attributes come from its op's ``read``, and are checked by building the
module (on the meta device) or the call again: what an op cannot express exactly is an
error, never an approximation.

The tracer runs the module on an example input beside the trace (on the meta device:
shapes without arithmetic; eval mode, training flags restored), so shapes are concrete: code that branches on ``x.shape`` or
checks ``isinstance(x, torch.Tensor)`` takes the branch the real forward takes.

This module imports torch; :func:`from_module` is the entry point (``archspec.from_module``).
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .errors import ImportTargetError, UnsupportedModuleError
from .ir import Graph, Node, Scope, Shape
from .names import is_identifier, name_problem
from .ops import REGISTRY
from .ops.base import Op

ShapeArg = Sequence[int] | Sequence[Sequence[int]] | Mapping[str, Sequence[int]]

# Torch functions that are the same computation as one an op lists: the method and
# in-place spellings of a merge (``x += y``, ``x.add(y)``) and the method forms of ops.
_ALIASES: dict[Any, Any] = {
    operator.iadd: operator.add, torch.add: operator.add, operator.imul: operator.mul, torch.mul: operator.mul,
    torch.Tensor.add: operator.add, torch.Tensor.mul: operator.mul,
    torch.concat: torch.cat, torch.concatenate: torch.cat,
}
# Tensor methods that change nothing an archspec graph can see: the node is its input.
_NO_OPS = frozenset({"contiguous", "clone", "float", "detach"})
# Tensor properties the tracer answers from the example run (so code may branch on them).
_CONCRETE_ATTRS = frozenset({"shape", "ndim", "dtype", "device", "is_cuda", "requires_grad", "layout"})
_CONCRETE_METHODS = frozenset({"size", "dim", "numel", "nelement", "ndimension"})
_NOTHING: Any = object()
BATCH = 2  # the example run's batch: 2 tells a batch dim from a per-sample 1


def from_module(module: nn.Module, input_shape: ShapeArg, *, name: str | None = None) -> str:
    """The spec text of ``module``: blocks, repeats and params where its structure repeats.

    ``input_shape`` is the per-sample shape of its input (batch excluded), a list of them
    for several inputs, or a mapping ``{forward argument: shape}``. Module names are the
    original ones, so ``archspec.compile(text).load_state_dict(module.state_dict())``
    loads strictly.

    >>> import torchvision
    >>> text = from_module(torchvision.models.resnet18(), (3, 64, 64))
    >>> text.splitlines()[1]
    'name: resnet'
    """
    from .serialize import to_spec

    graph, arg_names = _import(module, input_shape, name)
    return to_spec(graph, same_builder(graph), arg_names=arg_names)


def same_builder(graph: Graph) -> Any:
    """``same(node, attrs)``: do ``attrs`` build what ``node``'s own attributes build (the
    module, on the meta device, or the call)? The writer leaves out what this allows."""
    shapes = graph.shapes()

    def same(n: Node, attrs: Mapping[str, Any]) -> bool:
        op = REGISTRY.get(n.op)
        ins = [s for s in graph.in_shapes(n, shapes) if s is not None]
        try:
            a = op.Attrs.model_validate(dict(attrs))
            if op.passthrough:
                return True
            if op.stateless:
                args = [f"x{k}" for k in range(len(ins))]
                return bool(op.call(a, ins, args) == op.call(n.attrs, ins, args))
            with torch.device("meta"):
                return repr(op.module(a, ins)) == repr(op.module(n.attrs, ins))
        except Exception:  # noqa: BLE001 - attributes an op refuses build nothing: not the same
            return False

    return same


def to_graph(module: nn.Module, input_shape: ShapeArg, *, name: str | None = None) -> Graph:
    """The flat, shaped archspec graph of ``module``: one node per op, dotted module names,
    a group scope per container module (its class name in ``Scope.block``)."""
    return _import(module, input_shape, name)[0]


def _import(module: nn.Module, input_shape: ShapeArg, name: str | None) -> tuple[Graph, dict[str, dict[str, str]]]:
    """The graph, and per module scope the forward() argument each value it reads is."""
    if not isinstance(module, nn.Module):
        raise ImportTargetError(f"expected a torch.nn.Module, got {type(module).__qualname__}",
                                fix="pass a module instance (call the constructor first)")
    shapes = _input_shapes(module, input_shape)
    with _eval_no_grad(module):
        tracer = _Tracer(module, shapes)
        try:
            fx_graph = tracer.trace(module)
        except (UnsupportedModuleError, ImportTargetError):
            raise
        except Exception as e:  # noqa: BLE001 - whatever the module's forward raised while traced
            where = tracer.where()
            raise UnsupportedModuleError(
                f"torch.fx cannot trace {where}: {type(e).__name__}: {e}",
                fix="trace-unfriendly code (control flow on tensor values, unsupported Python) must be "
                    "rewritten, or the module wrapped in an op registered with archspec.register_op") from None
    builder = _Builder(module, tracer, fx_graph, shapes, name or _spec_name(module))
    graph = builder.build()
    names = {path: {builder.alias[n]: arg for n, arg in args.items() if n in builder.alias}
             for path, args in tracer.arg_names.items()}
    return graph, names


# -- tracing ------------------------------------------------------------------------------

@contextmanager
def _eval_no_grad(module: nn.Module) -> Iterator[None]:
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, t in flags:
            m.training = t


def _input_shapes(module: nn.Module, spec: ShapeArg) -> dict[str, Shape]:
    import inspect

    try:
        params = [p for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params]
    if isinstance(spec, Mapping):
        out = {str(k): _shape(v) for k, v in spec.items()}
        unknown = [k for k in out if k not in names]
        if unknown:
            raise ImportTargetError(f"forward() of {type(module).__qualname__} has no argument '{unknown[0]}'",
                                    expected="one of: " + ", ".join(names), got=unknown[0])
        missing = [p.name for p in params if p.default is inspect.Parameter.empty and p.name not in out]
        if missing:
            raise ImportTargetError(f"forward() of {type(module).__qualname__} needs a shape for argument "
                                    f"'{missing[0]}'", fix="give a shape for every tensor argument")
        return out
    seq = list(spec)
    shapes = [_shape(s) for s in seq] if seq and not isinstance(seq[0], int) else [_shape(seq)]
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    if len(shapes) < len(required) or len(shapes) > len(names):
        raise ImportTargetError(
            f"forward() of {type(module).__qualname__} takes {len(required)} tensor argument(s) "
            f"({', '.join(names)}), got {len(shapes)} input shape(s)",
            fix="give one per-sample shape per input, e.g. (3, 224, 224), or a mapping {name: shape}")
    return dict(zip(names, shapes, strict=False))


def _shape(v: Any) -> Shape:
    if isinstance(v, int | str) or not all(isinstance(d, int) and d >= 1 for d in v):
        raise ImportTargetError(f"an input shape is a list of positive ints (per sample, no batch), got {v!r}",
                                fix="e.g. (3, 224, 224) for an image")
    return tuple(v)


class _Proxy(fx.Proxy):
    """A traced value that knows its example value: shape questions get real answers,
    and ``isinstance(x, torch.Tensor)`` is true, as it is in the real forward."""

    tracer: _Tracer

    def __getattr__(self, k: str) -> Any:
        if k in _CONCRETE_ATTRS or k in _CONCRETE_METHODS:
            return getattr(self.tracer.values[self.node], k)
        return super().__getattr__(k)

    def __len__(self) -> int:
        return len(self.tracer.values[self.node])

    @property  # type: ignore[misc]  # isinstance() consults __class__: a tensor to the traced code
    def __class__(self) -> type:
        value = self.tracer.values.get(self.node)
        return type(value) if isinstance(value, torch.Tensor) else _Proxy


class _Tracer(fx.Tracer):
    """fx's tracer with archspec's leaves, and a real example run beside the trace."""

    def __init__(self, root: nn.Module, shapes: Mapping[str, Shape]) -> None:
        super().__init__()
        self.root_module = root
        self.examples = {k: torch.empty(BATCH, *s, device="meta") for k, s in shapes.items()}
        self.values: dict[fx.Node, Any] = {}
        self.path_stack: list[str] = []
        self.arg_names: dict[str, dict[fx.Node, str]] = {}

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        op = REGISTRY.for_torch(type(m))
        return op is not None and not op.stateless

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        path = self.path_of_module(m)
        if not self.is_leaf_module(m, path):  # which argument of its forward() each traced value is
            import inspect

            bound: Mapping[str, Any]
            try:
                bound = inspect.signature(m.forward).bind(*args, **kwargs).arguments
            except (TypeError, ValueError):
                bound = {}
            for arg, value in bound.items():
                if type(value) is _Proxy:
                    self.arg_names.setdefault(path, {})[value.node] = arg
        self.path_stack.append(path)
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.path_stack.pop()

    def where(self) -> str:
        if not self.path_stack:
            return f"the forward of {type(self.root_module).__qualname__}"
        path = self.path_stack[-1]
        return f"'{path}' ({type(self.root_module.get_submodule(path)).__qualname__})"

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Proxy(node, self)

    def create_arg(self, a: Any) -> Any:
        if type(a) is _Proxy:
            return a.node
        return super().create_arg(a)

    def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, name: str | None = None,
                     type_expr: Any = None, proxy_factory_fn: Any = None) -> Any:
        p = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        node = p.node
        if kind in ("call_module", "get_attr"):  # fx patches nn.Module while tracing: run unpatched
            from torch.fx._symbolic_trace import _maybe_revert_all_patches

            with _maybe_revert_all_patches():
                self.values[node] = self._run(node)
        else:
            self.values[node] = self._run(node)
        if not isinstance(self.values[node], torch.Tensor) and kind != "placeholder":
            value = self.values[node]
            if _is_plain(value):  # a size or a flag: the traced code sees the number itself
                return value
        return p

    def _run(self, node: fx.Node) -> Any:
        def value(n: fx.Node) -> Any:
            return self.values[n]

        args = fx.node.map_arg(node.args, value)
        kwargs = fx.node.map_arg(node.kwargs, value)
        if node.op == "placeholder":
            return self.examples.get(str(node.target))
        if node.op == "get_attr":
            v = _attr(self.root_module, str(node.target))
            return v.to("meta") if isinstance(v, torch.Tensor) else v
        if node.op == "call_function":
            return node.target(*args, **kwargs)  # type: ignore[operator]  # fx targets are callables here
        if node.op == "call_method":
            return getattr(args[0], str(node.target))(*args[1:], **kwargs)
        if node.op == "call_module":
            # The module's own code on meta copies of its tensors: shapes, no arithmetic, no state change.
            m = self.root_module.get_submodule(str(node.target))
            state = {k: v.to("meta") for k, v in (*m.named_parameters(), *m.named_buffers())}
            return torch.func.functional_call(m, state, tuple(args), dict(kwargs))
        return None


def _attr(root: nn.Module, path: str) -> Any:
    """The module, parameter or buffer at ``path``, read past fx's patched ``__getattr__``."""
    obj: Any = root
    for part in path.split("."):
        for table in ("_parameters", "_buffers", "_modules"):
            d = obj.__dict__.get(table)
            if d is not None and part in d:
                obj = d[part]
                break
        else:
            obj = object.__getattribute__(obj, part)
    return obj


def _is_plain(v: Any) -> bool:
    if isinstance(v, bool | int | float | str | torch.Size | torch.dtype | torch.device) or v is None:
        return True
    return isinstance(v, tuple | list) and all(_is_plain(x) for x in v)


# -- fx graph -> archspec graph -------------------------------------------------------------

class _Builder:
    def __init__(self, root: nn.Module, tracer: _Tracer, g: fx.Graph, shapes: Mapping[str, Shape], name: str) -> None:
        self.root = root
        self.tracer = tracer
        self.g = g
        self.input_shapes = dict(shapes)
        self.name = name
        self.nodes: list[Node] = []
        self.alias: dict[fx.Node, str] = {}  # fx node -> the IR name holding its value
        self.taken: set[str] = set()
        self.owner: dict[str, str] = {}  # module path -> IR node owning it
        self.order = {path: k for k, (path, _) in enumerate(root.named_modules())}
        self.calls: dict[str, int] = {}  # stack key -> ops directly inside that module call

    def build(self) -> Graph:
        for n in self.g.nodes:
            key = _innermost_key(n)
            if key is not None and n.op in ("call_function", "call_method") and self._is_tensor(n):
                self.calls[key] = self.calls.get(key, 0) + 1
        outputs: list[str] = []
        for n in self.g.nodes:
            if n.op == "placeholder":
                if str(n.target) not in self.input_shapes:
                    continue  # an argument with a default that the traced forward never reads
                name = self._input_name(str(n.target))
                self.alias[n] = name
                self.taken.add(name)
            elif n.op == "output":
                outputs = self._outputs(n.args[0])
            elif n.op == "get_attr":
                if any(u.op != "output" for u in n.users) and self._is_tensor(n):
                    self._unsupported_attr(n)
            elif self._is_tensor(n):
                self._node(n)
            elif not _is_plain(self.tracer.values.get(n)) and n.users:
                self._unsupported(n, "returns several tensors")
        scopes = self._scopes()
        inputs = {self.alias[n]: self.input_shapes[str(n.target)] for n in self.g.nodes
                  if n.op == "placeholder" and n in self.alias}
        graph = Graph(self.name, inputs, tuple(self.nodes), tuple(outputs), scopes=scopes,
                      doc=f"Imported from {type(self.root).__module__}.{type(self.root).__qualname__}.")
        return graph

    def _input_name(self, arg: str) -> str:
        """A forward() argument's name as a spec input: ``input`` (nn.Sequential's) is reserved."""
        if name_problem(arg, is_input=True) is None and not self._is_module(arg):
            return arg
        k = 0
        while True:
            cand = "x" if k == 0 else f"x{k}"
            if cand not in self.taken and cand not in self.input_shapes and not self._is_module(cand):
                return cand
            k += 1

    # -- one fx node ------------------------------------------------------------------------
    def _is_tensor(self, n: fx.Node) -> bool:
        return isinstance(self.tracer.values.get(n), torch.Tensor)

    def _shape(self, n: fx.Node) -> Shape:
        return tuple(self.tracer.values[n].shape[1:])

    def _node(self, n: fx.Node) -> None:
        if n.op == "call_module":
            self._module_node(n)
            return
        target: Any = n.target
        tensor_args = _tensor_nodes(n, self.tracer.values)
        if n.op == "call_method":
            if target in _NO_OPS:
                self.alias[n] = self.alias[tensor_args[0]]
                return
            if target in ("view", "reshape", "flatten"):
                self._reshape(n, tensor_args[0])
                return
            fn = getattr(torch, str(target), None)
            if fn is None:
                self._unsupported(n, "is a tensor method no op maps")
            target = fn
        if target in (torch.reshape, torch.flatten):
            self._reshape(n, tensor_args[0])
            return
        if target is torch.nn.functional.pad and self._shape(n) == self._shape(tensor_args[0]) and not any(
                self._constants(n, target).get("pad") or (1,)):
            self.alias[n] = self.alias[tensor_args[0]]  # padding by nothing: the input itself
            return
        target = _ALIASES.get(target, target)
        op = REGISTRY.for_torch(target)
        if op is None:
            self._unsupported(n, "")
        assert op is not None
        in_shapes = [self._shape(a) for a in tensor_args]
        kwargs = self._constants(n, target)
        try:
            read = op.read(target, in_shapes, tuple(tensor_args), kwargs)
            if read.get("stride", 0) is None and "k" in read:  # torch's pools: no stride is a stride of k
                read["stride"] = read["k"]
            attrs = op.Attrs.model_validate(read)
        except Exception as e:  # noqa: BLE001 - an op's read or its attribute model refusing the call
            self._unsupported(n, f"has arguments op '{op.name}' cannot express ({type(e).__name__}: {e})")
        self._check_call(n, op, attrs, in_shapes, tensor_args, target, kwargs)
        self._add(n, op.name, attrs, tensor_args, module=None, base=op.name)

    def _module_node(self, n: fx.Node) -> None:
        path = str(n.target)
        m = self.root.get_submodule(path)
        op = REGISTRY.for_torch(type(m))
        assert op is not None  # a leaf only when an op builds its class
        tensor_args = _tensor_nodes(n, self.tracer.values)
        in_shapes = [self._shape(a) for a in tensor_args]
        try:
            attrs = op.Attrs.model_validate(op.read(m, in_shapes))
        except Exception as e:  # noqa: BLE001
            raise UnsupportedModuleError(
                f"'{path}' ({type(m).__qualname__}) has settings op '{op.name}' cannot express: {type(e).__name__}: {e}",
                path=path) from None
        with torch.device("meta"):
            rebuilt = op.module(attrs, in_shapes)
        if _text(rebuilt) != _text(m) or type(rebuilt) is not type(m) or _tensors(rebuilt) != _tensors(m):
            raise UnsupportedModuleError(
                f"'{path}' ({type(m).__qualname__}) is not rebuilt exactly by op '{op.name}': "
                f"it is {m!r}, the op builds {rebuilt!r}", path=path,
                fix="register an op that reads every setting of this module (archspec.register_op)")
        if path in self.owner:  # called again: a node sharing the module, where the spec can say so
            stack = _stack(n)
            caller = stack[-2] if len(stack) > 1 else ""
            scope, _, leaf = path.rpartition(".")
            if caller != scope:
                raise UnsupportedModuleError(
                    f"'{path}' ({type(m).__qualname__}) is called again from "
                    f"{f'{caller!r}' if caller else 'the top-level forward()'}; a spec shares a module only "
                    "within the scope that holds it", path=path,
                    fix="call the module again where it is defined, or give the second call a module of its own")
            self._add(n, op.name, attrs, tensor_args, module=path, name=self._unique(scope, leaf), share=path)
            return
        self.owner[path] = path
        if not all(is_identifier(part) or part.isdigit() for part in path.split(".")):
            raise UnsupportedModuleError(f"module path '{path}' has a part archspec cannot name",
                                         path=path, fix="name submodules with identifiers or positions")
        self._add(n, op.name, attrs, tensor_args, module=path, name=path)

    def _reshape(self, n: fx.Node, x: fx.Node) -> None:
        """``view``/``reshape``/``flatten`` from the shape it gives: ``flatten`` when it keeps
        the batch and flattens the rest, else ``reshape`` to the per-sample shape."""
        out = self._shape(n)
        shape_in = self._shape(x)
        if tuple(self.tracer.values[n].shape[:1]) != (BATCH,):
            self._unsupported(n, "changes the batch dimension")
        start = 0
        while start < len(shape_in) and start < len(out) - 1 and shape_in[start] == out[start]:
            start += 1
        tail = 1
        for d in shape_in[start:]:
            tail *= d
        if out == (*shape_in[:start], tail):
            op = REGISTRY.get("flatten")
            attrs = op.Attrs.model_validate({"start": start})
        else:
            op = REGISTRY.get("reshape")
            attrs = op.Attrs.model_validate({"shape": list(out)})
        self._add(n, op.name, attrs, [x], module=None)

    def _constants(self, n: fx.Node, target: Any) -> dict[str, Any]:
        """The call's non-tensor arguments by name, sizes computed from the example run."""
        from torch.fx.operator_schemas import normalize_function

        args, kwargs = n.args, n.kwargs
        if n.op == "call_method":
            args = (n.args[0], *n.args[1:])
        norm = None
        try:
            norm = normalize_function(target, tuple(args), dict(kwargs), normalize_to_only_use_kwargs=True)
        except Exception:  # noqa: BLE001 - a signature fx cannot bind: keep the keywords given
            norm = None
        given = dict(norm.kwargs) if norm is not None else dict(kwargs)
        out: dict[str, Any] = {}
        for k, v in given.items():
            if _has_tensor(v, self.tracer.values):
                continue
            out[k] = _concrete(v, self.tracer.values)
        return out

    def _check_call(self, n: fx.Node, op: Op[Any], attrs: Any, in_shapes: list[Shape], tensor_args: list[fx.Node],
                    target: Any, kwargs: Mapping[str, Any]) -> None:
        """The op's own call, built from the attributes read, must be the traced call."""
        if op.passthrough:
            return
        fn, fargs, fkwargs = op.call(attrs, in_shapes, list(tensor_args))
        rebuilt = self._constants_of(fn, fargs, fkwargs)
        for k, v in kwargs.items():
            if k == "inplace":
                continue
            if k not in rebuilt and _is_default(target, k, v):
                continue
            if v is None and k == "stride":  # torch's pools: no stride is a stride of kernel_size
                v = kwargs.get("kernel_size")
            if v is None and k == "align_corners":
                v = False
            ours = rebuilt.get(k, _NOTHING)
            if ours is _NOTHING or not _same(ours, v) and not (k == "align_corners" and not ours and not v):
                shown = "nothing" if ours is _NOTHING else repr(ours)
                self._unsupported(n, f"passes {k}={v!r}, which op '{op.name}' writes as {shown}")

    def _constants_of(self, fn: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        from torch.fx.operator_schemas import normalize_function

        try:
            norm = normalize_function(fn, tuple(args), dict(kwargs), normalize_to_only_use_kwargs=True)
        except Exception:  # noqa: BLE001
            norm = None
        given = dict(norm.kwargs) if norm is not None else dict(kwargs)
        return {k: v for k, v in given.items() if not _has_tensor(v, self.tracer.values)}

    def _add(self, n: fx.Node, op: str, attrs: Any, tensor_args: Sequence[fx.Node], module: str | None,
             name: str | None = None, base: str | None = None, share: str | None = None) -> None:
        name = name or self._name_of(n, base or op)
        self.taken.add(name)
        inputs = tuple(self.alias[a] for a in tensor_args)
        self.nodes.append(Node(name, op, attrs, inputs, shape=self._shape(n), module=module, share=share))
        self.alias[n] = name

    def _name_of(self, n: fx.Node, base: str) -> str:
        """A stateless node's name: its module's path when it is all that module does
        (``layer1.0.relu``), else a name after its function inside the module that calls it."""
        stack = _stack(n)
        key = _innermost_key(n)
        if stack and key is not None and self.calls.get(key) == 1:
            path = stack[-1]
            m = self.root.get_submodule(path)
            if not any(True for _ in m.parameters(recurse=True)) and not any(True for _ in m.buffers()):
                if path not in self.taken:
                    return path
                scope, _, leaf = path.rpartition(".")
                return self._unique(scope, leaf)
        scope = stack[-1] if stack else ""
        return self._unique(scope, base)

    def _unique(self, scope: str, base: str) -> str:
        prefix = f"{scope}." if scope else ""
        if not base.isidentifier() or base.isdigit():
            base = f"op_{base}" if base.isidentifier() else "op"
        k = 0
        while True:
            cand = f"{prefix}{base}" if k == 0 else f"{prefix}{base}_{k}"
            if cand not in self.taken and not self._is_module(cand):
                return cand
            k += 1

    def _is_module(self, path: str) -> bool:
        try:
            self.root.get_submodule(path)
        except AttributeError:
            return False
        return True

    def _outputs(self, value: Any) -> list[str]:
        if isinstance(value, fx.Node):
            if value not in self.alias:
                raise UnsupportedModuleError("the module's output is not a tensor archspec computes")
            return [self.alias[value]]
        if isinstance(value, tuple | list):
            return [name for v in value for name in self._outputs(v)]
        if isinstance(value, dict):
            return [name for v in value.values() for name in self._outputs(v)]
        raise UnsupportedModuleError(f"the module returns {type(value).__name__}, not tensors",
                                     fix="return a tensor, or a tuple of tensors")

    def _scopes(self) -> tuple[Scope, ...]:
        """A group scope for every module path that holds nodes, outermost first."""
        paths: set[str] = set()
        for node in self.nodes:
            parts = node.name.split(".")
            for k in range(1, len(parts)):
                paths.add(".".join(parts[:k]))
        out = []
        for p in sorted(paths, key=lambda p: (self.order.get(p, len(self.order)), p)):
            try:
                cls = type(self.root.get_submodule(p)).__name__
            except AttributeError:
                cls = None
            out.append(Scope(p, "group", block=cls))
        return tuple(out)

    # -- errors -----------------------------------------------------------------------------
    def _unsupported(self, n: fx.Node, why: str) -> None:
        stack = _stack(n)
        fn = _func_label(n)
        where = "the top-level forward()" if not stack else f"'{stack[-1]}'"
        if stack:
            m = self.root.get_submodule(stack[-1])
            cls = type(m)
            where += f" ({cls.__module__}.{cls.__qualname__})"
            if _is_torch_module(cls) and REGISTRY.for_torch(cls) is None:
                raise UnsupportedModuleError(
                    f"no archspec op is {_torch_name(cls)}: module {where} calls {fn}, which no op maps either",
                    path=stack[-1], expected="one of the ops: " + ", ".join(sorted(REGISTRY.names())),
                    got=_torch_name(cls),
                    fix=f"register an op with torch_names = ('{_torch_name(cls)}',) using archspec.register_op, "
                        "then import again")
        what = f"{fn} {why}".rstrip() if why else f"{fn} is no archspec op"
        raise UnsupportedModuleError(
            f"{what}, called in {where}", path=stack[-1] if stack else None,
            expected="one of the ops: " + ", ".join(sorted(REGISTRY.names())), got=fn,
            fix=f"register an op whose torch_names lists {fn} using archspec.register_op, then import again")

    def _unsupported_attr(self, n: fx.Node) -> None:
        stack = _stack(n)
        owner = str(n.target).rpartition(".")[0]
        where = stack[-1] if stack else owner
        cls = type(self.root.get_submodule(where)) if where else type(self.root)
        raise UnsupportedModuleError(
            f"no archspec op is {_torch_name(cls)}: module '{where or type(self.root).__qualname__}' uses its "
            f"tensor '{n.target}' in functional code",
            path=where or None, expected="one of the ops: " + ", ".join(sorted(REGISTRY.names())),
            got=_torch_name(cls),
            fix=f"register an op with torch_names = ('{_torch_name(cls)}',) using archspec.register_op, then import again")


def _text(m: nn.Module) -> str:
    """A module's settings as its repr shows them; running in place or not computes the same."""
    import re

    return re.sub(r",?\s*inplace=(True|False)", "", repr(m))


def _tensors(m: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """A module's state by key and shape: what a rebuilt module must hold to load the original's."""
    return [(k, tuple(v.shape)) for k, v in m.state_dict().items()]


def _stack(n: fx.Node) -> list[str]:
    """Module paths of the calls ``n`` is inside, outermost first."""
    st = n.meta.get("nn_module_stack") or {}
    return [v[0] for v in st.values() if v[0]]


def _innermost_key(n: fx.Node) -> str | None:
    st = n.meta.get("nn_module_stack") or {}
    keys = [k for k, v in st.items() if v[0]]
    return keys[-1] if keys else None


def _tensor_nodes(n: fx.Node, values: Mapping[fx.Node, Any]) -> list[fx.Node]:
    out: list[fx.Node] = []

    def visit(a: Any) -> Any:
        if isinstance(values.get(a), torch.Tensor) and a not in out:
            out.append(a)
        return a

    fx.node.map_arg((n.args, n.kwargs), visit)
    return out


def _has_tensor(v: Any, values: Mapping[fx.Node, Any]) -> bool:
    found = False

    def visit(a: Any) -> Any:
        nonlocal found
        if isinstance(values.get(a), torch.Tensor) or isinstance(a, str) and a.startswith("\x00"):
            found = True
        return a

    if isinstance(v, torch.Tensor):
        return True
    fx.node.map_arg(v, visit)
    return found


def _concrete(v: Any, values: Mapping[fx.Node, Any]) -> Any:
    out = fx.node.map_arg(v, lambda a: values.get(a))
    if isinstance(out, torch.Size):
        return tuple(out)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, list | tuple) and len(set(a)) == 1:
        return _same(a[0], b)
    if isinstance(b, list | tuple) and len(set(b)) == 1:
        return _same(a, b[0])
    return bool(a == b) and type(a) is not bool or a is b


def _is_default(fn: Any, k: str, v: Any) -> bool:
    import inspect

    try:
        p = inspect.signature(fn).parameters.get(k)
    except (TypeError, ValueError):
        return True
    return p is None or p.default is inspect.Parameter.empty or _same(p.default, v)


def _func_label(n: fx.Node) -> str:
    t = n.target
    if n.op == "call_method":
        return f"Tensor.{t}"
    if n.op == "call_module":
        return str(t)
    mod = getattr(t, "__module__", None) or ""
    name = getattr(t, "__name__", str(t))
    if t in vars(operator).values():
        return f"operator.{name}"
    if t in vars(builtins).values():
        return name
    if mod.startswith("torch._C") or mod == "torch":
        return f"torch.{name}"
    return f"{mod}.{name}" if mod else name


def _is_torch_module(cls: type) -> bool:
    return cls.__module__.startswith("torch.nn.")


def _torch_name(cls: type) -> str:
    """``torch.nn.RMSNorm``: the public name a torch_names entry uses, where torch has one."""
    if _is_torch_module(cls) and getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _spec_name(module: nn.Module) -> str:
    import re

    name = re.sub(r"[^a-z0-9_]+", "_", type(module).__name__.lower()).strip("_")
    return name if name[:1].isalpha() else f"model_{name}"
