"""Safe output files: written to a temporary file and renamed into place.

An output is never written through a symlink, never over an input spec, never over an
existing file unless ``force``, and never left half-written: the data goes to a
temporary file in the same folder, is flushed to disk, then renamed over the target
in one step. An error or Ctrl-C before the rename leaves the target as it was.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable
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


def write_bytes(path: str | Path, data: bytes, *, force: bool = False, protect: Iterable[str | Path] = ()) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    target = check_target(path, force=force, protect=protect)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise OutputError(f"cannot write '{target}': {e.strerror or e}",
                          fix="pick an output folder that can be created and written") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600; an output gets the usual permissions (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):  # a full disk, a vanished folder: the target is as it was
            raise OutputError(f"cannot write '{target}': {e.strerror or e}") from None
        raise
    return target


def write_text(path: str | Path, text: str, *, force: bool = False, protect: Iterable[str | Path] = ()) -> Path:
    return write_bytes(path, text.encode("utf-8"), force=force, protect=protect)


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
