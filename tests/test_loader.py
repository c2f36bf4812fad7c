"""The hardened loader: marks for every value, YAML 1.2 scalars, hostile YAML refused."""

from __future__ import annotations

import pytest

from archspec.errors import LimitError, Loc, SpecFileError, SpecSyntaxError
from archspec.loader import Limits, load_file, load_text


def test_values_keep_line_and_column():
    doc = load_text("a: 1\nb:\n  - x\n  - {c: 2}\n", "f.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"c": 2}]}
    assert doc.marks[("b", 1, "c")] == Loc("f.yaml", 4, 9)
    assert doc.key_marks[("b",)] == Loc("f.yaml", 2, 1)
    assert doc.loc(("b", 1, "missing")) == Loc("f.yaml", 4, 5)


@pytest.mark.parametrize("text, value", [
    ("no", "no"), ("on", "on"), ("yes", "yes"), ("true", True), ("False", False), ("~", None),
    ("1e3", 1000.0), ("0x1f", 31), ("0o17", 15), ("2001-12-14", "2001-12-14"), ("1_000", "1_000"),
    ("'42'", "42"), ("!!str 42", "42"), ("!!float 1", 1.0), (".inf", float("inf")),
])
def test_yaml_12_core_scalars(text, value):
    assert load_text(f"v: {text}\n").data["v"] == value


@pytest.mark.parametrize("text, cls, message", [
    ("a: 1\na: 2\n", SpecSyntaxError, r"2:1: duplicate key 'a' \(first defined on line 1\)"),
    ("a: !!python/object/apply:os.system [echo hi]\n", SpecSyntaxError,
     r"1:4: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"),
    ("a: !custom 3\n", SpecSyntaxError, r"YAML tag '!custom' is not allowed"),
    ("base: &b {x: 1}\nc: {<<: *b}\n", SpecSyntaxError, r"2:5: YAML merge keys \('<<'\) are not allowed"),
    ("a: [1, 2\n", SpecSyntaxError, r"YAML syntax error: expected ',' or '\]'"),
    ("a: " + "9" * 50 + "\n", LimitError, r"integer of 50 digits is longer than the limit of 20"),
    ("a: " + "9" * 5000 + "\n", LimitError, r"string of 5000 characters is longer than the limit of 4096"),
    ("[" * 30000, LimitError, r"1:65: YAML nesting is deeper than 64 levels"),
    ("a: &a [*a]\n", LimitError, r"nesting is deeper than 64 levels \(a recursive alias\?\)"),
    ("", SpecSyntaxError, "the spec is empty"),
    ("a: \x00\n", SpecSyntaxError, "special characters are not allowed"),
    ("{1.5: 2}\n", SpecSyntaxError, r"mapping key '1.5' must be a string or an integer"),
    ("? [a]\n: 1\n", SpecSyntaxError, "mapping keys must be plain strings"),
    ("a: !!int x\n", SpecSyntaxError, r"!!int value 'x' is not an integer"),
])
def test_hostile_yaml_is_one_clear_error(text, cls, message):
    with pytest.raises(cls, match=message):
        load_text(text, "t.yaml")


def test_alias_bomb_is_bounded_before_it_is_walked():
    rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(LimitError, match=r"expands to more than 100000 YAML values"):
        load_text("\n".join(rows) + "\n")


def test_limits_can_be_raised(tmp_path):
    text = "a: " + "9" * 30 + "\n"
    assert load_text(text, limits=Limits(max_int_digits=40)).data["a"] == int("9" * 30)
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" * 100)
    with pytest.raises(LimitError, match=r"spec is 500 bytes, more than the limit of 100"):
        load_file(big, Limits(max_bytes=100))


def test_unreadable_files(tmp_path):
    with pytest.raises(SpecFileError, match="^file not found: '.*nope.yaml'$"):
        load_file(tmp_path / "nope.yaml")
    with pytest.raises(SpecFileError, match="^cannot read spec '.*': Is a directory$"):
        load_file(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(SpecSyntaxError, match="spec is not valid UTF-8") as e:
        load_file(bad)
    assert e.value.loc.line == 2


def _both_loaders(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """load_text through LibYAML's event parser and through the pure-Python parser: the
    Document (data and every mark) or the error message."""
    import archspec.loader as loader

    def run() -> object:
        try:
            d = load_text(text, "s.yaml")
        except (SpecSyntaxError, LimitError) as e:
            return type(e), str(e)
        return d.data, d.marks, d.key_marks

    fast = run()
    with monkeypatch.context() as m:
        m.setattr(loader, "_compose_fast", lambda text, max_depth: None)
        slow = run()
    return fast, slow


def test_libyaml_path_equals_the_pure_python_loader(monkeypatch: pytest.MonkeyPatch):
    from pathlib import Path

    import archspec.loader as loader

    root = Path(__file__).resolve().parent.parent
    files = sorted({*root.glob("specs/*.yaml"), *root.glob("archspec/**/*.yaml"), *root.glob("tests/**/*.yaml")})
    assert len(files) > 50
    texts = [f.read_bytes().decode("utf-8", "replace") for f in files]
    texts += ["a: 1\r\nb: [x, {y: é}]\r\n", "k: \u00e9\u00e9 # \u2028 é\nv: 'x\u2028y'\n", "- a\n- - b\n  - c\n",
              "a: &x [1, 2]\nb: *x\n*x : 3\n", "a: {b: c\n", "a:\tb\n", "\ufeffa: 1\n", "a: !!python/name:os.system 1\n",
              "[" * 200 + "]" * 200, "a: |\n  x\n   y\n", "? [a, b]\n: c\n", "a: b: c\n", "x: \x07\n", ""]
    fast_used = 0
    for text in texts:
        fast, slow = _both_loaders(text, monkeypatch)
        assert fast == slow, text[:200]
        fast_used += loader._compose_fast(text, 64) is not None
    assert fast_used > 50  # the fast path did run: a comparison of the slow path with itself proves nothing
