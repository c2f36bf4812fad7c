"""The residual-learning experiments: gradient flow, training curves side by side, first-layer filters.

Each experiment is a function that computes (torch, imported inside it) and a function
that draws (matplotlib, imported inside it, no pyplot). The ``archspec gradflow``,
``plot`` and ``filters`` commands (:mod:`archspec.experiments_cli`) print and save what
these return.

Gradient flow (:func:`gradflow`): one forward and one backward pass of a network in
training mode (batch-norm layers use the batch's statistics, as in a training step; or
in eval mode, ``train=False``: their running statistics) on one batch, then for every *weighted layer* -- a module with parameters of its own
(convolutions, linear layers, norms; inserted projections too), in the order the
forward pass calls them -- the L2 norm of its parameters' gradient, of its parameters,
and their ratio (how far one SGD step of learning rate 1 would move the layer, relative
to its size). A module's own parameters (weight, and bias where there is one) count as
one vector.

The default batch (``data="random"``) is reproducible from the seed alone: a ``torch.Generator`` seeded
with ``seed`` draws, in this order, each input in ``inputs:`` order as standard normal
values of shape ``(batch, *shape)``, then each output's target. An output whose first
dim has K >= 2 entries (class scores ``(K,)``, or a map ``(K, *S)``) gets class indices
``randint(K)`` of shape ``(batch, *S)`` and a cross-entropy loss; any other output a
standard normal target and a mean-squared-error loss. The loss is the sum over outputs.
Any other ``data`` is a data source of ``archspec train`` (``synthetic[:N]``, ``cells``,
``cifar10:DIR``, ...): the batch is its first ``batch`` training samples, in order,
without augmentation, normalised per channel as training normalises them.

>>> runs = gradflow("specs/resnet_cifar.yaml", {"n": 1}, vary={"residual": [True, False]})  # doctest: +SKIP
>>> [r.label for r in runs]                                                                # doctest: +SKIP
['resnet_cifar residual=true', 'resnet_cifar residual=false']
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ArchSpecError
from .ir import Graph, Shape
from .loader import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from .api import Source

RANDOM = "random"  # the default batch: drawn from the spec's shapes and the seed


class RunFolderError(ArchSpecError):
    """A run folder that ``archspec plot`` cannot read."""


# -- networks to compare -------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """One network of a comparison: a spec, its params, and the label it is drawn with."""

    label: str
    source: Any
    params: Mapping[str, Any] = field(default_factory=dict)


def yaml_scalar(value: Any) -> str:
    """A param value as a user writes it on the command line (``true``, ``3``, ``a``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def variants(specs: Any, params: Mapping[str, Any] | None = None,
             vary: Mapping[str, Sequence[Any]] | None = None) -> list[Variant]:
    """Every spec with every combination of the ``vary`` values, labelled.

    The label is the spec's name (its file stem when two specs share a name), followed by
    the varied ``key=value`` pairs.
    """
    sources = list(specs) if isinstance(specs, (list, tuple)) else [specs]
    if not sources:
        raise ArchSpecError("no spec to compare", fix="pass at least one spec")
    vary = dict(vary or {})
    for key, values in vary.items():
        if not values:
            raise ArchSpecError(f"--vary {key} has no values", fix=f"write e.g. --vary {key}=a,b")
    names = [_spec_name(s, params) for s in sources]
    out = []
    for source, name in zip(sources, names, strict=True):
        if names.count(name) > 1 and isinstance(source, (str, Path)) and Path(source).suffix in (".yaml", ".yml"):
            name = Path(source).stem
        for combo in itertools.product(*vary.values()) if vary else [()]:
            chosen = dict(zip(vary, combo, strict=True))
            label = " ".join([name, *(f"{k}={yaml_scalar(v)}" for k, v in chosen.items())])
            out.append(Variant(label, source, {**(params or {}), **chosen}))
    return out


def _spec_name(source: Any, params: Mapping[str, Any] | None) -> str:
    from .api import load

    return load(source, params).name if not isinstance(source, Graph) else source.name


# -- gradient flow -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LayerNorms:
    """One weighted layer: its position among the weighted layers (``depth``, from 1),
    module path, op and its family (``conv``, ``linear``, ``norm``, ...), parameter count,
    and the L2 norms of its gradient and its parameters."""

    depth: int
    name: str
    op: str
    family: str
    params: int
    grad_norm: float
    weight_norm: float

    @property
    def ratio(self) -> float:
        """``grad_norm / weight_norm`` (``inf`` for all-zero parameters with a gradient)."""
        if self.weight_norm == 0:
            return math.inf if self.grad_norm else 0.0
        return self.grad_norm / self.weight_norm

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, "name": self.name, "op": self.op, "family": self.family, "params": self.params,
                "grad_norm": self.grad_norm, "weight_norm": self.weight_norm, "ratio": self.ratio}


