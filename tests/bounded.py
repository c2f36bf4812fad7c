"""Run a piece of a test in a forked child under CPU-time and address-space limits.

A hostile input that regresses to slow or huge then fails the test in seconds instead
of hanging the suite or swapping the machine. The child returns what ``fn`` returns
(pickled) or the exception it raised, re-raised here; a child killed by a limit is an
``AssertionError`` that says which.
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import time
from collections.abc import Callable
from typing import Any

CPU_SECONDS = 8
MEMORY_BYTES = 3 << 30


class Exceeded(AssertionError):
    """The child ran past its CPU-time, wall-time or memory limit."""


def _mapped() -> int:
    """Bytes of address space this process maps now."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def bounded(fn: Callable[[], Any], cpu: int = CPU_SECONDS, memory: int = MEMORY_BYTES, wall: float = 60) -> Any:
    """``fn()`` in a child process limited to ``cpu`` seconds and ``memory`` more bytes."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(r)
        code = 0
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
            # On top of what the process already maps (torch alone maps gigabytes of
            # address space once imported by an earlier test).
            limit = _mapped() + memory
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                payload = pickle.dumps(("ok", fn()))
            except MemoryError:
                payload = pickle.dumps(("memory", None))
            except BaseException as e:  # noqa: BLE001 - carried to the parent as it is
                try:
                    payload = pickle.dumps(("raised", e))
                except Exception:  # noqa: BLE001 - an exception that does not pickle
                    payload = pickle.dumps(("raised", RuntimeError(f"{type(e).__name__}: {e}")))
            with os.fdopen(w, "wb") as f:
                f.write(payload)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + wall
    with os.fdopen(r, "rb") as f:
        os.set_blocking(f.fileno(), False)
        while True:
            try:
                chunk = f.read()
            except BlockingIOError:
                chunk = None
            if chunk:
                chunks.append(chunk)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rest = f.read()
                if rest:
                    chunks.append(rest)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise Exceeded(f"ran past {wall} s of wall time")
            time.sleep(0.01)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise Exceeded(f"killed by signal {sig}" + (f" (past {cpu} s of CPU?)" if sig in (signal.SIGXCPU, signal.SIGKILL) else ""))
    if not chunks:
        raise Exceeded("the child returned nothing (out of memory?)")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "memory":
        raise Exceeded(f"ran out of its {memory >> 20} MiB of memory")
    if kind == "raised":
        raise value
    return value
