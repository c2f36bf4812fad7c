"""Safe output files: written to a temporary file and renamed into place.

An output is never written through a symlink, never over an input spec, never over an
existing file unless ``force``, and never left half-written: the data goes to a
temporary file in the same folder, is flushed to disk, then renamed over the target
in one step. An error, Ctrl-C or SIGTERM before the rename leaves the target as it was
and no temporary file behind (SIGTERM then exits with 143).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputError

# A file name derived from a spec is at most this many UTF-8 bytes before its suffix, far
# below the 255 bytes every common file system allows.
MAX_STEM_BYTES = 120


def safe_stem(name: str, default: str = "model") -> str:
    """A file name (without suffix) made from ``name``, which a spec chose.

    Only letters, digits, ``_``, ``-`` and ``.`` stay; every other character (``/``,
    ``\\``, ``:``, control characters, spaces) becomes ``_``. No leading dot (so never
    ``..`` or a hidden file), at most :data:`MAX_STEM_BYTES` bytes. The result is one
    plain name in the output folder the user chose, never a path::

        >>> safe_stem("../../etc/passwd")
        'etc_passwd'
    """
    chars = [c if (c.isalnum() and unicodedata.category(c) != "Cs") or c in "_-." else "_"
             for c in unicodedata.normalize("NFC", name)]
    stem = re.sub(r"_{2,}", "_", "".join(chars)).strip("._-")
    while len(stem.encode("utf-8")) > MAX_STEM_BYTES:
        stem = stem[:-1]
    return stem.rstrip("._-") or default


def check_target(path: str | Path, *, force: bool = False, protect: Iterable[str | Path] = ()) -> Path:
    """Raise OutputError if ``path`` may not be written; writes nothing.

    Commands that write several files call this for every one of them first, so a
    refusal leaves the output folder exactly as it was.
    """
    target = Path(path)
    if target.is_symlink():
        raise OutputError(f"refusing to write '{target}': it is a symlink", fix="remove the link or pick another path")
    for p in protect:
        if Path(p).exists() and target.exists() and os.path.samefile(target, p):
            raise OutputError(f"refusing to write '{target}': it is an input file", fix="pick another output path")
    if target.exists() and not target.is_file():
        raise OutputError(f"refusing to write '{target}': it is not a regular file")
    if target.exists() and not force:
        raise OutputError(f"'{target}' exists", fix="pass --force to overwrite it")
    parent = target.parent
    for anc in [parent, *parent.parents]:
        if anc.is_symlink():
            raise OutputError(f"refusing to write '{target}': '{anc}' is a symlink")
    return target


class Terminated(SystemExit):
    """SIGTERM arrived while a file was being written: exit 143 once it is cleaned up."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While writing, SIGTERM (what ``timeout``, CI and schedulers send) raises, so the
    temporary file is removed as on Ctrl-C instead of being left behind by a hard kill."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_bytes(path: str | Path, data: bytes, *, force: bool = False, protect: Iterable[str | Path] = ()) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with _sigterm_unwinds():
        return _write_bytes(path, data, force=force, protect=protect)


def _write_bytes(path: str | Path, data: bytes, *, force: bool, protect: Iterable[str | Path]) -> Path:
    target = check_target(path, force=force, protect=protect)
    parent = target.parent
    tmp: str | None = None
    try:
        try:
            parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
        except OSError as e:
            raise OutputError(f"cannot write '{target}': {e.strerror or e}",
                              fix="pick an output folder that can be created and written") from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; an output gets the usual permissions (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
        tmp = None
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a vanished folder: the target is as it was
            raise OutputError(f"cannot write '{target}': {e.strerror or e}") from None
        raise
    return target


def write_text(path: str | Path, text: str, *, force: bool = False, protect: Iterable[str | Path] = ()) -> Path:
    # A lone surrogate from a spec (YAML "\\ud800") is written as its escape, not refused by the codec.
    return write_bytes(path, text.encode("utf-8", "backslashreplace"), force=force, protect=protect)


# -- what archspec wrote into a folder ----------------------------------------------------
# `build` keeps a list of the files it wrote, with their SHA-256, in the output folder, so
# that a rebuild may replace those files (and only those, unchanged since) without --force.

MANIFEST = ".archspec-written.json"


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest(folder: Path) -> dict[str, str]:
    import json

    p = folder / MANIFEST
    try:
        if p.is_symlink() or not p.is_file() or p.stat().st_size > 1 << 20:
            return {}
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(files, dict) else {}


def written_before(path: str | Path) -> bool:
    """True if archspec wrote ``path`` (a regular file) and nobody changed it since."""
    p = Path(path)
    try:
        if p.is_symlink() or not p.is_file():
            return False
        recorded = _manifest(p.parent).get(p.name)
        return recorded is not None and recorded == _sha256(p)
    except OSError:
        return False


def record_written(paths: Iterable[Path]) -> None:
    """Add ``paths`` (just written, all in one folder) to that folder's list."""
    import json

    paths = list(paths)
    if not paths:
        return
    folder = paths[0].parent
    files = _manifest(folder)
    files.update({p.name: _sha256(p) for p in paths})
    write_text(folder / MANIFEST, json.dumps({"written_by": "archspec build", "files": files}, indent=2) + "\n",
               force=True)
