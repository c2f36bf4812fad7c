"""The run folder: what a run writes, and what ``--resume`` reads back.

=====================  ==================================================================
``spec.yaml``          the spec's text, as trained
``run.json``           params, data source, task, normalisation, world size, status
``recipe.yaml``        the resolved settings (a valid ``--config``)
``metrics.csv``        one row per epoch
``curves.png``         the metrics, plotted
``last.safetensors``   the weights after the last epoch (or at the interruption)
``best.safetensors``   the weights of the best epoch (validation accuracy or Dice)
``checkpoint.pt``      weights, optimizer, scheduler, grad scaler, RNG, position: a resume point
``init_report.txt``    what ``--init-from`` loaded, skipped and left missing
=====================  ==================================================================

Every file is written to a temporary file and renamed into place, so an interruption
at any moment leaves each file whole: the old version or the new one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ..io import write_bytes, write_text
from .errors import RunError

FILES = ("spec.yaml", "run.json", "recipe.yaml", "metrics.csv", "curves.png", "last.safetensors",
         "best.safetensors", "checkpoint.pt", "init_report.txt")


def choose_out(out: Path | None, name: str, *, force: bool) -> Path:
    """The run folder: ``out``, refused if it holds a run and not ``force``; by default
    ``runs/<name>``, or ``runs/<name>-2``, ``-3``, ... when that one is taken."""
    if out is None:
        base = Path("runs") / name
        candidate, i = base, 1
        while _holds_files(candidate):
            i += 1
            candidate = base.with_name(f"{name}-{i}")
        return candidate
    if out.exists() and not out.is_dir():
        raise RunError(f"run folder '{out}' is a file", fix="pass --out a folder")
    if _holds_files(out) and not force:
        raise RunError(f"run folder '{out}' already holds files",
                       fix=f"continue it with --resume {out}, pass --force to start it over, or pick another --out")
    return out


def _holds_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def clear(out: Path) -> None:
    """Remove the files a previous run left (``--force``); other files stay."""
    for name in FILES:
        p = out / name
        if p.is_file() and not p.is_symlink():
            p.unlink()


def write_json(out: Path, name: str, data: dict[str, Any]) -> None:
    write_text(out / name, json.dumps(data, indent=2) + "\n", force=True)


def save_checkpoint(out: Path, state: dict[str, Any]) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(out / "checkpoint.pt", buf.getvalue(), force=True)


def read_run(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``run.json`` and ``checkpoint.pt`` of a run folder, for ``--resume``."""
    import torch

    if not folder.is_dir():
        raise RunError(f"cannot resume '{folder}': no such folder", fix="pass the --out folder of a run")
    missing = [f for f in ("run.json", "spec.yaml", "recipe.yaml", "checkpoint.pt") if not (folder / f).is_file()]
    if missing:
        raise RunError(f"cannot resume '{folder}': it has no {', '.join(missing)}",
                       fix="pass the folder of a run that saved at least one checkpoint")
    try:
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged file of any kind
        raise RunError(f"cannot resume '{folder}': {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                       fix="the run folder is damaged; start the run again") from None
    if not isinstance(info, dict) or not isinstance(state, dict) or state.get("format") != 1:
        raise RunError(f"cannot resume '{folder}': run.json or checkpoint.pt is not one archspec wrote")
    return info, state
