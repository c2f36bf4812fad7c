"""The experiment commands: ``archspec gradflow``, ``filters`` and ``plot``.

A thin shell over :mod:`archspec.experiments`: parse, call, print, write the picture
atomically. torch and matplotlib are imported by the functions that compute and draw.

``archspec.cli`` calls :func:`register` with its group and its ``spec_command``
decorator; this module does not import ``archspec.cli`` when it is imported (its
printing helpers are imported when a command runs), so ``python -m archspec.cli`` has
no import cycle.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from .errors import ArchSpecError
from .loader import Limits


def _write_png(fig: Any, out: Path, force: bool, protect: Sequence[Path]) -> Path:
    from .experiments import png_bytes
    from .io import check_target, write_bytes

    check_target(out, force=force, protect=protect)
    return write_bytes(out, png_bytes(fig), force=force, protect=protect)


def _num(x: float) -> str:
    return f"{x:.3e}"


_GRADFLOW_OPTIONS: list[Callable[..., Any]] = [
    click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--vary", multiple=True, metavar="KEY=V1,V2,...",
                 help="One network per value of a param (repeatable: every combination)."),
    click.option("--data", default="random", show_default=True, metavar="SOURCE",
                 help="The batch: 'random' draws it from the spec's shapes and --seed; any archspec train "
                      "source (synthetic[:N], cells, cifar10:DIR, ...) gives its first training samples."),
    click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Load this state_dict (.safetensors or a weights-only .pt) into every network."),
    click.option("--batch-size", "batch", type=click.IntRange(min=1), default=16, show_default=True),
    click.option("--seed", type=int, default=0, show_default=True, help="Seeds the initial weights and the batch."),
    click.option("--eval", "eval_mode", is_flag=True,
                 help="Eval mode: norms use their running statistics instead of the batch's."),
    click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Draw the gradient norms into this PNG (one line per network)."),
    click.option("--force", is_flag=True, help="Overwrite an existing PNG."),
]

_FILTERS_OPTIONS: list[Callable[..., Any]] = [
    click.argument("weights", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--spec", "spec", required=True, type=click.Path(dir_okay=False, path_type=Path),
                 help="The spec the weights belong to."),
    click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="The PNG to write (default: filters.png beside the weights)."),
    click.option("--force", is_flag=True, help="Overwrite an existing PNG."),
]

_PLOT_OPTIONS: list[Callable[..., Any]] = [
    click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path)),
    click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
                 help="The PNG to write."),
    click.option("--force", is_flag=True, help="Overwrite an existing PNG."),
]


def gradflow_cmd(specs: tuple[Path, ...], vary: tuple[str, ...], data: str, weights: Path | None, batch: int,
                 seed: int, eval_mode: bool, out: Path | None, force: bool, params: dict[str, Any],
                 limits: Limits, as_json: bool) -> None:
    """Gradient norm, weight norm and their ratio of every weighted layer after one
    forward and backward pass, for one or more networks.

    Weighted layers are the modules with parameters of their own (convolutions, linear
    layers, norms), in forward order. The networks are in training mode (--eval: eval
    mode) and start from their spec's initialisation (seeded) or --weights. The random
    batch is standard normal inputs and random class targets (cross-entropy), drawn
    from --seed.

    \b
    Examples:
      archspec gradflow specs/resnet_cifar.yaml -p n=8 --vary residual=true,false -o gradflow.png
      archspec gradflow specs/resnet_cifar.yaml specs/plain18.yaml --json
    """
    from .experiments import gradflow, gradflow_figure
    from .parse import parse_vary

    varied = dict(parse_vary(v) for v in vary)
    if out is not None:
        from .io import check_target

        check_target(out, force=force, protect=[*specs, *([weights] if weights else [])])
    flows = gradflow(list(specs), params, vary=varied, data=data, weights=weights, batch=batch, seed=seed,
                     train=not eval_mode, limits=limits)
    written = None
    if out is not None:
        written = _write_png(gradflow_figure(flows), out, force, [*specs, *([weights] if weights else [])])
    if as_json:
        click.echo(json.dumps({"ok": True, "networks": [f.to_dict() for f in flows],
                               "written": str(written) if written else None}, indent=2))
        return
    from rich.table import Table

    from .cli_common import cell, console

    screen = console()
    for f in flows:
        mode = "training" if f.train else "eval"
        t = Table(title=cell(f"{f.label}: loss {f.loss:.4f} on a {f.data} batch of {f.batch} (seed {f.seed}, {mode} mode)"),
                  title_justify="left", box=None, pad_edge=False,
                  caption=f"gradient norm, first / last weight layer (conv, linear): {f.first_to_last:.3g}", caption_justify="left")
        for col, just in (("#", "right"), ("layer", "left"), ("op", "left"), ("params", "right"),
                          ("grad norm", "right"), ("weight norm", "right"), ("grad/weight", "right")):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        for la in f.layers:
            t.add_row(str(la.depth), cell(la.name), cell(la.op), f"{la.params:,}", _num(la.grad_norm), _num(la.weight_norm),
                      _num(la.ratio))
        screen.print(t)
        screen.print()
    if written:
        click.echo(f"wrote {written}")


def filters_cmd(weights: Path, spec: Path, out: Path | None, force: bool, params: dict[str, Any], limits: Limits,
                as_json: bool) -> None:
    """Draw the first convolution's filters of a trained network as a grid of tiles.

    One tile per filter, each normalised to its own range (minimum black, maximum
    white); RGB for a convolution over 3 input channels, gray for 1, else the L2 norm
    over the input channels.

    \b
    Example:
      archspec filters runs/resnet20/best.safetensors --spec specs/resnet_cifar.yaml -o filters.png
    """
    from .api import load
    from .cli_common import inputs_read
    from .experiments import filters, filters_figure

    target = out or weights.parent / "filters.png"
    protect = inputs_read(spec, load(spec, params, limits=limits), weights)
    from .io import check_target

    check_target(target, force=force, protect=protect)
    grid = filters(weights, spec, params, limits=limits)
    written = _write_png(filters_figure(grid), target, force, protect)
    info = {"layer": grid.layer, "weight_shape": list(grid.weight_shape), "tiles": grid.tiles, "mode": grid.mode,
            "rows": grid.rows, "cols": grid.cols, "written": str(written)}
    if as_json:
        click.echo(json.dumps({"ok": True, **info}, indent=2))
        return
    shape = "x".join(map(str, grid.weight_shape))
    click.echo(f"{grid.layer}: {grid.tiles} filters ({shape}, {grid.mode}) in {grid.rows}x{grid.cols} tiles")
    click.echo(f"wrote {written}")


def _plain_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The error contract of a command without a spec: an ArchSpecError exits 2."""

    @click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of text.")
    @functools.wraps(fn)
    def wrapper(*args: Any, as_json: bool, **kw: Any) -> None:
        try:
            fn(*args, as_json=as_json, **kw)
        except ArchSpecError as e:
            from .cli_common import EXIT_SPEC_ERROR, report_error

            report_error(e, as_json)
            sys.exit(EXIT_SPEC_ERROR)

    return wrapper


