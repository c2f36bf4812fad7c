"""archspec: neural-network architectures as YAML graphs, checked statically, compiled to torch.fx.

>>> import archspec
>>> archspec.check("specs/resnet18_cifar.yaml").outputs
{'fc': (10,)}

Importing archspec does not import torch; only :func:`compile` and :func:`train` do.
"""

from .analyse import Summary, summary
from .api import CheckResult, analyse, check, compile, load
from .errors import (
    ArchSpecError,
    ExpressionError,
    GraphError,
    IncludeError,
    LimitError,
    Loc,
    OutputError,
    ShapeError,
    SpecFileError,
    SpecSyntaxError,
    SpecValidationError,
    UnknownOpError,
    WeightsError,
)
from .experiments import filters, gradflow, plot_runs
from .ir import Graph, Node, lint
from .loader import Limits
from .ops import Op, OpAttrs, Window, register_op
from .render import render
from .train import train  # binds the function over the subpackage of that name, as render does

__version__ = "0.1.0"

__all__ = [
    "ArchSpecError", "CheckResult", "ExpressionError", "Graph", "GraphError", "IncludeError", "LimitError",
    "Limits", "Loc", "Node", "Op", "OpAttrs", "OutputError", "ShapeError", "SpecFileError", "SpecSyntaxError",
    "SpecValidationError", "Summary", "UnknownOpError", "WeightsError", "Window", "analyse", "check", "compile",
    "filters", "gradflow", "lint", "load", "plot_runs", "register_op", "render", "summary", "train",
]
