"""YAML 1.2 line breaks (only CR and LF) and an alias used as a key."""

from __future__ import annotations

import pytest

from archspec import check
from archspec.errors import SpecSyntaxError, SpecValidationError
from archspec.loader import load_text


@pytest.mark.parametrize("brk", ["\x85", "\u2028", "\u2029"])
def test_yaml11_line_breaks_are_ordinary_characters(brk: str) -> None:
    # YAML 1.1 ended the comment at the character and made the rest content.
    doc = load_text(f"a: 1  # note{brk}b: 2\nc: \"x{brk}y\"\nd: p{brk}q\ne: 3\n")
    assert doc.data == {"a": 1, "c": f"x{brk}y", "d": f"p{brk}q", "e": 3}
    loc = doc.loc(("e",))
    assert loc is not None and (loc.line, loc.col) == (4, 4)  # the line an editor shows


def test_line_numbers_after_a_separator_match_the_editor() -> None:
    text = ("archspec: 1\nname: t  # \u2028 \u2029 \x85\ninputs: {x: [3, 8, 8]}\nnodes:\n"
            "  c: {op: conv, in: x, out: 4, k: 3, bogus: 1}\noutputs: [c]\n")
    with pytest.raises(SpecValidationError) as e:
        check(text)
    assert e.value.loc is not None and e.value.loc.line == 5
    assert "    5 |   c: {op: conv" in e.value.render()


def test_escaped_separators_in_double_quotes_still_mean_themselves() -> None:
    assert load_text('a: "\\N\\L\\P"\n').data == {"a": "\x85\u2028\u2029"}


def test_private_use_characters_in_the_text_survive_alongside_separators() -> None:
    text = "".join(chr(c) for c in range(0xE000, 0xE004))
    assert load_text(f"a: \"{text}\u2028\"\n").data == {"a": text + "\u2028"}


def test_an_alias_used_as_a_key_is_reported_at_the_alias() -> None:
    with pytest.raises(SpecSyntaxError, match="mapping keys must be plain strings") as e:
        load_text("a: &x {k: 1}\nb:\n  c: 1\n  *x : 2\n")
    assert e.value.loc is not None and (e.value.loc.line, e.value.loc.col) == (4, 3)
    with pytest.raises(SpecSyntaxError, match="duplicate key 'k'") as e:
        load_text("a: &x k\nb:\n  k: 1\n  *x : 2\n")
    assert e.value.loc is not None and (e.value.loc.line, e.value.loc.col) == (4, 3)
