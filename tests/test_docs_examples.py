"""Every runnable example in README.md and docs/ is run, against files the repository ships.

- ``console`` blocks: each ``$ archspec ...`` line runs (in-process, through the CLI); the
  lines printed under it in the block must appear in the real output, in order. The
  exit status is 0, or 2 where the line's comment says "exit 2".
- ``sh`` blocks: each ``archspec ...`` line runs and exits 0.
- ``python`` blocks run top to bottom in one namespace per page (``>>>`` blocks are
  doctests, their output compared).
- ``yaml`` blocks that are whole specs (``archspec: 1`` and ``nodes:``) pass ``check``.

Everything runs in a scratch folder holding copies of ``specs/`` and ``docs/examples/``,
so the examples' relative paths resolve. A block preceded by ``<!-- not run: WHY -->``
is skipped, with its reason in the page.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from archspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    text: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    out: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    k = 0
    while k < len(lines):
        m = FENCE.match(lines[k])
        if not m:
            k += 1
            continue
        start, lang, body = k, m.group(1), []
        k += 1
        while k < len(lines) and not lines[k].startswith("```"):
            body.append(lines[k])
            k += 1
        k += 1
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = re.match(r"<!-- not run: (.+) -->", prev)
        out.append(Block(page, start + 1, lang, "\n".join(body) + "\n", skip.group(1) if skip else None))
    return out


ALL = [b for p in PAGES for b in blocks(p)]
RUNNABLE = [b for b in ALL if b.lang in ("console", "sh", "python")
            or (b.lang == "yaml" and re.search(r"^archspec: 1$", b.text, re.M) and re.search(r"^nodes:", b.text, re.M))]


@pytest.fixture()
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def _run(command: str) -> tuple[int, str]:
    """One shell-like line: ``archspec ARGS [> FILE]``; returns exit code and output."""
    words = shlex.split(command, comments=True)
    assert words[0] == "archspec", f"not an archspec command: {command}"
    redirect = None
    if ">" in words:
        at = words.index(">")
        words, redirect = words[:at], words[at + 1]
    res = CliRunner().invoke(main, words[1:], terminal_width=200)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    if redirect is not None:
        Path(redirect).write_text(res.stdout)
    return res.exit_code, res.output


def _appears_in_order(expected: list[str], actual: str) -> bool:
    got = [line.rstrip() for line in actual.splitlines()]
    pos = 0
    for want in expected:
        try:
            pos = got.index(want.rstrip(), pos) + 1
        except ValueError:
            return False
    return True


def _console(block: Block) -> None:
    commands: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands and line.strip():
            commands[-1][1].append(line)
    assert commands, f"{block.id}: a console block without a command"
    for command, expected in commands:
        code, out = _run(command)
        want = 2 if "exit 2" in command else 0
        assert code == want, f"{block.id}: `{command}` exited {code}\n{out}"
        assert _appears_in_order(expected, out), f"{block.id}: `{command}` printed\n{out}\nnot\n" + "\n".join(expected)


def _sh(block: Block) -> None:
    for line in block.text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            code, out = _run(line)
            assert code == 0, f"{block.id}: `{line}` exited {code}\n{out}"


def _python(block: Block, namespace: dict[str, object]) -> None:
    if block.text.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(block.text, namespace, block.id, str(block.page), block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test, clear_globs=False)
        assert runner.failures == 0, f"{block.id}: the doctest failed (see the output above)"
    else:
        exec(compile(block.text, block.id, "exec"), namespace)  # noqa: S102 - the documentation's own example


@pytest.mark.parametrize("page", sorted({b.page for b in RUNNABLE if b.skip is None}),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_of_the_page_run(page: Path, scratch: Path) -> None:
    namespace: dict[str, object] = {}
    for block in (b for b in RUNNABLE if b.page == page and b.skip is None):
        if block.lang == "console":
            _console(block)
        elif block.lang == "sh":
            _sh(block)
        elif block.lang == "python":
            _python(block, namespace)
        else:
            spec = scratch / "example.yaml"
            spec.write_text(block.text)
            code, out = _run(f"archspec check {spec}")
            assert code == 0, f"{block.id}: the spec does not check\n{out}"


def test_every_skipped_block_says_why() -> None:
    skipped = [b for b in RUNNABLE if b.skip is not None]
    assert all(len(b.skip or "") > 10 for b in skipped)
    # Installing, training on data the machines do not have, several machines: each named.
    assert len(skipped) <= 20, [b.id for b in skipped]


def test_the_readme_error_is_the_real_one(scratch: Path) -> None:
    text = (ROOT / "README.md").read_text()
    shown = text.split("$ archspec check docs/examples/typo.yaml     # exit 2\n", 1)[1].split("```", 1)[0]
    code, out = _run("archspec check docs/examples/typo.yaml")
    assert code == 2 and out == shown
    assert os.path.exists("docs/examples/typo.yaml") and textwrap.dedent(shown).startswith("UnknownOpError")
