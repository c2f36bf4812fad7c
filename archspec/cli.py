"""The ``archspec`` command: it parses arguments and prints; the library computes.

Exit codes: 0 ok; 2 a problem with the spec (printed with its file:line:col, the source
line and a caret; never a traceback) or with the command line (a click usage error, as
click gives for every option); 3 a valid spec that the chosen export format cannot write;
1 an internal error or a broken op registered from Python. torch is imported only by the
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

from .cli_common import (
    EXIT_INTERNAL,
    EXIT_SPEC_ERROR,
    _rf_text,
    _si,
    cell,
    console,
    inputs_read,
    report_error,
)
from .errors import ArchSpecError, ExportError, OpDefinitionError, SpecValidationError
from .import_cli import target_options
from .limits import DEFAULT_LIMITS, Limits
from .ops.base import fmt
from .parse import parse_param

EXIT_UNSUPPORTED = 3

_LIMIT_FLAGS = {
    "max_bytes": "largest spec file, in bytes",
    "max_depth": "deepest YAML nesting",
    "max_yaml_nodes": "most YAML values after alias expansion",
    "max_nodes": "most graph nodes after expansion",
    "max_repeat": "largest repeat count",
    "max_channels": "most channels of one tensor",
    "max_params": "most parameters in the model",
    "max_include_depth": "deepest chain of use: files",
    "max_block_depth": "deepest nesting of blocks using blocks",
    "max_elements": "most elements of one per-sample tensor",
    "max_string": "longest YAML string, in characters",
    "max_int_digits": "most digits of a YAML integer",
}


def spec_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every spec command shares (-p, limits, --json) and the error contract."""

    @click.option("-p", "--param", "params", multiple=True, metavar="K=V", help="Override a spec param.")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of text.")
    @click.option("--limit", "limit_args", multiple=True, metavar="NAME=N",
                  help="Raise or lower a safety limit, e.g. --limit max_nodes=50000 (or --max-nodes 50000); "
                       "`archspec limits` lists them.")
    @functools.wraps(fn)
    def wrapper(*args: Any, params: tuple[str, ...], as_json: bool, limit_args: tuple[str, ...], **kw: Any) -> None:
        limit_kw = {k: v for k in list(kw) if k in _LIMIT_FLAGS and (v := kw.pop(k)) is not None}
        try:
            limit_kw.update(parse_limit(a) for a in limit_args)
            kw["params"] = dict(parse_param(p) for p in params)
            kw["limits"] = DEFAULT_LIMITS.replace(**limit_kw) if limit_kw else DEFAULT_LIMITS
            fn(*args, as_json=as_json, **kw)
        except ArchSpecError as e:
            if e.option is not None and not as_json:
                raise usage_error(e) from None
            report_error(e, as_json)
            sys.exit(exit_code(e))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    # Each limit also has a flag of its own (--max-nodes N), which the fixes in messages name;
    # the flags are hidden from --help so that the options people use come first.
    for name, helptext in reversed(list(_LIMIT_FLAGS.items())):
        wrapper = click.option(f"--{name.replace('_', '-')}", name, type=int, default=None, hidden=True,
                               help=f"Limit: {helptext} (default {getattr(DEFAULT_LIMITS, name)}).")(wrapper)
    return wrapper


def exit_code(e: ArchSpecError) -> int:
    """2 for a problem in the spec; 3 for an export limit; 1 for a broken user op."""
    if isinstance(e, ExportError):
        return EXIT_UNSUPPORTED
    if isinstance(e, OpDefinitionError):
        return EXIT_INTERNAL
    return EXIT_SPEC_ERROR


def usage_error(e: ArchSpecError) -> click.UsageError:
    """An error about an option's value, shown as click shows every usage error (exit 2)."""
    text = e.message + (f"\n  expected: {e.expected}" if e.expected else "") + (f"\n  fix: {e.fix}" if e.fix else "")
    return click.BadParameter(text, ctx=click.get_current_context(silent=True), param_hint=f"'{e.option}'")