@dataclass(frozen=True)
class GradFlow:
    """The gradient flow of one network on one batch."""

    label: str
    name: str
    params: Mapping[str, Any]
    data: str
    batch: int
    seed: int
    train: bool
    loss: float
    layers: tuple[LayerNorms, ...]

    @property
    def first_to_last(self) -> float:
        """Gradient norm of the first weight layer (conv or linear, not a norm) over that of
        the last: below 1 the gradient shrinks on its way back to the input, above 1 it grows."""
        weights = [la for la in self.layers if la.family != "norm"] or list(self.layers)
        first, last = weights[0].grad_norm, weights[-1].grad_norm
        return first / last if last else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "name": self.name, "params": dict(self.params), "data": self.data,
                "batch": self.batch, "seed": self.seed, "mode": "train" if self.train else "eval", "loss": self.loss, "first_to_last": self.first_to_last,
                "layers": [layer.to_dict() for layer in self.layers]}


def random_batch(graph: Graph, batch: int, seed: int) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """The inputs (by name) and one target per output, drawn as the module docstring says."""
    import torch

    g = torch.Generator().manual_seed(seed)
    inputs = {name: torch.randn((batch, *shape), generator=g) for name, shape in graph.inputs.items()}
    targets = []
    for out in graph.outputs:
        shape = graph.shape_of(out) or ()
        if _is_classes(shape):
            targets.append(torch.randint(shape[0], (batch, *shape[1:]), generator=g))
        else:
            targets.append(torch.randn((batch, *shape), generator=g))
    return inputs, targets


def data_batch(graph: Graph, source: str, batch: int) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """The first ``batch`` training samples of an ``archspec train`` data source, as floats
    normalised by the source's per-channel mean and std (the training loop's transform)."""
    import torch

    from .api import CheckResult
    from .train.data import open_data
    from .train.task import infer_task

    task = infer_task(CheckResult(graph))
    data = open_data(source, task)
    samples = [data.train[i] for i in range(min(batch, len(data.train)))]
    x = torch.stack([torch.as_tensor(sx) for sx, _ in samples]).float()  # (N, C, *S), 0..255
    view = (1, len(data.mean), *([1] * (x.dim() - 2)))
    mean = torch.tensor(data.mean).view(view) * 255
    std = torch.tensor(data.std).view(view) * 255
    y = torch.stack([torch.as_tensor(sy) for _, sy in samples]).long()
    (name,) = graph.inputs
    return {name: (x - mean) / std}, [y]


def _is_classes(shape: Shape) -> bool:
    return len(shape) >= 1 and shape[0] >= 2


def batch_loss(graph: Graph, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """Cross-entropy for class outputs, mean squared error for the others, summed."""
    import torch.nn.functional as F

    terms = [F.cross_entropy(out, y) if _is_classes(graph.shape_of(name) or ()) else F.mse_loss(out, y)
             for out, y, name in zip(outputs, targets, graph.outputs, strict=True)]
    assert terms, "a checked graph has at least one output"
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def weighted_layers(model: Any) -> list[tuple[str, str, Any]]:
    """``(module path, op, module)`` of every module with parameters of its own, in the
    order the forward pass first calls it."""
    seen: set[str] = set()
    out = []
    for node in model.graph.nodes:
        if node.op != "call_module" or node.target in seen:
            continue
        seen.add(node.target)
        module = model.get_submodule(node.target)
        if any(True for _ in module.parameters(recurse=False)):
            op = node.meta.get("archspec", {}).get("op", type(module).__name__)
            out.append((str(node.target), str(op), module))
    return out


def _norm(tensors: Sequence[torch.Tensor]) -> float:
    import torch

    return float(torch.linalg.vector_norm(torch.cat([t.detach().reshape(-1).double() for t in tensors])))


def gradflow_one(variant: Variant, *, data: str = RANDOM, weights: str | Path | None = None, batch: int = 16,
                 seed: int = 0, train: bool = True, limits: Limits = DEFAULT_LIMITS) -> GradFlow:
    """The :class:`GradFlow` of one network (see :func:`gradflow`)."""
    import torch

    from .api import compile, load
    from .ops import REGISTRY

    if batch < 1:
        raise ArchSpecError(f"the batch size must be at least 1, got {batch}", fix="pass --batch-size 16")
    graph = load(variant.source, variant.params, limits=limits)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the spec's weight initialisation, reproducible
        model = compile(graph, weights=weights)
    model.train(train)
    inputs, targets = random_batch(graph, batch, seed) if data == RANDOM else data_batch(graph, data, batch)
    result = model(**inputs)
    outputs = list(result.values()) if isinstance(result, dict) else list(result) if isinstance(result, tuple) \
        else [result]
    loss = batch_loss(graph, outputs, targets)
    model.zero_grad(set_to_none=True)
    loss.backward()
    layers = []
    for depth, (name, op, module) in enumerate(weighted_layers(model), start=1):
        own = [p for p in module.parameters(recurse=False)]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in own]
        family = REGISTRY.get(op).family if op in REGISTRY.names() else "module"
        layers.append(LayerNorms(depth, name, op, family, sum(p.numel() for p in own), _norm(grads), _norm(own)))
    return GradFlow(variant.label, graph.name, dict(variant.params), data, batch, seed, train, float(loss.detach()),
                    tuple(layers))


