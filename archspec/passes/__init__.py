"""Passes over the IR, each a function ``Graph -> Graph``: expand, infer, project, check."""

from .check import check
from .expand import expand
from .infer import infer
from .project import project

__all__ = ["check", "expand", "infer", "project"]