def parse_limit(text: str) -> tuple[str, int]:
    """``max_nodes=50000`` (or ``max-nodes=50000``) for --limit."""
    from .errors import close_matches

    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_").removeprefix("__")
    if not sep or key not in _LIMIT_FLAGS:
        raise click.BadParameter(f"'{text}' is not NAME=N for a limit{close_matches(key, _LIMIT_FLAGS)}; "
                                 "`archspec limits` lists them", param_hint="--limit")
    try:
        value = int(raw.strip())
    except ValueError:
        raise click.BadParameter(f"'{text}': the value is not an integer", param_hint="--limit") from None
    if value < 1:
        raise click.BadParameter(f"'{text}': a limit is at least 1", param_hint="--limit")
    return key, value


class _Group(click.Group):
    """Internal errors exit 1 with one line, not a traceback (ARCHSPEC_DEBUG=1 shows it)."""

    def invoke(self, ctx: click.Context) -> Any:
        from .errors import safe_streams

        with safe_streams():  # nothing a spec says reaches the terminal raw
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (`archspec ops | head`): stop quietly, as `cat` does. Point
            # stdout at devnull so that the interpreter's final flush does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
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
      archspec summary specs/resnet18.yaml --depth 1
      archspec export specs/resnet18.yaml --to python -o model.py
      archspec init unet -p depth=3 -o mynet.yaml
      archspec schema -o archspec.schema.json
      archspec ops

    Exit codes: 0 ok, 1 internal error or broken op, 2 spec or usage error,
    3 export format cannot write the spec.
    """


_INPUT_HELP = ("Check this input shape instead of the spec's (CxHxW, or name=CxHxW for one of several "
               "inputs); it also gives symbolic sizes a value. Repeatable.")


@main.command()
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@click.option("--input", "input_shapes", multiple=True, metavar="[NAME=]CxHxW", help=_INPUT_HELP)
@click.option("--sizes", is_flag=True, help="Derive the valid input sizes even where the spec fixes them.")
@spec_command
def check(specs: tuple[str, ...], input_shapes: tuple[str, ...], sizes: bool, params: dict[str, Any], limits: Limits,
          as_json: bool) -> None:
    """Validate each SPEC and infer every shape, without importing torch.

    Prints the output shapes, every projection inserted for a residual merge and every
    broadcast accepted (a C×1×1 gate times C×H×W features). When
    the spec's input sizes are symbolic (inputs: {x: [3, H, W]}), derives and prints the
    sizes for which the graph is valid; --input checks one size and names the first node
    that breaks. A block-library file (blocks: and no nodes:) has its blocks checked.
    Several files give one result each and exit 2 if any fails; - reads stdin.

    \b
    Examples:
      archspec check specs/resnet18.yaml -p num_classes=10
      archspec check unet.yaml                      # x: [3, H, W] -> "H divisible by 16"
      archspec check specs/unet.yaml --input 3x450x600
      archspec check specs/unet.yaml --sizes          # sizes other than the spec's
      archspec check specs/*.yaml archspec/library/*.yaml
      cat net.yaml | archspec check -
    """
    if len(specs) == 1:
        report = _check_one(specs[0], input_shapes, sizes, params, limits)
        click.echo(json.dumps({"ok": True, **report["json"]}, indent=2) if as_json else "\n".join(report["text"]))
        if not as_json:
            _warn(report["warnings"])
        return
    failed, reports = False, []
    for spec in specs:
        try:
            report = _check_one(spec, input_shapes, sizes, params, limits)
        except ArchSpecError as e:
            failed = True
            reports.append({"file": spec, "ok": False, **e.to_dict()})
            if not as_json:
                click.echo(e.render(), err=True)
            continue
        reports.append({"file": spec, "ok": True, **report["json"]})
        if not as_json:
            click.echo("\n".join(report["text"]))
            _warn(report["warnings"])
    if as_json:
        click.echo(json.dumps({"ok": not failed, "files": reports}, indent=2))
    if failed:
        sys.exit(EXIT_SPEC_ERROR)


def _read_stdin(limits: Limits) -> str:
    """Standard input as spec text, read no further than the byte limit."""
    from .errors import LimitError, SpecSyntaxError

    raw = sys.stdin.buffer.read(limits.max_bytes + 1)
    if len(raw) > limits.max_bytes:
        raise LimitError(f"stdin holds more than the limit of {limits.max_bytes} bytes",
                         fix="raise the limit with --max-bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecSyntaxError("stdin is not valid UTF-8") from None


def _check_one(spec: str, input_shapes: tuple[str, ...], sizes: bool, params: dict[str, Any],
               limits: Limits) -> dict[str, Any]:
    """One file's check: its JSON report and its lines of text; raises its ArchSpecError."""
    from .analyse import input_constraints, load_with_inputs, symbols
    from .api import CheckResult, check_library, is_block_library, read
    from .errors import ShapeError
    from .loader import load_text
    from .parse import parse_shape
    from .passes import check as check_pass

    shapes = dict(parse_shape(t) for t in input_shapes)
    label = "<stdin>" if spec == "-" else spec
    doc = load_text(_read_stdin(limits), label, limits) if spec == "-" else read(Path(spec), limits)
    if is_block_library(doc):
        names = check_library(doc, limits)
        return {"json": {"kind": "block-library", "blocks": names},
                "text": [f"{label}: ok — block library, {len(names)} block{'s' if len(names) != 1 else ''}: "
                         f"{', '.join(names)}"], "warnings": []}
    constraints = None
    if not shapes and (sizes or symbols(doc, params)):
        constraints = input_constraints(doc, params, limits=limits, free=sizes)
        if not constraints.ok or constraints.example is None:
            first = constraints.error
            raise ShapeError(f"no input size makes the graph valid: {constraints.lines()[0]}",
                             got=f"at size {constraints.tried}: {first.message}" if first else None,
                             loc=first.loc if first else None, source=first.source if first else None,
                             fix="check the graph at one size with --input to see where it breaks")
        result = CheckResult(check_pass(constraints.example, limits))
    else:
        result = CheckResult(load_with_inputs(doc, params, shapes, limits))
    extra = {"constraints": constraints.to_dict()} if constraints is not None else {}
    g = result.graph
    text = [f"{label}: ok — {g.name}, {len(g.nodes)} nodes"]
    if constraints is not None:
        text.append(f"  input sizes are {'free' if sizes else 'symbolic'}; the graph is valid for:")
        text += [f"    {line}" for line in constraints.lines()]
        text.append("  for example:")
    text += [f"  input  {k}: {fmt(v)}" for k, v in result.inputs.items()]
    nodes = dict(g.named_outputs()) if g.output_keys is not None else {}
    text += [f"  output {k}: {fmt(v)}" + (f" ({nodes[k]})" if k in nodes else "") for k, v in result.outputs.items()]
    text += [f"  projection {', '.join(p['nodes'])}: {p['label']} — {p['rule']}" for p in result.projections]
    text += [f"  broadcast {line}" for line in result.broadcast_lines()]
    return {"json": {**result.to_dict(), **extra}, "text": text, "warnings": result.warnings}


def _warn(findings: list[Any]) -> None:
    """Each finding as ``warning: file:line:col: message`` (and its fix), on stderr."""
    for f in findings:
        click.echo(f.render(), err=True)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the outputs (default build/<name>).")
@click.option("--render", is_flag=True, help="Also draw the graph (SVG, and DOT).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Load a state_dict (.safetensors or a weights-only .pt) with strict checking.")
@click.option("--input", "input_shapes", multiple=True, metavar="[NAME=]CxHxW", help=_INPUT_HELP)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@spec_command
def build(spec: Path, out_dir: Path | None, render: bool, weights: Path | None, input_shapes: tuple[str, ...],
          force: bool, params: dict[str, Any], limits: Limits, as_json: bool) -> None:
    """Compile SPEC to a torch module and print a per-node table.

    Writes <out>/<name>.json (the checked graph's report) and, with --render,
    <out>/<name>.svg and <out>/<name>.dot.

    \b
    Example:
      archspec build specs/unet.yaml --render -o build/unet
    """
    from .api import check as do_check
    from .api import compile as do_compile
    from .io import check_target, record_written, safe_stem, write_text, written_before

    if render:  # say that graphviz is missing before compiling anything
        from .render import require_dot

        require_dot("svg")
    from .analyse import load_with_inputs
    from .api import CheckResult
    from .parse import parse_shape

    shapes = dict(parse_shape(t) for t in input_shapes)
    result = CheckResult(load_with_inputs(spec, params, shapes, limits)) if shapes else do_check(spec, params,
                                                                                                 limits=limits)
    g = result.graph
    # The spec's name: names the files, never their folder: that is -o's (or build/).
    stem = safe_stem(g.name)
    out_dir = out_dir or Path("build") / stem
    protect = inputs_read(spec, g, weights)
    # Every target is checked before the first is written: a refusal changes nothing. A file
    # this command wrote there before, unchanged since, is replaced without --force.
    targets = [out_dir / f"{stem}{suffix}" for suffix in ((".json", ".svg", ".dot") if render else (".json",))]
    ours = {t: written_before(t) for t in targets}
    force = force or all(not t.exists() or ours[t] for t in targets)
    for t in sorted(targets, key=lambda t: ours[t]):  # a refusal names a file that is not ours
        check_target(t, force=force, protect=protect)
    model = do_compile(g, weights=weights, limits=limits)
    from .table import node_table

    rows = node_table(g)
    written = [write_text(out_dir / f"{stem}.json", json.dumps({**result.to_dict(), "table": rows}, indent=2),
                          force=force, protect=protect)]
    if render:
        from .api import render as do_render

        written += do_render(g, out_dir / f"{stem}.svg", force=force, protect=protect, dot_beside=True)
    record_written(written)
    total = sum(p.numel() for p in model.parameters())
    if as_json:
        click.echo(json.dumps({"ok": True, **result.to_dict(), "params": total, "table": rows,
                               "written": [str(w) for w in written]}, indent=2))
        return
    print_table(rows, title=f"{g.name}: {total:,} parameters")
    for w in written:
        click.echo(f"wrote {w}")
    _warn(result.warnings)


_RENDER_FORMATS = ("svg", "png", "pdf", "dot", "mermaid")


@main.command("render")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (default <name>.<format>); - writes DOT or Mermaid to stdout.")
@click.option("--format", "fmt", type=click.Choice(_RENDER_FORMATS), default=None,
              help="svg, png, pdf (need graphviz), dot or mermaid; default from -o's suffix, else svg.")
@click.option("--expand", multiple=True, metavar="NAME|all",
              help="Draw every instance of this repeat (repeatable; 'all' for every repeat).")
@click.option("--depth", type=click.IntRange(min=0), default=None, metavar="N",
              help="Draw scopes nested N deep as one box each (0: only the top level).")
@click.option("--no-fold", is_flag=True, help="Draw norms and activations as nodes of their own.")
@click.option("--direction", type=click.Choice(["TB", "LR"], case_sensitive=False), default="TB", show_default=True,
              help="TB draws top to bottom; LR left to right (wide screens, long chains).")
@click.option("--max-render-nodes", type=click.IntRange(min=1), default=None,
              help="Limit: most nodes in one drawing (default 600).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--input", "input_shapes", multiple=True, metavar="[NAME=]CxHxW",
              help="An import target's input shape (default 3x224x224).")
@target_options
@spec_command
def render_cmd(spec: Path, out: Path | None, fmt: str | None, expand: tuple[str, ...], depth: int | None,
               no_fold: bool, direction: str, max_render_nodes: int | None, force: bool, input_shapes: tuple[str, ...],
               target_args: tuple[str, ...], target_kwargs: tuple[str, ...], params: dict[str, Any], limits: Limits,
               as_json: bool) -> None:
    """Draw SPEC's skip topology: SVG, PNG, PDF, DOT or Mermaid. No torch for a spec.

    SPEC may also be an import target, module:callable (when no file has that name), with
    --arg/--kwarg for its constructor: the module is imported as `archspec import` does.

    The main path is solid, residual and concat skips dashed and labelled with the ops
    they span; auto projections are magenta; repeats collapse to one "×N" cluster unless
    that would hide a skip. A spec whose shapes fail is still drawn, the failure in red,
    and the command then exits 2.

    \b
    Examples:
      archspec render specs/resnet18.yaml -o resnet18.svg
      archspec render specs/unet.yaml -p depth=3 --format png
      archspec render specs/resnet.yaml -p depth=50 --expand layer2 -o r50.pdf
      archspec render specs/densenet.yaml --format mermaid -o -
      archspec render specs/resnet18.yaml --direction LR -o resnet18.png
      archspec render torchvision.models:resnet50 -o resnet50.svg
    """
    import shutil

    from . import render as r
    from .api import graph_of
    from .import_cli import is_target, target_spec

    to_stdout = out is not None and str(out) == "-"
    fmt = r.resolve_format(None if to_stdout else out, fmt)
    if to_stdout and fmt in r.IMAGE_FORMATS:
        raise ArchSpecError(f"-o - writes text, but {fmt} is an image format",
                            fix="pass --format dot or --format mermaid, or name an output file", option="-o")
    r.require_dot(fmt)
    source: Any = spec
    if is_target(str(spec)):
        source = target_spec(str(spec), target_args, target_kwargs, input_shapes)
    elif input_shapes or target_args or target_kwargs:
        raise ArchSpecError(f"--input, --arg and --kwarg apply to an import target, and '{spec}' is a file",
                            fix="drop them, or name a module:callable", option="--input")
    graph = graph_of(source, params, limits)
    d = r.drawing(graph, expand=expand, depth=depth, fold=not no_fold,
                  max_render_nodes=max_render_nodes or r.MAX_RENDER_NODES)
    written: list[Path] = []
    if to_stdout:
        click.echo(r.source_text(d, fmt, direction.upper()), nl=False)
    else:
        from .io import safe_stem

        target = out if out is not None else Path(safe_stem(graph.name) + r.SUFFIXES[fmt])
        written = r.write_drawing(d, target, fmt, force=force, protect=inputs_read(spec, graph),
                                  direction=direction.upper())
    errors = graph.errors()
    if as_json:
        click.echo(json.dumps({"ok": not errors, "written": [str(w) for w in written], "nodes": len(d.nodes),
                               "errors": [e.to_dict() for e in errors]}, indent=2))
    elif not to_stdout:
        for w in written:
            click.echo(f"wrote {w}" + (f" (the shape error{'s' if len(errors) > 1 else ''} drawn in red)"
                                        if errors else ""))
        if fmt not in r.IMAGE_FORMATS and shutil.which("dot") is None:
            click.echo(f"note: graphviz's 'dot' is not on PATH, so no image was made; to draw one, "
                       f"{r.INSTALL_GRAPHVIZ.split(', or write')[0]}, then run "
                       f"archspec render {spec} --format svg", err=True)
    if errors:
        if not as_json:
            click.echo(errors[0].with_others(errors[1:]).render(), err=True)
        sys.exit(EXIT_SPEC_ERROR)


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.table import Table

    t = Table(title=cell(title), title_justify="left", box=None, pad_edge=False)
    t.add_column("node")
    t.add_column("op")
    t.add_column("shape", justify="right")
    t.add_column("params", justify="right")
    for r in rows:
        style = "magenta" if r["auto"] else None
        t.add_row(cell(r["name"]), cell(r["op"] + (" (auto)" if r["auto"] else "")), fmt(r["shape"] or None), f"{r['params']:,}",
                  style=style)
    console(wide_when_piped=False).print(t)


# -- summary, schema, export, init, ops ---------------------------------------------------

@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-d", "--depth", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fold nodes into scopes of this many dotted name parts (1: layer1, layer2, ...); 0 lists every node.")
@click.option("--input", "input_shapes", multiple=True, metavar="[NAME=]CxHxW", help=_INPUT_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size of the memory estimate (torchinfo's convention, float32).")
@click.option("--vary", multiple=True, metavar="KEY=V1,V2,...",
              help="Compare variants: one row per value of a param (params, MACs, field, output shape).")
@target_options
@spec_command
def summary(spec: Path, depth: int, input_shapes: tuple[str, ...], batch_size: int, vary: tuple[str, ...],
            target_args: tuple[str, ...], target_kwargs: tuple[str, ...], params: dict[str, Any], limits: Limits,
            as_json: bool) -> None:
    """Per-node output shape, parameters, MACs, receptive field and effective stride of SPEC.

    SPEC may also be an import target, module:callable (when no file has that name), with
    --arg/--kwarg for its constructor and --input its input shape (default 3x224x224).

    Without torch. MACs are the multiply-accumulates of conv, conv_transpose and linear
    (FLOPs = 2 x MACs); bias, norms, activations, add/concat, pooling and up-sampling
    count 0, as torch.utils.flop_counter counts. The receptive field is the maximum over
    all paths, in input pixels; "global" after global pooling or a linear layer.

    With --depth 1 each stage says whether its field covers the whole input.

    \b
    Examples:
      archspec summary specs/resnet18.yaml --depth 1
      archspec summary specs/unet.yaml --input 3x256x256 --json
      archspec summary specs/resnet.yaml --vary depth=18,34,50
      archspec summary torchvision.models:resnet50 --depth 1
    """
    from .analyse import CONVENTION
    from .analyse import summary as do_summary
    from .import_cli import is_target, target_spec
    from .parse import parse_shape, parse_vary

    source: Any = spec
    if is_target(str(spec)):
        source = target_spec(str(spec), target_args, target_kwargs, input_shapes)
        input_shapes = ()
    elif target_args or target_kwargs:
        raise ArchSpecError(f"--arg and --kwarg apply to an import target, and '{spec}' is a file",
                            fix="drop them, or name a module:callable", option="--arg")

    if vary:
        from .analyse import compare
        from .experiments_cli import print_comparison

        shapes = dict(parse_shape(t) for t in input_shapes)
        print_comparison(compare(source, params, dict(parse_vary(v) for v in vary), input_shapes=shapes,
                                 limits=limits), as_json)
        return
    s = do_summary(source, params, input_shapes=dict(parse_shape(t) for t in input_shapes), limits=limits)
    memory = s.memory(batch_size)
    if as_json:
        click.echo(json.dumps({"ok": True, **s.to_dict(depth), "memory": memory.to_dict()}, indent=2))
        return
    from rich.table import Table

    g = s.graph
    ins = ", ".join(f"{k}: {fmt(v)}" for k, v in g.inputs.items())
    t = Table(title=cell(f"{g.name} ({ins})"), title_justify="left", box=None, pad_edge=False,
              caption=f"total: {s.params:,} params ({_si(s.params)}), {s.macs:,} MACs ({_si(s.macs)}MAC, "
                      f"{_si(s.flops)}FLOP)\n{memory.lines()[0]}\n{s.coverage_line(depth)}\n{CONVENTION}",
              caption_justify="left")
    covers = [("covers " + fmt(s.input_size, sep="x"), "right")] if depth else []
    for col, just in (("node", "left"), ("op", "left"), ("shape", "right"), ("params", "right"), ("MACs", "right"),
                      ("RF", "right"), ("stride", "right"), *covers):
        t.add_column(col, justify=just)  # type: ignore[arg-type]  # rich wants a Literal; these are its values
    for r in s.collapse(depth):
        rf, stride = _rf_text(r.field)
        op = r.op + (" (auto)" if r.auto else "") + (f" [{r.nodes} nodes]" if r.nodes > 1 else "")
        cov = [{True: "yes", False: "no", None: "—"}[s.covers(r)]] if depth else []
        t.add_row(cell(r.name), cell(op), fmt(r.shape), f"{r.params:,}", f"{r.macs:,}", rf, stride, *cov,
                  style="magenta" if r.auto else None)
    console().print(t)


@main.command()
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the schema to this file instead of stdout.")
@click.option("--library", is_flag=True, help="The schema of block-library files (blocks: and no nodes:).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def schema(out: Path | None, force: bool, library: bool) -> None:
    """Print the JSON Schema of the spec format, for editors (--library: of block-library files).

    With yaml-language-server (VS Code's YAML extension, neovim, ...), put this first
    line in a spec to get completion and checking as you type (see `archspec docs editor`):

    \b
      # yaml-language-server: $schema=archspec.schema.json

    \b
    Examples:
      archspec schema -o archspec.schema.json
      archspec schema --library -o archspec.library.schema.json
      archspec schema | jq '.properties | keys'
    """
    from .spec import json_schema

    text = json.dumps(json_schema("library" if library else "spec"), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    from .io import write_text

    try:
        click.echo(f"wrote {write_text(out, text, force=force)}", err=True)
    except ArchSpecError as e:
        report_error(e, False)
        sys.exit(EXIT_SPEC_ERROR)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "fmt", type=click.Choice(["python", "torchscript", "export", "onnx"]), default="python",
              show_default=True, help="python: a standalone model.py (torch only); torchscript: torch.jit; "
                                      "export: a torch.export program (.pt2); onnx: needs the onnx extra.")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Load a state_dict first (strict). Only the binary formats carry weights.")
@click.option("--input", "input_shapes", multiple=True, metavar="[NAME=]CxHxW", help=_INPUT_HELP)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--optimize", "level", type=click.Choice(["none", "inference"]), default="none", show_default=True,
              help="inference: fold batch norms into convs, channels_last, in place (torchscript, export, onnx).")
@spec_command
def export(spec: Path, fmt: str, out: Path, weights: Path | None, input_shapes: tuple[str, ...], force: bool,
           level: str, params: dict[str, Any], limits: Limits, as_json: bool) -> None:
    """Write SPEC as a standalone model.py, TorchScript, a torch.export program or ONNX.

    The python format is an ordinary nn.Module that imports only torch; its state_dict
    keys are the compiled model's, so weights move between the two with strict=True.
    The other formats are traced from the model in eval mode on a batch of 2; export
    and onnx leave the batch size free.

    \b
    Examples:
      archspec export specs/resnet18.yaml --to python -o model.py
      archspec export specs/unet.yaml --to export -o unet.pt2 --input 3x256x256
    """
    from .analyse import load_with_inputs
    from .api import compile as do_compile
    from .export import export as do_export
    from .io import check_target
    from .parse import parse_shape

    if level != "none" and fmt == "python":
        raise ArchSpecError(f"--optimize {level} rewrites the compiled model, but --to python writes the spec's "
                            "own modules", fix=f"export with --to torchscript or --to export and --optimize {level}")
    graph = load_with_inputs(spec, params, dict(parse_shape(t) for t in input_shapes), limits)
    check_target(out, force=force, protect=inputs_read(spec, graph, weights))  # before compiling
    model = do_compile(graph, weights=weights, limits=limits, optimize=level)
    path = do_export(graph, fmt, out, force=force, protect=inputs_read(spec, graph, weights), model=model)
    if as_json:
        click.echo(json.dumps({"ok": True, "name": graph.name, "format": fmt, "written": str(path)}, indent=2))
        return
    click.echo(f"wrote {path} ({fmt}, {graph.name})")


@main.command()
@click.argument("template", required=False)
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the new spec here (default: stdout).")
@click.option("--name", default=None, help="The new spec's name: (default: the output file's stem).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@spec_command
def init(template: str | None, out: Path | None, name: str | None, force: bool, params: dict[str, Any],
         limits: Limits, as_json: bool) -> None:
    """Start a new spec from TEMPLATE, with -p overrides written into its params:.

    Without TEMPLATE, lists the templates. The result is checked before it is written.

    \b
    Examples:
      archspec init                                  # list the templates
      archspec init resnet18 -p num_classes=10 -o mynet.yaml
    """
    from .errors import close_matches
    from .template import instantiate
    from .template import templates as shipped

    templates = shipped()
    if template is None:
        if as_json:
            click.echo(json.dumps({"ok": True, "templates": list(templates)}, indent=2))
        else:
            click.echo("templates: " + ", ".join(templates))
        return
    if template not in templates:
        raise SpecValidationError(f"unknown template '{template}'{close_matches(template, templates)}",
                                  expected="one of: " + ", ".join(templates))
    text = instantiate(templates[template].read_text(encoding="utf-8"), params,
                       name or (out.stem if out is not None else None), limits)
    if out is None:
        click.echo(json.dumps({"ok": True, "template": template, "text": text}, indent=2) if as_json else text,
                   nl=as_json)
        return
    from .io import write_text

    path = write_text(out, text, force=force, protect=[Path(str(templates[template]))])
    if as_json:
        click.echo(json.dumps({"ok": True, "template": template, "written": str(path)}, indent=2))
    else:
        click.echo(f"wrote {path} (from template {template})")


@main.command("docs")
@click.argument("topic", required=False)
def docs_cmd(topic: str | None) -> None:
    """Print a documentation page (Markdown), or list the pages.

    The pages ship with archspec, so they are here wherever it is installed.

    \b
    Examples:
      archspec docs                 # the list
      archspec docs spec-format     # the spec language
      archspec docs ops | less
    """
    from . import manual

    try:
        if topic is None:
            names = manual.topics()
            width = max(map(len, names), default=0)
            for name in names:
                click.echo(f"{name:<{width}}  {manual.title(name)}")
            click.echo("\nprint one with: archspec docs TOPIC")
            return
        click.echo(manual.page(topic), nl=False)
    except ArchSpecError as e:
        report_error(e, as_json=False)
        sys.exit(EXIT_SPEC_ERROR)


@main.command("limits")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of text.")
def list_limits(as_json: bool) -> None:
    """List the safety limits, their defaults, and how to change one.

    Every spec command takes --limit NAME=N (repeatable) or --max-NAME N.
    """
    rows = [{"name": k, "flag": f"--{k.replace('_', '-')}", "default": getattr(DEFAULT_LIMITS, k), "what": v}
            for k, v in _LIMIT_FLAGS.items()]
    if as_json:
        click.echo(json.dumps({"ok": True, "limits": rows}, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    digits = max(len(f"{r['default']:,}") for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['default']:>{digits},}  {r['what']}")
    click.echo("\nchange one with --limit NAME=N (e.g. --limit max_nodes=50000) or its flag (--max-nodes 50000); "
               "`archspec docs security` says why each exists")


@main.command("ops")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of text.")
def list_ops(as_json: bool) -> None:
    """List the registered ops: name, family, inputs, whether it has parameters.

    \b
    Example:
      archspec ops --json
    """
    from .ops import REGISTRY

    rows: list[dict[str, Any]] = []
    for name in sorted(REGISTRY.names(), key=lambda n: (REGISTRY.get(n).family, n)):
        op = REGISTRY.get(name)
        lo, hi = op.arity
        arity = str(lo) if hi == lo else f"{lo}+" if hi is None else f"{lo}-{hi}"
        doc = " ".join((op.doc or op.__doc__ or "").strip().split("\n\n")[0].split())
        attrs: dict[str, dict[str, Any]] = {}
        for k, f in op.Attrs.model_fields.items():
            default = None if f.is_required() else f.default
            attrs[k] = {"required": f.is_required(),
                        "default": default if isinstance(default, (int, float, str, bool, type(None))) else repr(default)}
        rows.append({"name": name, "family": op.family, "inputs": arity, "module": not op.stateless,
                     "attrs": attrs, "doc": doc})
    if as_json:
        click.echo(json.dumps({"ok": True, "ops": rows}, indent=2))
        return
    from rich.table import Table

    t = Table(title=f"{len(rows)} ops", title_justify="left", box=None, pad_edge=False)
    for col in ("op", "family", "inputs", "params", "attributes", "description"):
        t.add_column(col)
    for r in rows:
        text = ", ".join(k if a["required"] else f"{k}={a['default']}" for k, a in r["attrs"].items())
        # cell(): a description such as "inputs [x, h, t]" is text, not rich markup.
        t.add_row(cell(r["name"]), r["family"], r["inputs"], "yes" if r["module"] else "", cell(text),
                  cell(_plain(r["doc"])))
    console().print(t)


def _plain(doc: str) -> str:
    """A docstring for the terminal: ``code`` and `code` without their RST quotes."""
    import re

    return re.sub(r"``(.+?)``|`([^`]+)`", lambda m: m.group(1) or m.group(2), doc)


from .train.commands import register as _register_training  # noqa: E402 - imports no torch

_register_training(main, spec_command)

from .experiments_cli import register as _register_experiments  # noqa: E402 - no torch, no cycle

_register_experiments(main, spec_command)

from .import_cli import register as _register_import  # noqa: E402 - no torch, no cycle

_register_import(main, spec_command)

if __name__ == "__main__":  # pragma: no cover
    main()