def gradflow(specs: Source | Sequence[Source], params: Mapping[str, Any] | None = None, *,
             vary: Mapping[str, Sequence[Any]] | None = None, data: str = RANDOM,
             weights: str | Path | None = None, batch: int = 16, seed: int = 0, train: bool = True,
             limits: Limits = DEFAULT_LIMITS) -> list[GradFlow]:
    """Gradient, weight and ratio norms of every weighted layer, one :class:`GradFlow` per network.

    ``specs`` is one spec or a list; ``vary`` makes one network per value of a param
    (``{"residual": [True, False]}``), for every spec. ``weights`` (a ``.safetensors``
    or weights-only ``.pt`` state_dict) replaces the initial weights of every network;
    without it each network is initialised by its spec's ``init:`` with the RNG seeded
    by ``seed``, which also draws the batch. ``train=False`` runs the networks in eval
    mode (norms use their running statistics: at initialisation, mean 0 and variance 1).

    >>> flows = gradflow("specs/resnet_cifar.yaml", {"n": 9}, vary={"residual": [True, False]})  # doctest: +SKIP
    >>> [round(f.first_to_last, 2) for f in flows]                                               # doctest: +SKIP
    """
    return [gradflow_one(v, data=data, weights=weights, batch=batch, seed=seed, train=train, limits=limits)
            for v in variants(specs, params, vary)]


def gradflow_figure(flows: Sequence[GradFlow]) -> Figure:
    """Two panels, the gradient norm and the gradient / weight ratio on a log scale,
    against depth counted in weight layers (convolutions and linear layers, as papers
    count depth): one line per network through its weight layers, its norm layers as
    faint dots beside the weight layer they follow."""
    fig = _figure(11, 4.2)
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "grad_norm", "gradient norm"),
                           (axes[1], "ratio", "gradient norm / weight norm")):
        for i, flow in enumerate(flows):
            colour = f"C{i % 10}"
            xs: list[int] = []
            ys: list[float] = []
            nx: list[float] = []
            ny: list[float] = []
            for layer in flow.layers:
                if layer.family == "norm":
                    nx.append(len(xs) + 0.3)
                    ny.append(getattr(layer, key))
                else:
                    xs.append(len(xs) + 1)
                    ys.append(getattr(layer, key))
            ax.plot(xs, ys, color=colour, marker="." if len(xs) < 80 else None, label=flow.label)
            if nx:
                ax.scatter(nx, ny, color=colour, s=4, alpha=0.35)
        ax.set_yscale("log")
        ax.set_xlabel("weight layer (conv / linear, forward order; dots: norm layers)")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    batch = {f"{'training' if f.train else 'eval'} mode, batch {f.batch}, seed {f.seed}, data {f.data}"
             for f in flows}
    fig.suptitle("gradient flow at one step (" + "; ".join(sorted(batch)) + ")")
    fig.tight_layout()
    return fig


# -- first-layer filters -------------------------------------------------------------------

