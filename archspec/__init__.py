"""archspec: neural-network architectures as YAML graphs, checked statically, compiled to torch.fx.

>>> import archspec
>>> archspec.check("specs/resnet18_cifar.yaml").outputs
{'fc': (10,)}

Importing archspec does not import torch; only :func:`compile` and :func:`train` do.
"""

from types import ModuleType
from typing import Any

from . import render as _render_module
from .analyse import Summary, summary
from .api import CheckResult, analyse, check, compile, graph_of, load
from .api import render as _api_render
from .errors import (
    ArchSpecError,
    ExpressionError,
    GraphError,
    ImportTargetError,
    IncludeError,
    LimitError,
    Loc,
    OutputError,
    ShapeError,
    SpecFileError,
    SpecSyntaxError,
    SpecValidationError,
    UnknownOpError,
    UnsupportedModuleError,
    WeightsError,
)
from .experiments import filters, gradflow, plot_runs
from .ir import Graph, Node, lint
from .limits import Limits
from .ops import Op, OpAttrs, Window, register_op
from .train import train  # binds the function over the subpackage of that name


def from_module(module: Any, input_shape: Any, *, name: str | None = None) -> str:
    """The spec text of a torch ``nn.Module`` (imports torch): see :func:`archspec.importer.from_module`.

    ``input_shape`` is the per-sample input shape, e.g. ``(3, 224, 224)``; module names are
    the original ones, so the module's ``state_dict`` loads into ``compile(text)`` strictly."""
    from .importer import from_module as _from_module

    return _from_module(module, input_shape, name=name)


class _RenderModule(ModuleType):
    """``archspec.render`` is the module of the drawing (``import archspec.render``,
    ``from archspec.render import to_dot``) and, called, draws any source:
    ``archspec.render("specs/unet.yaml", "unet.svg")`` is :func:`archspec.api.render`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _api_render(*args, **kwargs)


_render_module.__class__ = _RenderModule
render = _render_module

__version__ = "0.1.0"

__all__ = [
    "ArchSpecError", "CheckResult", "ExpressionError", "Graph", "GraphError", "ImportTargetError", "IncludeError",
    "LimitError", "Limits", "Loc", "Node", "Op", "OpAttrs", "OutputError", "ShapeError", "SpecFileError",
    "SpecSyntaxError", "SpecValidationError", "Summary", "UnknownOpError", "UnsupportedModuleError", "WeightsError",
    "Window", "analyse", "check", "compile", "filters", "from_module", "gradflow", "graph_of", "lint", "load",
    "plot_runs", "register_op", "render", "summary", "train",
]
