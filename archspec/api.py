"""The one pipeline and the entry points: load, check, compile, analyse, graph_of, render.

The pipeline is written here once: expand → infer → project (which infers what it
inserts) → check. A spec source is a path (``str`` or ``Path``) to a YAML file, YAML text,
a loaded :class:`~archspec.loader.Document`, or an already checked
:class:`~archspec.ir.Graph`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ArchSpecError, SpecFileError, SpecSyntaxError
from .ir import Finding, Graph, Shape
from .limits import DEFAULT_LIMITS, Limits
from .loader import Document, load_file, load_text
from .ops import REGISTRY
from .ops.base import fmt as fmt_shape
from .passes import check as check_pass
from .passes import expand, infer, project

if TYPE_CHECKING:
    import torch.fx

Source = str | Path | Document | Graph | Mapping[str, Any]


def read(source: str | Path | Document | Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Document:
    """Load YAML from a path or from text, or take a spec given as data (a dict, e.g. a
    section of an OmegaConf/Hydra config after ``OmegaConf.to_container``)."""
    if isinstance(source, Document):
        return source
    if isinstance(source, Mapping):
        return load_text(_as_yaml(source), "<mapping>", limits)
    if isinstance(source, Path):
        return load_file(source, limits)
    if "\n" not in source and source.strip().endswith((".yaml", ".yml")):
        return load_file(source, limits)
    if "\n" not in source and _is_file(source):
        return load_file(source, limits)
    if "\n" not in source and ":" not in source:
        raise SpecFileError(f"file not found: '{source}'", fix="check the path, or pass YAML text")
    return load_text(source, "<string>", limits)


def _as_yaml(data: Mapping[str, Any]) -> str:
    """A spec given as data, written as YAML so that it is validated (and located) like a file."""
    import yaml

    try:
        return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, RecursionError, TypeError, ValueError) as e:
        raise SpecSyntaxError(f"the spec mapping cannot be written as YAML: {type(e).__name__}",
                              fix="give plain data: dicts, lists, strings, numbers, booleans") from None


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # one-line YAML text is no path: a name too long, a NUL
        return False


def annotate(graph: Graph) -> Graph:
    """infer → project (→ infer): every node of an expanded graph with its shape, or with
    its error; the projections that residual merges need inserted."""
    return project(infer(graph))


def analyse(source: Source, params: Mapping[str, Any] | None = None, limits: Limits = DEFAULT_LIMITS, *,
            inputs: Mapping[str, Shape] | None = None) -> Graph:
    """The one pipeline, expand → infer → project → infer: the annotated graph, errors
    left on the nodes. ``inputs`` replaces some of the spec's input shapes.

    Use :func:`load` for a graph that is known to be valid.
    """
    if isinstance(source, Graph):
        if params or inputs:
            what = "params" if params else "input shapes"
            raise ArchSpecError(f"{what} cannot be applied to an already built graph; pass the spec instead")
        return source
    with _cycle_collection_paused():
        return annotate(expand(read(source, limits), params, limits, inputs=inputs))


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """The passes allocate an object or more per YAML value and per node, and keep them:
    Python's cyclic collector would walk the whole heap each time a generation fills, most of
    a large check in a process that holds models. It is paused meanwhile and restored."""
    if not gc.isenabled():  # paused already (a nested call), or by the caller
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def is_block_library(doc: Document) -> bool:
    """A file of blocks for ``use:`` (``blocks:`` and no ``nodes:``/``inputs:``), not a spec."""
    data = doc.data
    return isinstance(data, dict) and "blocks" in data and "nodes" not in data and "inputs" not in data


def check_library(source: str | Path | Document, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """Validate a block-library file and the files it uses; the names of its blocks.

    Each block's ops, fields and names are checked as in a spec; shapes are checked where
    a spec calls the block, since a block's shapes follow from its input.
    """
    from .passes.expand import _collect_blocks
    from .spec import validate

    doc = read(source, limits)
    blocks, _ = _collect_blocks(validate(doc, "BlockFile"), doc, limits)
    return list(blocks)


def load(source: Source, params: Mapping[str, Any] | None = None, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """The checked IR of a spec: every node with its shape, projections inserted.

    >>> g = load("specs/resnet18_cifar.yaml")
    >>> g.node("fc").shape
    (10,)
    """
    with _cycle_collection_paused():
        return check_pass(analyse(source, params, limits), limits)


# -- drawing: the any-source entry points (the drawing itself is archspec.render's) -------

def graph_of(source: Any, params: Mapping[str, Any] | None = None, limits: Limits | None = None) -> Graph:
    """The graph to draw from a spec (path, text, Document), a Graph, a CheckResult or a
    compiled GraphModule. A spec whose shapes fail still gives a graph, errors on its nodes."""
    graph = getattr(source, "graph", None)
    if isinstance(graph, Graph):  # CheckResult
        source = graph
    meta = getattr(source, "meta", None)
    if isinstance(meta, dict) and isinstance(meta.get("archspec_graph"), Graph):  # GraphModule
        source = meta["archspec_graph"]
    return analyse(source, params, limits or DEFAULT_LIMITS)


def render(source: Any, path: str | Path | None = None, *, format: str | None = None,  # noqa: A002
           params: Mapping[str, Any] | None = None, limits: Limits | None = None, expand: Iterable[str] | str = (),
           depth: int | None = None, fold: bool = True, max_render_nodes: int | None = None,
           force: bool = False, protect: Iterable[str | Path] = (), dot_beside: bool = False,
           direction: str = "TB") -> list[Path]:
    """Draw ``source`` (a spec, Graph, CheckResult or compiled GraphModule) to ``path``.

    The format comes from ``format`` or the suffix of ``path`` (.svg .png .pdf .dot
    .mmd; default svg, at ``<name>.svg``). SVG/PNG/PDF need graphviz's ``dot`` and say so
    before any work; DOT and Mermaid never do. ``dot_beside`` also writes the DOT next to
    an image. Files are written atomically, never over the spec (``protect``), over an
    existing file only with ``force``. ``direction`` is TB (top to bottom, the default)
    or LR (left to right). Returns the paths written.

    >>> render("specs/unet.yaml", "build/unet.svg")  # doctest: +SKIP
    [PosixPath('build/unet.svg')]
    """
    from .io import safe_stem
    from .render import (
        MAX_RENDER_NODES,
        SUFFIXES,
        drawing,
        require_dot,
        resolve_format,
        write_drawing,
    )

    fmt = resolve_format(path, format)
    require_dot(fmt)

    protect = list(protect)
    if isinstance(source, str | Path) and "\n" not in str(source) and _is_file(str(source)):
        protect.append(source)  # a spec file: never written over
    graph = graph_of(source, params, limits)
    protect += graph.files  # nor its use: files
    d = drawing(graph, expand=expand, depth=depth, fold=fold, max_render_nodes=max_render_nodes or MAX_RENDER_NODES)
    target = Path(path) if path is not None else Path(safe_stem(graph.name) + SUFFIXES[fmt])
    return write_drawing(d, target, fmt, force=force, protect=protect, dot_beside=dot_beside, direction=direction)


@dataclass(frozen=True)
class CheckResult:
    """What ``archspec check`` reports: output shapes, the projections inserted and the
    broadcasts accepted."""

    graph: Graph

    @property
    def outputs(self) -> dict[str, Shape]:
        """Each output's shape, by node name, or by key when ``outputs:`` is a mapping."""
        return {k: self.graph.shape_of(o) for k, o in self.graph.named_outputs()}  # type: ignore[misc]  # a checked graph: every shape known

    @property
    def inputs(self) -> dict[str, Shape]:
        return {k: tuple(v) for k, v in self.graph.inputs.items()}

    @property
    def projections(self) -> list[dict[str, Any]]:
        """One entry per inserted projection: where, which rule, which nodes."""
        seen: dict[tuple[str, int], dict[str, Any]] = {}
        for n in self.graph.nodes:
            if n.provenance != "auto":
                continue
            p = n.projection
            assert p is not None, f"auto node {n.name} says for which merge it is"
            entry = seen.setdefault((p.merge, p.slot), {"merge": p.merge, "slot": p.slot, "kind": p.kind,
                                                        "label": p.label, "rule": p.rule, "nodes": []})
            entry["nodes"].append(n.name)
        return list(seen.values())

    @property
    def broadcasts(self) -> list[dict[str, Any]]:
        """One entry per element-wise merge whose inputs differ and broadcast (a C×1×1 gate
        times C×H×W features): the merge, its input names and shapes, the output shape and
        which inputs stretch along which per-sample dims."""
        out = []
        shapes = self.graph.shapes()
        for n in self.graph.nodes:
            ins = self.graph.in_shapes(n, shapes)
            if not REGISTRY.get(n.op).broadcasts or n.shape is None or all(s == n.shape for s in ins):
                continue
            stretched = {src: [d for d, (a, b) in enumerate(zip(s, n.shape, strict=True)) if a != b]
                         for src, s in zip(n.inputs, ins, strict=True) if s is not None and s != n.shape}
            out.append({"node": n.name, "op": n.op, "inputs": list(n.inputs),
                        "shapes": [list(s) if s is not None else None for s in ins], "shape": list(n.shape),
                        "stretched": stretched})
        return out

    def broadcast_lines(self) -> list[str]:
        """``mul m: x 8x16x16 * s 8x1x1 -> 8x16x16 (s stretches dims 1, 2)``, one per broadcast."""
        lines = []
        for b in self.broadcasts:
            ins = ", ".join(f"{name} {fmt_shape(tuple(s))}" for name, s in zip(b["inputs"], b["shapes"], strict=True))
            how = "; ".join(f"{name} stretches dim{'s' if len(dims) > 1 else ''} {', '.join(map(str, dims))}"
                            for name, dims in b["stretched"].items())
            lines.append(f"{b['op']} {b['node']}: {ins} -> {fmt_shape(tuple(b['shape']))} ({how})")
        return lines

    @property
    def unused(self) -> list[str]:
        """Nodes from which no output can be reached: computed, then thrown away (a node
        a false ``when:`` turned off is not computed)."""
        from .findings import unused

        return unused(self.graph)

    @property
    def warnings(self) -> list[Finding]:
        """The non-fatal findings, each located: a batch-like input shape, a
        ``zero_init_residual`` with nothing to zero, nodes that reach no output, ..."""
        from .findings import unused_finding

        dead = unused_finding(self.graph)
        return [*self.graph.warnings, *([dead] if dead is not None else [])]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.graph.name, "inputs": {k: list(v) for k, v in self.inputs.items()},
                "outputs": {k: list(v) for k, v in self.outputs.items()},
                **({"output_nodes": dict(self.graph.named_outputs())} if self.graph.output_keys is not None else {}),
                "nodes": len(self.graph.nodes), "projections": self.projections, "broadcasts": self.broadcasts,
                "unused": self.unused, "warnings": [w.to_dict() for w in self.warnings]}

    def __repr__(self) -> str:
        ins = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in self.inputs.items())
        outs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in self.outputs.items())
        n = len(self.projections)
        return (f"<CheckResult {self.graph.name}: {ins} -> {outs}; {len(self.graph.nodes)} nodes, "
                f"{n} projection{'' if n == 1 else 's'}>")

    def _repr_svg_(self) -> str | None:
        """Jupyter shows a checked spec as its drawing (None without graphviz: the text repr)."""
        from .render import repr_svg

        return repr_svg(self.graph)

    def _repr_markdown_(self) -> str | None:
        """Without graphviz, Jupyter shows the drawing as Mermaid with a hint (None with it)."""
        from .render import repr_markdown

        return repr_markdown(self.graph)


