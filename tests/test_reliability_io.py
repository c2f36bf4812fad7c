"""SIGTERM during a write leaves the old file and no temporary file, as Ctrl-C does."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT

# The child writes through archspec.io, pausing inside the write (after the temporary
# file has its data) until it is killed.
CHILD = textwrap.dedent("""
    import os, sys, time
    import archspec.io as io
    real = os.fsync
    def slow(fd):
        real(fd)
        print("writing", flush=True)
        time.sleep(30)
    os.fsync = slow
    io.write_text(sys.argv[1], "new", force=True)
""")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, None)])
def test_a_signal_mid_write_leaves_nothing_half_written(tmp_path: Path, sig: int, code: int | None) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT)
    assert p.stdout is not None
    assert p.stdout.readline() == "writing\n"
    assert len(list(tmp_path.iterdir())) == 2  # the target and its temporary file
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    if code is not None:
        assert p.returncode == code, err
    else:
        assert p.returncode != 0 and "KeyboardInterrupt" in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.json"]
    assert target.read_text() == "old"


def test_sigterm_handler_is_restored_after_a_write(tmp_path: Path) -> None:
    from archspec.io import write_text

    before = signal.getsignal(signal.SIGTERM)
    write_text(tmp_path / "a.txt", "x")
    assert signal.getsignal(signal.SIGTERM) is before
    assert (tmp_path / "a.txt").read_text() == "x"
