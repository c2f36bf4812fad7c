"""Nothing a spec says reaches a terminal raw, and no spec text becomes a Mermaid directive."""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT
from hypothesis import given
from hypothesis import strategies as st

from archspec.api import graph_of
from archspec.errors import terminal_safe
from archspec.render import mermaid

R: Any = importlib.import_module("archspec.render")

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# YAML double-quoted escapes: ESC ] 0 ; title BEL (window title), OSC 52 (clipboard), CSI colour, CR.
HOSTILE = r"\e]0;pwned\a\e]52;c;ZWNobw==\a\e[31mred\r\u202e\x85"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archspec.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, errors="surrogateescape",
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("where", ["op", "name", "param"])
def test_control_characters_in_a_spec_are_escaped_on_the_terminal(tmp_path: Path, where: str) -> None:
    op = f'"conv{HOSTILE}"' if where == "op" else "conv"
    name = f'"t{HOSTILE}"' if where == "name" else "t"
    extra = f'params: {{w: "{HOSTILE}"}}\n' if where == "param" else ""
    out = "$w" if where == "param" else "4"
    (tmp_path / "net.yaml").write_text(f"archspec: 1\nname: {name}\n{extra}inputs: {{x: [3, 8, 8]}}\n"
                                       f"nodes:\n  c: {{op: {op}, in: x, out: {out}, k: 3}}\noutputs: [c]\n")
    for cmd in (["check", "net.yaml"], ["summary", "net.yaml"], ["render", "net.yaml", "--format", "mermaid",
                                                                 "-o", "-"]):
        r = _cli(*cmd, cwd=tmp_path)
        both = r.stdout + r.stderr
        assert not RAW.search(both), (cmd, both)
        assert r.returncode in (0, 2), both
        if where != "name":
            assert r.returncode == 2 and r"\x1b]0;pwned\x07" in r.stderr


def test_a_mermaid_directive_in_a_name_does_not_reach_mermaid(tmp_path: Path) -> None:
    text = ('archspec: 1\nname: "t %%{init: {\\"theme\\": \\"dark\\"}}%%"\ninputs: {x: [3, 8, 8]}\n'
            "nodes:\n  c: {op: conv, in: x, out: 4, k: 3}\noutputs: [c]\n")
    mmd = R.to_mermaid(graph_of(text))
    assert "%%{" not in mmd and "}%%" not in mmd
    assert all(not line.startswith("%%") or line.count("%") == 2 for line in mmd.splitlines())
    assert mermaid._m("50%%{init}%%") == "50#37;#37;{init}#37;#37;"


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2100) | st.sampled_from(
    ["\u2028", "\u2029", "\u202e", "\u2066", "\ud800", "\udfff", "\x1b", "\x9b"])))
def test_terminal_safe_leaves_nothing_a_terminal_acts_on(s: str) -> None:
    out = terminal_safe(s)
    assert not RAW.search(out)
    assert len(out) >= len(s) and len(out) == len(s) + sum(3 if ord(c) < 0x100 else 5 for c in RAW.findall(s))
    if not RAW.search(s):
        assert out == s  # ordinary text is untouched


def test_on_a_terminal_colour_and_cursor_sequences_pass_but_osc_does_not() -> None:
    import io

    from archspec.errors import _SafeStream

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        _SafeStream(stream, allow_csi=True).write("\x1b[1mname\x1b[0m\r\x1b]0;pwned\x07\x1b[2K")
    # rich's tables and progress bars keep their colours and redraws on a terminal ...
    assert tty.getvalue() == "\x1b[1mname\x1b[0m\r\\x1b]0;pwned\\x07\x1b[2K"
    # ... and nothing passes into a pipe or a file, nor into stderr on a terminal.
    assert pipe.getvalue() == "\\x1b[1mname\\x1b[0m\\x0d\\x1b]0;pwned\\x07\\x1b[2K"
    err = Tty()
    _SafeStream(err).write("\x1b[1m")
    assert err.getvalue() == "\\x1b[1m"


SGR = r"\e[38;5;196m"  # a colour from a spec, as YAML writes it: rich never draws this one here


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("text", "cmd"), [
    ("good", ["check", "net.yaml"]),
    ("good", ["summary", "net.yaml"]),
    ("good", ["summary", "net.yaml", "--vary", "w=4,8"]),
    ("good", ["render", "net.yaml", "--format", "mermaid", "-o", "-"]),
    ("good", ["render", "net.yaml", "--format", "dot", "-o", "-"]),
    ("good", ["build", "net.yaml", "-o", "out"]),
    ("bad_node", ["check", "net.yaml"]),
    ("bad_node", ["render", "net.yaml", "--format", "dot", "-o", "-"]),
    ("bad_shape", ["check", "net.yaml"]),
    ("bad_shape", ["render", "net.yaml", "--format", "mermaid", "-o", "-"]),
])
def test_csi_from_spec_text_never_reaches_a_terminal_raw(text: str, cmd: list[str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal rich's own colour and cursor sequences pass, so the stream cannot
    escape every CSI: spec text (names, docs, messages) is escaped where it is printed."""
    from archspec.cli import main

    node = f'"c{SGR}X"' if text == "bad_node" else "c"
    k = "99, padding: 0" if text == "bad_shape" else "3"
    (tmp_path / "net.yaml").write_text(
        f'archspec: 1\nname: "t{SGR}RED"\ndoc: "d{SGR}GREEN"\nparams: {{w: 4}}\ninputs: {{x: [3, 8, 8]}}\n'
        f"nodes:\n  {node}: {{op: conv, in: x, out: $w, k: {k}}}\noutputs: [{node}]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out, err = _Tty(), _Tty()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    with pytest.raises(SystemExit) as e:
        main.main(args=cmd, prog_name="archspec")
    shown = out.getvalue() + err.getvalue()
    assert e.value.code == (0 if text == "good" else 2), shown
    assert "\x1b[38;5;196m" not in shown  # never raw ...
    if (text, cmd[0]) != ("bad_shape", "check"):  # that message names no spec text
        assert "\\x1b[38;5;196m" in shown  # ... but shown, as an escape
    if cmd[0] == "summary" and "--vary" not in cmd:
        assert "\x1b[" in out.getvalue()  # rich's own colours still reach the terminal