def _graph_of_module(model: Any) -> Graph | None:
    graph = model.meta.get("archspec_graph") if isinstance(getattr(model, "meta", None), dict) else None
    return graph if isinstance(graph, Graph) else None


def _module_svg(model: Any) -> str | None:
    """A compiled model shows its drawing in Jupyter (None without graphviz)."""
    from .render import repr_svg

    graph = _graph_of_module(model)
    return repr_svg(graph) if graph is not None else None


def _module_markdown(model: Any) -> str | None:
    """Without graphviz, a compiled model shows its drawing as Mermaid."""
    from .render import repr_markdown

    graph = _graph_of_module(model)
    return repr_markdown(graph) if graph is not None else None


def check(source: Source, params: Mapping[str, Any] | None = None, *, limits: Limits = DEFAULT_LIMITS) -> CheckResult:
    """Validate a spec without importing torch; raises ArchSpecError on the first problem."""
    return CheckResult(load(source, params, limits=limits))


def compile(source: Source, params: Mapping[str, Any] | None = None, *, weights: str | Path | None = None,
            limits: Limits = DEFAULT_LIMITS, inplace: bool = True, optimize: str | None = None,
            ) -> torch.fx.GraphModule:
    """Compile a spec to a ``torch.fx.GraphModule``.

    Activations and residual adds run in place where autograd allows it, as in a
    hand-written model; ``inplace=False`` emits every op out of place.
    ``optimize="inference"`` returns a forward-only model (eval mode, batch norms folded
    into convs, channels_last; see archspec/optimize.py), after loading ``weights``.

    >>> model = compile("specs/resnet18_cifar.yaml", params={"num_classes": 100})
    >>> model(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 100])
    """
    from .emit import emit
    from .optimize import check_level
    from .optimize import optimize as apply_optimize

    level = check_level(optimize)
    graph = load(source, params, limits=limits)
    check_memory(graph)
    model = emit(graph, inplace=inplace)
    type(model)._repr_svg_ = _module_svg  # type: ignore[attr-defined]  # fx gives each GraphModule its own class
    type(model)._repr_markdown_ = _module_markdown  # type: ignore[attr-defined]
    if weights is not None:
        from .weights import load_weights

        load_weights(model, weights)
    return apply_optimize(model, level)


def available_memory() -> int | None:
    """Bytes of memory the system can give this process now (MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(graph: Graph) -> None:
    """Refuse to build a model whose parameters (float32) do not fit in the memory
    available now, before a single tensor is allocated."""
    from .errors import LimitError

    params = graph.param_count()
    need = 4 * params
    have = available_memory()
    if have is not None and need > have:
        raise LimitError(f"building '{graph.name}' needs {need / 2**30:.1f} GiB for its {params:,} float32 parameters, "
                         f"more than the {have / 2**30:.1f} GiB of memory available",
                         fix="check the sizes with `archspec summary`, lower --max-params to refuse such specs "
                             "early, or build on a machine with more memory")
