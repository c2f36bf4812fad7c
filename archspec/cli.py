"""The ``archspec`` command: a thin shell over the public API.

Exit codes: 0 ok, 2 a problem with the spec (printed with its file:line:col, the source
line and a caret; never a traceback), 1 an internal error. torch is imported only by the
commands that need it (``build``, ``export``).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import ArchSpecError, SpecValidationError
from .loader import DEFAULT_LIMITS, Limits

EXIT_SPEC_ERROR = 2
EXIT_INTERNAL = 1

_LIMIT_FLAGS = {
    "max_bytes": "largest spec file, in bytes",
    "max_depth": "deepest YAML nesting",
    "max_yaml_nodes": "most YAML values after alias expansion",
    "max_nodes": "most graph nodes after expansion",
    "max_repeat": "largest repeat count",
    "max_channels": "most channels of one tensor",
    "max_params": "most parameters in the model",
    "max_include_depth": "deepest chain of use: files",
}


def parse_param(text: str) -> tuple[str, Any]:
    """``k=v`` with ``v`` read as a YAML scalar (so ``-p width=32`` is an int)."""
    from .loader import load_text

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecValidationError(f"-p expects key=value, got '{text}'", fix="write e.g. -p num_classes=100")
    value = load_text(f"v: {raw}", "<-p>").data["v"] if raw.strip() else ""
    return key.strip(), value


def spec_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every spec command shares (-p, limits, --json) and the error contract."""

    @click.option("-p", "--param", "params", multiple=True, metavar="K=V", help="Override a spec param.")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of text.")
    @functools.wraps(fn)
    def wrapper(*args: Any, params: tuple[str, ...], as_json: bool, **kw: Any) -> None:
        limit_kw = {k: v for k in list(kw) if k in _LIMIT_FLAGS and (v := kw.pop(k)) is not None}
        try:
            kw["params"] = dict(parse_param(p) for p in params)
            kw["limits"] = DEFAULT_LIMITS.replace(**limit_kw) if limit_kw else DEFAULT_LIMITS
            fn(*args, as_json=as_json, **kw)
        except ArchSpecError as e:
            report_error(e, as_json)
            sys.exit(EXIT_SPEC_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    for name, helptext in reversed(list(_LIMIT_FLAGS.items())):
        wrapper = click.option(f"--{name.replace('_', '-')}", name, type=int, default=None,
                               help=f"Limit: {helptext} (default {getattr(DEFAULT_LIMITS, name)}).")(wrapper)
    return wrapper


def report_error(e: ArchSpecError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"ok": False, **e.to_dict()}, indent=2))
    else:
        click.echo(e.render(), err=True)


class _Group(click.Group):
    """Internal errors exit 1 with one line, not a traceback (ARCHSPEC_DEBUG=1 shows it)."""

    def invoke(self, ctx: click.Context) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - the top of the program
            if os.environ.get("ARCHSPEC_DEBUG"):
                raise
            click.echo(f"internal error: {type(e).__name__}: {e}\n(set ARCHSPEC_DEBUG=1 for the traceback; "
                       "please report it)", err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="archspec")
def main() -> None:
    """archspec: neural networks as YAML graphs, checked before a tensor exists.

    \b
    Examples:
      archspec check specs/resnet18.yaml
      archspec build specs/unet.yaml -p depth=3 --render -o build/unet
      archspec check specs/resnet18_cifar.yaml -p num_classes=100 --json

    Exit codes: 0 ok, 1 internal error, 2 spec error.
    """


def _fmt(shape: Any) -> str:
    return "x".join(str(d) for d in shape)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@spec_command
def check(spec: Path, params: dict[str, Any], limits: Limits, as_json: bool) -> None:
    """Validate SPEC and infer every shape, without importing torch.

    Prints the output shapes and every projection inserted for a residual merge.

    \b
    Example:
      archspec check specs/resnet18.yaml -p num_classes=10
    """
    from .api import check as do_check

    result = do_check(spec, params, limits=limits)
    if as_json:
        click.echo(json.dumps({"ok": True, **result.to_dict()}, indent=2))
        return
    g = result.graph
    click.echo(f"{spec}: ok — {g.name}, {len(g.nodes)} nodes")
    for k, v in result.inputs.items():
        click.echo(f"  input  {k}: {_fmt(v)}")
    for k, v in result.outputs.items():
        click.echo(f"  output {k}: {_fmt(v)}")
    for p in result.projections:
        click.echo(f"  projection {', '.join(p['nodes'])}: {p['label']} — {p['rule']}")


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the outputs (default build/<name>).")
@click.option("--render", is_flag=True, help="Also draw the graph (SVG, and DOT).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Load a state_dict (.safetensors or a weights-only .pt) with strict checking.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@spec_command
def build(spec: Path, out_dir: Path | None, render: bool, weights: Path | None, force: bool,
          params: dict[str, Any], limits: Limits, as_json: bool) -> None:
    """Compile SPEC to a torch module and print a per-node table.

    Writes <out>/<name>.json (the checked graph's report) and, with --render,
    <out>/<name>.svg and <out>/<name>.dot.

    \b
    Example:
      archspec build specs/unet.yaml --render -o build/unet
    """
    from .api import check as do_check
    from .api import compile as do_compile
    from .io import write_text

    result = do_check(spec, params, limits=limits)
    g = result.graph
    model = do_compile(g, weights=weights, limits=limits)
    rows = node_table(g)
    out_dir = out_dir or Path("build") / g.name
    written = [write_text(out_dir / f"{g.name}.json", json.dumps({**result.to_dict(), "table": rows}, indent=2),
                          force=True, protect=[spec])]
    if render:
        from .render import render as do_render

        written += do_render(g, out_dir / f"{g.name}.svg", force=True, protect=[spec])
    total = sum(p.numel() for p in model.parameters())
    if as_json:
        click.echo(json.dumps({"ok": True, **result.to_dict(), "params": total, "table": rows,
                               "written": [str(w) for w in written]}, indent=2))
        return
    print_table(rows, title=f"{g.name}: {total:,} parameters")
    for w in written:
        click.echo(f"wrote {w}")
    _ = force


def node_table(graph: Any) -> list[dict[str, Any]]:
    """Name, op, output shape and parameter count of every node."""
    from .ops import REGISTRY

    shapes = {k: tuple(v) for k, v in graph.inputs.items()}
    rows = []
    for n in graph.nodes:
        shapes[n.name] = n.shape
        op = REGISTRY.get(n.op)
        owned = n.module is not None and "share" not in n.meta
        params = op.params(op.Attrs.model_validate(dict(n.attrs)), [shapes[i] for i in n.inputs]) if owned else 0
        rows.append({"name": n.name, "op": n.op, "shape": list(n.shape or ()), "params": params,
                     "auto": n.provenance == "auto"})
    return rows


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left", box=None, pad_edge=False)
    t.add_column("node")
    t.add_column("op")
    t.add_column("shape", justify="right")
    t.add_column("params", justify="right")
    for r in rows:
        style = "magenta" if r["auto"] else None
        t.add_row(r["name"], r["op"] + (" (auto)" if r["auto"] else ""), _fmt(r["shape"]), f"{r['params']:,}",
                  style=style)
    Console(soft_wrap=True).print(t)


if __name__ == "__main__":  # pragma: no cover
    main()