def plot_cmd(runs: tuple[Path, ...], out: Path, force: bool, as_json: bool) -> None:
    """Overlay the training curves of run folders: loss, and accuracy or Dice,
    training (solid) and validation (dashed), one colour per run.

    Each RUN is a folder archspec train wrote (its metrics.csv is read).

    \b
    Example:
      archspec plot runs/plain20 runs/plain56 runs/resnet20 runs/resnet56 -o degradation.png
    """
    from .experiments import curves_figure, read_metrics, run_labels
    from .io import check_target

    check_target(out, force=force, protect=[r / "metrics.csv" for r in runs])
    curves = {label: read_metrics(r) for label, r in zip(run_labels(runs), runs, strict=True)}
    written = _write_png(curves_figure(curves), out, force, [r / "metrics.csv" for r in runs])
    if as_json:
        click.echo(json.dumps({"ok": True, "runs": {k: v[-1] | {"epochs": len(v)} for k, v in curves.items()},
                               "written": str(written)}, indent=2))
        return
    for label, rows in curves.items():
        last = rows[-1]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "epoch" and ("loss" in k or "acc" in k
                                                                                         or "dice" in k))
        click.echo(f"{label}: {len(rows)} epochs; last: {shown}")
    click.echo(f"wrote {written}")


def print_comparison(rows: Sequence[tuple[str, Any]], as_json: bool) -> None:
    """``archspec summary --vary``: one row per variant (a label and its Summary)."""
    out = []
    for label, s in rows:
        last = s.last_spatial()
        first = s.covered_from(1)
        out.append({"variant": label, "name": s.graph.name, "params": s.params, "macs": s.macs,
                    "receptive_field": last.field.to_dict() if last and last.field else None,
                    "field_at": last.name if last else None, "covered_from": first.name if first else None,
                    "outputs": {o: list(s.graph.shape_of(o) or ()) for o in s.graph.outputs}, "_last": last})
    if as_json:
        click.echo(json.dumps({"ok": True, "variants": [{k: v for k, v in r.items() if k != "_last"} for r in out]},
                              indent=2))
        return
    from rich.table import Table

    from .cli_common import _rf_text, _si, cell, console
    from .ops.base import fmt as _fmt

    first_summary = rows[0][1]
    ins = ", ".join(f"{k}: {_fmt(v)}" for k, v in first_summary.graph.inputs.items())
    t = Table(title=cell(f"{first_summary.graph.name} ({ins}): {len(rows)} variants"), title_justify="left", box=None,
              pad_edge=False, caption="RF: the receptive field of the last feature map before a global op (its node "
              "in 'at'); covers: the first stage whose field spans the whole input", caption_justify="left")
    for col, just in (("variant", "left"), ("params", "right"), ("MACs", "right"), ("RF", "right"),
                      ("stride", "right"), ("at", "left"), ("covers from", "left"), ("output", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in out:
        rf, stride = _rf_text(r["_last"].field if r["_last"] else None)
        t.add_row(cell(r["variant"]), f"{r['params']:,} ({_si(r['params'])})", f"{r['macs']:,} ({_si(r['macs'])})", rf,
                  stride, cell(r["field_at"] or "—"), cell(r["covered_from"] or "no"),
                  ", ".join(_fmt(v) for v in r["outputs"].values()))
    console().print(t)


def _apply(fn: Callable[..., Any], decorators: Sequence[Callable[..., Any]]) -> Callable[..., Any]:
    for d in reversed(decorators):
        fn = d(fn)
    return fn


def register(group: click.Group, spec_command: Callable[..., Any]) -> None:
    """Add ``gradflow``, ``filters`` and ``plot`` to ``group``."""
    group.add_command(click.command("gradflow")(_apply(spec_command(gradflow_cmd), _GRADFLOW_OPTIONS)))
    group.add_command(click.command("filters")(_apply(spec_command(filters_cmd), _FILTERS_OPTIONS)))
    group.add_command(click.command("plot")(_apply(_plain_command(plot_cmd), _PLOT_OPTIONS)))


__all__ = ["filters_cmd", "gradflow_cmd", "plot_cmd", "print_comparison", "register"]