@dataclass(frozen=True)
class FilterGrid:
    """The filters of one convolution laid out as tiles of one picture.

    ``image`` is ``(rows*(kh+gap)-gap, cols*(kw+gap)-gap, 3)`` floats in ``[0, 1]``;
    tile ``i`` (filter ``i``) sits at row ``i // cols``, column ``i % cols``; the gaps are
    white. ``mode`` says how a filter's input channels became colours: ``rgb`` (three
    input channels), ``gray`` (one), or ``norm`` (the L2 norm over its input channels).
    """

    layer: str
    weight_shape: tuple[int, ...]
    mode: str
    rows: int
    cols: int
    gap: int
    image: np.ndarray

    @property
    def tiles(self) -> int:
        return self.weight_shape[0]

    def tile(self, i: int) -> np.ndarray:
        """Filter ``i``'s tile: ``(kh, kw, 3)``."""
        kh, kw = self.weight_shape[2:]
        r, c = divmod(i, self.cols)
        y, x = r * (kh + self.gap), c * (kw + self.gap)
        return self.image[y:y + kh, x:x + kw]


def filter_grid(weight: torch.Tensor, layer: str = "", gap: int = 1) -> FilterGrid:
    """Lay out a conv2d weight ``(out, in, kh, kw)`` as tiles, each filter normalised to
    ``[0, 1]`` on its own (its minimum black, its maximum white; a constant filter gray)."""
    import torch

    if weight.dim() != 4:
        raise ArchSpecError(f"filters draws 2-d convolutions; '{layer}' has a weight of {weight.dim()} dims "
                            f"({tuple(weight.shape)})", expected="(out, in, kh, kw)")
    w = weight.detach().double().cpu()
    out, cin, kh, kw = w.shape
    if cin == 3:
        mode, pics = "rgb", w.permute(0, 2, 3, 1)  # (out, kh, kw, 3)
    elif cin == 1:
        mode, pics = "gray", w.permute(0, 2, 3, 1).expand(out, kh, kw, 3)
    else:
        mode, pics = "norm", torch.linalg.vector_norm(w, dim=1).unsqueeze(-1).expand(out, kh, kw, 3)
    lo = pics.amin(dim=(1, 2, 3), keepdim=True)
    hi = pics.amax(dim=(1, 2, 3), keepdim=True)
    span = hi - lo
    pics = torch.where(span > 0, (pics - lo) / torch.where(span > 0, span, 1.0), torch.full_like(pics, 0.5))
    cols = math.ceil(math.sqrt(out))
    rows = math.ceil(out / cols)
    image = torch.ones(rows * (kh + gap) - gap, cols * (kw + gap) - gap, 3, dtype=torch.float64)
    for i in range(out):
        r, c = divmod(i, cols)
        image[r * (kh + gap):r * (kh + gap) + kh, c * (kw + gap):c * (kw + gap) + kw] = pics[i]
    return FilterGrid(layer, tuple(w.shape), mode, rows, cols, gap, image.numpy())


def first_conv(model: Any) -> tuple[str, Any]:
    """The module path and module of the first 2-d convolution the forward pass calls."""
    from torch import nn

    for node in model.graph.nodes:
        if node.op == "call_module" and isinstance(model.get_submodule(node.target), nn.Conv2d):
            return str(node.target), model.get_submodule(node.target)
    raise ArchSpecError("the network has no 2-d convolution to draw",
                        fix="filters draws the first nn.Conv2d of a spec (op: conv on CxHxW inputs)")


def filters(weights: str | Path, spec: Source, params: Mapping[str, Any] | None = None, *,
            limits: Limits = DEFAULT_LIMITS) -> FilterGrid:
    """The first convolution's filters of ``spec`` with ``weights`` loaded (all keys must match).

    >>> grid = filters("runs/resnet_cifar/best.safetensors", "specs/resnet_cifar.yaml")  # doctest: +SKIP
    >>> grid.tiles, grid.mode                                                            # doctest: +SKIP
    (16, 'rgb')
    """
    from .api import compile

    model = compile(spec, params, weights=weights, limits=limits)
    name, conv = first_conv(model)
    return filter_grid(conv.weight, name)


def filters_figure(grid: FilterGrid, title: str = "") -> Figure:
    """The grid, drawn pixel for pixel (nearest neighbour), with a title."""
    scale = max(2.0, min(10.0, 8.0 / max(grid.image.shape[:2]) * 40))
    h, w = grid.image.shape[:2]
    fig = _figure(max(3.0, w * scale / 40), max(3.0, h * scale / 40) + 0.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid.image, interpolation="nearest")
    ax.set_axis_off()
    kh, kw = grid.weight_shape[2:]
    how = {"rgb": "RGB", "gray": "gray", "norm": "L2 norm over input channels"}[grid.mode]
    ax.set_title(title or f"{grid.layer}: {grid.tiles} filters {kh}x{kw} ({how}, each normalised)", fontsize=9)
    fig.tight_layout()
    return fig


