"""The safe expression evaluator: ``$name`` and ``${...}`` in spec values.

Expressions are parsed with :mod:`ast` and evaluated by walking a whitelist of node
types — arithmetic, comparison, ``and``/``or``/``not``, ``a if c else b``, ``min``,
``max``, ``abs``, ``int``, ``round``, list/dict literals and indexing — over the names
in scope. Nothing is ever passed to ``eval``; attributes, calls of anything else,
lambdas and comprehensions are refused. Sizes are bounded so ``9**9**9`` cannot hang.

>>> evaluate_value("${2 * width}", {"width": 64})
128
>>> evaluate_value("$stride", {"stride": 2})
2
>>> evaluate_value("stage${i + 1}", {"i": 0})
'stage1'
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from .errors import ExpressionError, close_matches, short_repr

MAX_EXPR_CHARS = 1000
MAX_AST_NODES = 200
MAX_INT = 1 << 63
MAX_STR = 4096
MAX_LIST = 4096
# A value's size in cells, shared sublists counted as often as they appear (what str,
# == or % would walk): one per number, list, key, and per 16 characters of a string.
MAX_CELLS = 16384
MAX_ROUND_DIGITS = 64
# The work one spec's expressions may do together, in cells walked; ``expand`` opens
# the budget (see :func:`work_budget`), a lone ``evaluate`` gets one of its own.
MAX_WORK = 5_000_000

_FORMAT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_work: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("archspec_expr_work", default=None)


@contextlib.contextmanager
def work_budget(cells: int = MAX_WORK) -> Iterator[None]:
    """Share one budget of ``cells`` among every expression evaluated inside the block."""
    token = _work.set([cells])
    try:
        yield
    finally:
        _work.reset(token)

_WHOLE_NAME = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_PIECE = re.compile(r"\$\$|\$\{|\$([A-Za-z_][A-Za-z0-9_]*)")

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "int": int, "round": round, "len": len,
    "ceil": math.ceil, "floor": math.floor,
}


def has_expr(value: Any) -> bool:
    """True if ``value`` is a string with a ``$`` reference in it."""
    return isinstance(value, str) and "$" in value


def evaluate_value(value: Any, env: Mapping[str, Any]) -> Any:
    """Resolve ``$name``/``${...}`` in a spec value; lists and dicts recursively.

    A string that is exactly one reference keeps the value's type (``"$width"`` → 64);
    a string mixing text and references is interpolated to a string; ``$$`` is a ``$``.
    """
    if isinstance(value, list):
        return [evaluate_value(v, env) for v in value]
    if isinstance(value, dict):
        return {k: evaluate_value(v, env) for k, v in value.items()}
    if not isinstance(value, str) or "$" not in value:
        return value
    m = _WHOLE_NAME.match(value)
    if m:
        return _lookup(m.group(1), env)
    pieces = _split(value)
    if len(pieces) == 1 and not isinstance(pieces[0], str):
        return evaluate(pieces[0][0], env)
    out = []
    for p in pieces:
        out.append(p if isinstance(p, str) else _to_text(evaluate(p[0], env)))
    text = "".join(out)
    if len(text) > MAX_STR:
        raise ExpressionError(f"interpolated string is longer than {MAX_STR} characters")
    return text


def _to_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _split(value: str) -> list[str | tuple[str]]:
    """Literal text and ``(expr,)`` pieces of a string with references."""
    pieces: list[str | tuple[str]] = []
    pos = 0
    text = ""

    def literal(chunk: str) -> str:
        if "$" in chunk:
            raise ExpressionError(f"stray '$' in {short_repr(value)}",
                                  fix="write $name or ${expression}; write $$ for a literal dollar sign")
        return chunk

    while True:
        m = _PIECE.search(value, pos)
        if m is None:
            text += literal(value[pos:])
            break
        text += literal(value[pos:m.start()])
        tok = m.group(0)
        if tok == "$$":
            text += "$"
            pos = m.end()
            continue
        if text:
            pieces.append(text)
            text = ""
        if tok == "${":
            end = _closing_brace(value, m.end())
            pieces.append((value[m.end():end],))
            pos = end + 1
        else:
            pieces.append((m.group(1),))
            pos = m.end()
    if text:
        pieces.append(text)
    return pieces


def _closing_brace(s: str, start: int) -> int:
    depth = 1
    quote = ""
    for i in range(start, len(s)):
        c = s[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ExpressionError(f"unclosed '${{' in {short_repr(s)}", fix="close the expression with '}'")


def _lookup(name: str, env: Mapping[str, Any]) -> Any:
    if name in env:
        return env[name]
    raise ExpressionError(f"unknown name '{name}'{close_matches(name, env)}",
                          expected="one of: " + ", ".join(sorted(env)) if env else "a declared param",
                          fix="declare it under params:, or pass it with -p")


def evaluate(src: str, env: Mapping[str, Any]) -> Any:
    """Evaluate one expression (the text inside ``${...}``) over ``env``."""
    src = src.strip()
    if not src:
        raise ExpressionError("empty expression '${}'")
    if len(src) > MAX_EXPR_CHARS:
        raise ExpressionError(f"expression is longer than {MAX_EXPR_CHARS} characters")
    tree = _parse(src)
    try:
        return _Eval(env, src).visit(tree.body)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError(f"cannot evaluate '{src}': a value is nested too deeply") from None
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError) as e:
        raise ExpressionError(f"cannot evaluate '{src}': {type(e).__name__}: {_clip(str(e))}") from None


@lru_cache(maxsize=4096)
def _parse(src: str) -> ast.Expression:
    """The syntax tree of one expression, bounded in size; cached, since a repeated block
    evaluates the same few expressions once per instance (the evaluator never changes a tree)."""
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"bad expression '{src}': {e.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_AST_NODES:
        raise ExpressionError(f"expression has more than {MAX_AST_NODES} parts")
    return tree


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class _Eval:
    def __init__(self, env: Mapping[str, Any], src: str) -> None:
        self.env = env
        self.src = src
        self.budget = _work.get() or [MAX_WORK]
        self.sizes: dict[int, tuple[Any, int]] = {}  # id -> (value kept alive, cells)

    def charge(self, *values: Any) -> None:
        """Count the cells an operation walks against the spec's budget, before doing it."""
        cost = 1 + sum(self.cells(v) for v in values)
        self.budget[0] -= cost
        if self.budget[0] < 0:
            raise ExpressionError(f"expressions do more than {MAX_WORK} steps of work (in '{_clip(self.src, 60)}')",
                                  fix="compute large values once, in params:, or simplify the expressions")

    def cells(self, v: Any) -> int:
        """The size of ``v`` as str/==/% would walk it; shared parts are counted once per use."""
        if isinstance(v, str):
            return 1 + len(v) // 16
        if not isinstance(v, (list, dict, tuple)):
            return 1
        hit = self.sizes.get(id(v))
        if hit is not None and hit[0] is v:
            return hit[1]
        items = [x for kv in v.items() for x in kv] if isinstance(v, dict) else v
        total = 1
        for x in items:
            total += self.cells(x)
            if total > MAX_INT:
                break
        self.sizes[id(v)] = (v, total)
        return total

    def room(self, cells: int, what: str) -> None:
        if cells > MAX_CELLS:
            raise ExpressionError(f"'{what}' builds a value of more than {MAX_CELLS} cells",
                                  fix="build smaller lists; a list of lists counts every element")

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, "v_" + type(node).__name__, None)
        if method is None:
            raise ExpressionError(f"'{ast.unparse(node)}' is not allowed in an expression (in '{self.src}')",
                                  fix="expressions allow arithmetic, comparisons, and/or/not, "
                                      "'a if c else b', min/max/abs/int/round, lists and indexing")
        return _bounded(method(node))

    def v_Constant(self, n: ast.Constant) -> Any:
        if isinstance(n.value, (int, float, str, bool)) or n.value is None:
            return n.value
        raise ExpressionError(f"constant {n.value!r} is not allowed")

    def v_Name(self, n: ast.Name) -> Any:
        consts = {"true": True, "false": False, "null": None}
        if n.id in consts and n.id not in self.env:
            return consts[n.id]
        return _lookup(n.id, self.env)

    def v_BinOp(self, n: ast.BinOp) -> Any:
        op = _BINOPS.get(type(n.op))
        if op is None:
            raise ExpressionError(f"operator in '{ast.unparse(n)}' is not allowed")
        a, b = self.visit(n.left), self.visit(n.right)
        self.charge(a, b)
        if isinstance(n.op, ast.Add) and isinstance(a, (list, str)) and isinstance(b, (list, str)):
            self.room(self.cells(a) + self.cells(b), _clip(ast.unparse(n), 60))
        if isinstance(n.op, ast.Mod) and isinstance(a, str):
            for width, precision in _FORMAT_FIELD.findall(a):
                if any(x.isdigit() and (len(x) > 6 or int(x) > MAX_STR) for x in (width, precision)):
                    raise ExpressionError(f"a format width in '{_clip(ast.unparse(n), 60)}' is larger than {MAX_STR}")
        if isinstance(n.op, ast.Pow):
            if not isinstance(b, (int, float)) or isinstance(b, bool) or abs(b) > 64 or (isinstance(a, (int, float)) and abs(a) > MAX_INT):
                raise ExpressionError(f"exponent in '{ast.unparse(n)}' is too large (at most 64)")
        if isinstance(n.op, ast.Mult) and (isinstance(a, (str, list)) or isinstance(b, (str, list))):
            count = b if isinstance(a, (str, list)) else a
            seq = a if isinstance(a, (str, list)) else b
            if isinstance(count, int) and count * len(seq) > MAX_STR:
                raise ExpressionError(f"'{_clip(ast.unparse(n), 60)}' builds a sequence longer than {MAX_STR}")
            if isinstance(count, int):
                self.room(max(count, 0) * self.cells(seq), _clip(ast.unparse(n), 60))
        return op(a, b)

    def v_UnaryOp(self, n: ast.UnaryOp) -> Any:
        v = self.visit(n.operand)
        if isinstance(n.op, ast.USub):
            return -v
        if isinstance(n.op, ast.UAdd):
            return +v
        if isinstance(n.op, ast.Not):
            return not v
        raise ExpressionError(f"operator in '{ast.unparse(n)}' is not allowed")

    def v_BoolOp(self, n: ast.BoolOp) -> Any:
        if isinstance(n.op, ast.And):
            v: Any = True
            for e in n.values:
                v = self.visit(e)
                if not v:
                    return v
            return v
        v = False
        for e in n.values:
            v = self.visit(e)
            if v:
                return v
        return v

    def v_Compare(self, n: ast.Compare) -> Any:
        left = self.visit(n.left)
        for op, right_node in zip(n.ops, n.comparators, strict=True):
            right = self.visit(right_node)
            self.charge(left, right)
            fn = _CMPOPS.get(type(op))
            if fn is None:
                raise ExpressionError(f"comparison in '{ast.unparse(n)}' is not allowed")
            if not fn(left, right):
                return False
            left = right
        return True

    def v_IfExp(self, n: ast.IfExp) -> Any:
        return self.visit(n.body) if self.visit(n.test) else self.visit(n.orelse)

    def v_Call(self, n: ast.Call) -> Any:
        if not isinstance(n.func, ast.Name) or n.func.id not in _FUNCS or n.keywords:
            raise ExpressionError(f"call '{ast.unparse(n)}' is not allowed",
                                  fix="only " + ", ".join(sorted(_FUNCS)) + " can be called, with positional arguments")
        args = [self.visit(a) for a in n.args]
        self.charge(*args)
        if n.func.id == "round" and len(args) == 2 and isinstance(args[1], int) \
                and abs(args[1]) > MAX_ROUND_DIGITS:
            raise ExpressionError(f"round() to {short_repr(args[1])} digits: at most {MAX_ROUND_DIGITS}")
        return _FUNCS[n.func.id](*args)

    def v_List(self, n: ast.List) -> Any:
        out = [self.visit(e) for e in n.elts]
        self.room(self.cells(out), _clip(ast.unparse(n), 60))
        return out

    def v_Tuple(self, n: ast.Tuple) -> Any:
        return self.v_List(n)  # type: ignore[arg-type]

    def v_Dict(self, n: ast.Dict) -> Any:
        if any(k is None for k in n.keys):
            raise ExpressionError("'**' is not allowed in an expression")
        out = {self.visit(k): self.visit(v) for k, v in zip(n.keys, n.values, strict=True)}  # type: ignore[arg-type]  # a None key is ** unpacking, refused earlier
        self.room(self.cells(out), _clip(ast.unparse(n), 60))
        return out

    def v_Subscript(self, n: ast.Subscript) -> Any:
        if isinstance(n.slice, ast.Slice):
            raise ExpressionError(f"slices are not allowed in '{ast.unparse(n)}'")
        seq, key = self.visit(n.value), self.visit(n.slice)
        subject = ast.unparse(n.value)
        subject = subject if len(subject) <= 30 else "the table"
        what = short_repr(key) if isinstance(n.slice, ast.Constant) else \
            f"{_clip(ast.unparse(n.slice), 60)} = {short_repr(key)}"
        try:
            return seq[key]
        except KeyError:
            keys = ", ".join(short_repr(k, 40) for k in list(seq)[:20])
            raise ExpressionError(f"{what} is not a key of {subject} (keys: {keys})") from None
        except IndexError:
            raise ExpressionError(f"{what} is out of range for {subject}, a list of {len(seq)}") from None


def _bounded(v: Any) -> Any:
    if isinstance(v, complex):
        raise ExpressionError("the result is a complex number", fix="take powers of negative numbers with integer exponents")
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
        raise ExpressionError(f"integer result {str(v)[:20]}... is larger than 2**63")
    if isinstance(v, float) and math.isfinite(v) and abs(v) > 1e300:
        raise ExpressionError("float result is too large")
    if isinstance(v, (str, list)) and len(v) > MAX_STR:
        raise ExpressionError(f"result is longer than {MAX_STR}")
    return v
