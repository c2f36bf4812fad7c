"""Name rules: which names a spec may give inputs, nodes, blocks and module paths.

torch.fx writes these names into the Python it generates and runs, and ``nn.Module``
attributes live beside submodules, so every rule here is about what that code and that
module can hold. The expand pass applies them to a spec; :func:`check_names` applies
them again to any Graph before it is emitted.
"""

from __future__ import annotations

import builtins
import keyword
import re

from .errors import GraphError
from .ir import Graph, lint

IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
IDENT = re.compile(IDENT_PATTERN)
INDEXED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(-?[0-9]+)\]$")  # enc[2]: instance 2 of repeat enc
RESERVED = frozenset({"input", "prev"})
# The generated forward is `def forward(self, <inputs>)`: a node named `self` would rebind
# it, and an input (an argument, written verbatim) named like a global of fx's generated
# code or a builtin would shadow that global.
FX_GLOBALS = frozenset({"self", "torch", "operator", "math", "inf", "nan", "device", "fx_pytree", "pytree",
                        "NoneType", "builtins", "typing"}) | frozenset(dir(builtins))

# Attributes of torch.nn.Module / fx.GraphModule that a submodule name would shadow;
# kept here so `check` can refuse them without importing torch (a test keeps it in sync).
MODULE_ATTRS = frozenset("""
T_destination add_module add_submodule apply bfloat16 buffers call_super_init children code compile cpu cuda
delete_all_unused_submodules delete_submodule double dump_patches eval extra_repr float forward
get_buffer get_extra_state get_parameter get_submodule graph half ipu load_state_dict meta
modules mtia named_buffers named_children named_modules named_parameters parameters
print_readable recompile register_backward_hook register_buffer register_forward_hook
register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
set_extra_state set_submodule share_memory smart_apply state_dict to to_empty to_folder train training
type xpu zero_grad
""".split())


def is_identifier(name: str) -> bool:
    """Letters, digits and '_', not starting with a digit, and not a Python keyword."""
    return bool(IDENT.match(name)) and not keyword.iskeyword(name)


def name_problem(name: str, *, is_input: bool = False) -> tuple[str, str | None] | None:
    """Why a spec may not name an input (``is_input``) or a node ``name``, and the fix;
    None when it may."""
    if not is_identifier(name):
        return f"name '{name}' is not an identifier (letters, digits, '_'; not a Python keyword)", None
    if name in RESERVED:
        return (f"name '{name}' is reserved",
                "'input' names a block's input and 'prev' the previous repeat instance; rename the node")
    if name == "self" or (is_input and name in FX_GLOBALS):
        return f"name '{name}' would shadow '{name}' in the generated forward()", f"rename it, e.g. '{name}_'"
    if name in MODULE_ATTRS or name.startswith("_"):
        return (f"name '{name}' would shadow an attribute of torch's nn.Module",
                f"rename it, e.g. '{name.strip('_')}_'")
    return None


def check_names(graph: Graph) -> None:
    """torch.fx writes input names, node names and module paths into the code it generates
    and runs: a Graph built by hand (``archspec.compile(graph)``) skips the checks of the
    expand pass, so its names are checked again here, before anything is emitted."""
    ident = IDENT
    lint(graph)
    for name in graph.inputs:
        if not ident.match(name) or keyword.iskeyword(name) or name in FX_GLOBALS:
            raise GraphError(f"input name {name!r} cannot be an argument of the generated forward()",
                             loc=graph.input_locs.get(name), source=graph.source,
                             fix="name inputs with plain identifiers, e.g. 'x' or 'image'")
    good: set[str] = set()  # parts already seen to be fine: blocks repeat them many times
    for n in graph.nodes:
        for what, dotted in (("node name", n.name), ("module path", n.module)):
            if dotted is None:
                continue
            parts = [p for p in dotted.split(".") if p not in good]
            if any(not (p.isdigit() or (ident.match(p) and not keyword.iskeyword(p))) for p in parts) \
                    or dotted == "self":
                raise GraphError(f"{what} {dotted!r} is not a dotted identifier", loc=n.loc, path=n.path,
                                 source=graph.source, fix="names are letters, digits and '_'")
            good.update(parts)