# -- training curves -------------------------------------------------------------------------

METRIC_COLUMNS = ("acc", "dice", "iou")


def read_metrics(run: str | Path) -> list[dict[str, float]]:
    """The rows of a run folder's ``metrics.csv`` (as ``archspec train`` writes it: a header,
    one row per epoch, empty cells for metrics a row lacks), as floats by column."""
    folder = Path(run)
    path = folder / "metrics.csv" if folder.is_dir() or not folder.suffix else folder
    if not folder.exists():
        raise RunFolderError(f"run folder '{folder}' does not exist", fix="pass the --out folder of archspec train")
    if not path.is_file():
        raise RunFolderError(f"run folder '{folder}' has no metrics.csv",
                             fix="pass a folder archspec train wrote (it writes metrics.csv after each epoch)")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or "epoch" not in header:
            raise RunFolderError(f"{path}:1: metrics.csv has no 'epoch' column",
                                 expected="a header such as epoch,train_loss,val_loss,...")
        rows = []
        for line, cells in enumerate(reader, start=2):
            if len(cells) != len(header):
                raise RunFolderError(f"{path}:{line}: {len(cells)} cells for {len(header)} columns")
            row = {}
            for key, cell in zip(header, cells, strict=True):
                if cell.strip() == "":
                    continue
                try:
                    row[key] = float(cell)
                except ValueError:
                    raise RunFolderError(f"{path}:{line}: column '{key}' holds '{cell}', not a number") from None
            if "epoch" not in row:
                raise RunFolderError(f"{path}:{line}: the row has no epoch")
            rows.append(row)
    if not rows:
        raise RunFolderError(f"{path}: metrics.csv has no epochs yet", fix="plot the run after its first epoch")
    return rows


def run_labels(runs: Sequence[str | Path]) -> list[str]:
    """Each run's folder name; the last two path parts where names repeat."""
    names = [Path(r).name or str(r) for r in runs]
    return [n if names.count(n) == 1 else "/".join(Path(r).parts[-2:]) for n, r in zip(names, runs, strict=True)]


def curves_figure(curves: Mapping[str, Sequence[Mapping[str, float]]]) -> Figure:
    """Loss (log scale) and metric (accuracy, or Dice and IoU) against epoch, one colour
    per run, training solid and validation dashed."""
    fig = _figure(12, 4.4)
    ax_loss, ax_metric = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(curves))]
    for (label, rows), colour in zip(curves.items(), colours, strict=True):
        for ax, keys in ((ax_loss, ("loss",)), (ax_metric, METRIC_COLUMNS)):
            for split, style in (("train", "-"), ("val", "--")):
                for key in keys:
                    col = f"{split}_{key}"
                    pts = [(r["epoch"], r[col]) for r in rows if col in r]
                    if pts:
                        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=colour,
                                marker="o" if len(pts) < 25 else None, markersize=3,
                                label=f"{label} {col}")
    ax_loss.set_yscale("log")  # a diverging epoch (1e12) and a converged one (0.01) on one scale
    for ax, title in ((ax_loss, "loss (log scale)"), (ax_metric, "accuracy / Dice")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("training (solid) and validation (dashed)")
    fig.tight_layout()
    return fig


def plot_runs(runs: Sequence[str | Path]) -> Figure:
    """:func:`curves_figure` of run folders, labelled by their names."""
    if not runs:
        raise RunFolderError("no run folder to plot", fix="pass one or more run folders")
    return curves_figure({label: read_metrics(r) for label, r in zip(run_labels(runs), runs, strict=True)})


# -- drawing --------------------------------------------------------------------------------

def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (Agg), for an atomic write."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


__all__ = ["FilterGrid", "GradFlow", "LayerNorms", "RunFolderError", "Variant", "batch_loss", "curves_figure",
           "filter_grid", "filters", "filters_figure", "first_conv", "gradflow", "gradflow_figure", "gradflow_one",
           "png_bytes", "plot_runs", "read_metrics", "run_labels", "random_batch", "variants",
           "weighted_layers"]
