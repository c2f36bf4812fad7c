"""``archspec import``, and import targets for ``render`` and ``summary``.

A target names Python the user chooses to run, as ``python -m`` does: ``module:callable``
(``torchvision.models:resnet50``, ``timm:create_model --arg resnet50d``), called with the
``--arg``/``--kwarg`` values, or a file holding a whole module saved with ``torch.save``.
A spec never names code; only these command-line arguments do.

``render`` and ``summary`` take a target where they take a spec: an argument that is no
existing file and reads ``module:callable`` is a target (a spec file always wins), so
``archspec summary torchvision.models:resnet50`` counts any model. Deciding that needs
no torch; only importing the target does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from .errors import ArchSpecError, ImportTargetError

_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
DEFAULT_INPUT = (3, 224, 224)


def is_target(text: str) -> bool:
    """``module:callable`` and no file of that name: an import target, not a spec."""
    if not _TARGET.fullmatch(text):
        return False
    try:
        return not Path(text).exists()
    except (OSError, ValueError):
        return True


def parse_value(text: str, option: str) -> Any:
    """A constructor argument as a YAML scalar: ``2`` an int, ``true`` a bool, ``resnet50d`` a string."""
    from .loader import load_text

    try:
        return load_text(f"v: {text}", f"<{option}>").data["v"]
    except ArchSpecError as e:
        raise ImportTargetError(f"{option} {text}: {e.message}", option=option,
                                fix="quote a string that YAML reads otherwise: --arg \"'on'\"") from None


def parse_kwarg(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise ImportTargetError(f"--kwarg expects NAME=VALUE, got '{text}'", option="--kwarg",
                                fix="write e.g. --kwarg num_classes=10")
    return key.strip(), parse_value(raw.strip(), "--kwarg")


def load_target(target: str, args: Sequence[str] = (), kwargs: Sequence[str] = ()) -> Any:
    """The ``nn.Module`` a target names: ``module:callable`` called with the arguments, or
    the module saved in a file (``torch.save(model)``; loading it runs its pickled code,
    which is why only a command the user types may name one)."""
    import importlib

    import torch

    pos = [parse_value(a, "--arg") for a in args]
    kw = dict(parse_kwarg(k) for k in kwargs)
    path = Path(target)
    if path.is_file():
        if pos or kw:
            raise ImportTargetError(f"'{target}' is a saved module: --arg and --kwarg apply only to module:callable",
                                    option="--arg")
        try:
            module = torch.load(path, weights_only=False, map_location="cpu")  # noqa: S614 - the user's own file, named on the command line
        except Exception as e:  # noqa: BLE001 - whatever unpickling the file raised
            raise ImportTargetError(f"cannot load a module from '{target}': {type(e).__name__}: {e}",
                                    fix="save the whole module with torch.save(model, path), or name its "
                                        "constructor as module:callable") from None
        return _module(module, target)
    if not _TARGET.fullmatch(target):
        raise ImportTargetError(f"'{target}' is neither a file nor module:callable",
                                fix="name a constructor, e.g. torchvision.models:resnet50, or a file saved with "
                                    "torch.save(model, path)")
    mod_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise ImportTargetError(f"cannot import module '{mod_name}': {e}",
                                fix="check the name, and that the package is installed in this environment") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            from .errors import close_matches

            raise ImportTargetError(f"module '{mod_name}' has no '{attr}'{close_matches(part, dir(obj))}",
                                    fix="name a class or function that returns an nn.Module")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ImportTargetError(f"'{target}' is not callable", fix="name a class or function that returns an nn.Module")
    shown = ", ".join([*map(repr, pos), *(f"{k}={v!r}" for k, v in kw.items())])
    try:
        module = obj(*pos, **kw)
    except Exception as e:  # noqa: BLE001 - whatever the user's constructor raised
        raise ImportTargetError(f"{target}({shown}) raised {type(e).__name__}: {e}",
                                fix="check the --arg and --kwarg values") from None
    return _module(module, f"{target}({shown})")


def _module(obj: Any, what: str) -> Any:
    from torch import nn

    if not isinstance(obj, nn.Module):
        raise ImportTargetError(f"{what} gives a {type(obj).__qualname__}, not a torch.nn.Module",
                                fix="name a constructor that returns a module")
    return obj


def target_spec(target: str, args: Sequence[str], kwargs: Sequence[str], shapes: Sequence[str],
                name: str | None = None) -> str:
    """The spec text of an import target, traced with the ``--input`` shapes (default 3x224x224)."""
    from .analyse import parse_shape
    from .importer import from_module

    module = load_target(target, args, kwargs)
    parsed = [parse_shape(s) for s in shapes]
    given: Any
    if not parsed:
        given = DEFAULT_INPUT
    elif any(n is not None for n, _ in parsed):
        given = {n or "": s for n, s in parsed}
    else:
        given = [s for _, s in parsed]
    return from_module(module, given, name=name)


def target_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--arg`` and ``--kwarg``: a target constructor's arguments (render, summary, import)."""
    fn = click.option("--kwarg", "target_kwargs", multiple=True, metavar="NAME=VALUE",
                      help="Keyword argument of an import target's constructor (repeatable).")(fn)
    return click.option("--arg", "target_args", multiple=True, metavar="VALUE",
                        help="Positional argument of an import target's constructor (repeatable).")(fn)


@click.argument("target")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the spec to this file (default: stdout).")
@click.option("--input", "input_shapes", multiple=True, metavar="[NAME=]CxHxW",
              help="Per-sample shape of the module's input (repeatable for several; default 3x224x224).")
@click.option("--name", default=None, help="The spec's name (default: the module's class name).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@target_options
def import_cmd(target: str, out: Path | None, input_shapes: tuple[str, ...], name: str | None, force: bool,
               target_args: tuple[str, ...], target_kwargs: tuple[str, ...], params: dict[str, Any], limits: Any,
               as_json: bool) -> None:
    """Write the spec of an existing torch module: TARGET is module:callable or a saved module.

    Traces the module with torch.fx; repeated structure becomes blocks, repeats and
    params, and module names stay the original ones, so the module's own state_dict loads
    into the compiled spec with strict=True. A module or function no op maps is named,
    with where it is; register an op for it (archspec.register_op) and import again.
    TARGET runs Python, as python -m does: only name code you trust.

    \b
    Examples:
      archspec import torchvision.models:resnet50 -o resnet50.yaml
      archspec import timm:create_model --arg resnet50d -o resnet50d.yaml
      archspec import torchvision.models:resnet18 --kwarg num_classes=10 --input 3x32x32
      archspec import model.pt -o model.yaml
    """
    from .io import check_target, write_text

    if out is not None:
        check_target(out, force=force)
    text = target_spec(target, target_args, target_kwargs, input_shapes, name)
    if out is None:
        click.echo(text, nl=False)
        return
    written = write_text(out, text, force=force, protect=[Path(target)] if Path(target).is_file() else [])
    if as_json:
        import json

        click.echo(json.dumps({"ok": True, "written": str(written)}, indent=2))
    else:
        click.echo(f"wrote {written}")


def register(group: click.Group, spec_command: Callable[..., Any]) -> None:
    """Add ``import`` to ``group``."""
    group.add_command(click.command("import")(spec_command(import_cmd)))


__all__ = ["DEFAULT_INPUT", "import_cmd", "is_target", "load_target", "register", "target_options", "target_spec"]
