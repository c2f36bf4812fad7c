"""The expression evaluator: a whitelist over the AST, never eval."""

from __future__ import annotations

import pytest

from archspec.errors import ExpressionError
from archspec.expr import evaluate, evaluate_value

ENV = {"width": 64, "i": 1, "n": 4, "depth": 4, "name": "enc", "table": {18: [2, 2, 2, 2], 50: [3, 4, 6, 3]}}


@pytest.mark.parametrize("src, value", [
    ("$width", 64), ("${2*width}", 128), ("${2 if i == 0 else 1}", 1), ("${width // 3}", 21),
    ("${width % 10}", 4), ("${2 ** depth}", 16), ("${min(width, 32)}", 32), ("${max(1, 2, 3)}", 3),
    ("${not (i > 0 and n < 3)}", True), ("${i > 0 or false}", True), ("${table[50][i]}", 4),
    ("stage${i + 1}", "stage2"), ("${name}[${depth - 1 - i}]", "enc[2]"), ("$$5", "$5"),
    ("${width / 128}", 0.5), ("${-width}", -64), ("${[1, 2][0]}", 1), ("${'a' + name}", "aenc"),
    ("${len(table[18])}", 4), ("${ceil(width / 3)}", 22), ("${1 < i + 1 <= 2}", True),
    ("plain", "plain"), (["$width", {"k": "${i}"}], [64, {"k": 1}]),
])
def test_values(src, value):
    assert evaluate_value(src, ENV) == value


@pytest.mark.parametrize("src, message", [
    ("__import__('os')", r"call '__import__\('os'\)' is not allowed"),
    ("width.bit_length()", r"call 'width.bit_length\(\)' is not allowed"),
    ("width.real", r"'width.real' is not allowed in an expression"),
    ("(lambda: 1)()", r"call '\(lambda: 1\)\(\)' is not allowed"),
    ("[x for x in [1]]", r"'\[x for x in \[1\]\]' is not allowed"),
    ("9 ** 9 ** 9", r"exponent in '9 \*\* 9 \*\* 9' is too large"),
    ("2 ** 64", r"integer result .* is larger than 2\*\*63"),
    ("'a' * 100000", r"builds a sequence longer than 4096"),
    ("1 / 0", r"cannot evaluate '1 / 0': ZeroDivisionError"),
    ("widht", r"unknown name 'widht' \(did you mean 'width'\?\)"),
    ("table[99]", r"99 is not a key of table \(keys: 18, 50\)"),
    ("table[width]", r"width = 64 is not a key of table \(keys: 18, 50\)"),
    ("table[18][7]", r"7 is out of range for table\[18\], a list of 4"),
    ("[1, 2][0:1]", r"slices are not allowed"),
    ("{**table}", r"'\*\*' is not allowed in an expression"),
    ("min(width, key=1)", r"call 'min\(width, key=1\)' is not allowed"),
    ("", r"empty expression"),
    ("1 +", r"bad expression '1 \+'"),
    ("b'x'", r"constant b'x' is not allowed"),
    ("x" * 1001, r"expression is longer than 1000 characters"),
])
def test_refused(src, message):
    with pytest.raises(ExpressionError, match=message):
        evaluate(src, ENV)


@pytest.mark.parametrize("src, message", [
    ("${2 * width", r"unclosed '\$\{' in '\$\{2 \* width'"),
    ("cost: 5$", r"stray '\$' in 'cost: 5\$'"),
    ("$nope", r"unknown name 'nope'"),
])
def test_refused_strings(src, message):
    with pytest.raises(ExpressionError, match=message):
        evaluate_value(src, ENV)
