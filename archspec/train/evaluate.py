"""``archspec evaluate``: the loss and metrics of trained weights on a data set.

The inputs are normalised as in training: with the mean and std in the ``run.json``
beside the weights when there is one (a run folder), else with the data's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..loader import DEFAULT_LIMITS, Limits
from .errors import DataError
from .recipe import Recipe


@dataclass(frozen=True)
class Evaluation:
    data: str
    split: str
    samples: int
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "split": self.split, "samples": self.samples, "metrics": self.metrics}


def _run_stats(weights: Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    info_path = weights.parent / "run.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        return tuple(float(v) for v in info["mean"]), tuple(float(v) for v in info["std"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def evaluate(spec: Any, weights: str | Path, data: str, *, params: Mapping[str, Any] | None = None,
             split: Literal["train", "val"] = "val", batch_size: int = 256, device: str = "auto",
             workers: int | None = None, amp: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Evaluation:
    from ..api import check as do_check
    from ..api import compile as do_compile
    from . import dist
    from .data import open_data, parse_source
    from .loop import _loader, _Prep, _workers, check_settings, evaluate_model, select_device
    from .task import infer_task

    recipe = Recipe.model_validate({"batch_size": batch_size, "device": device, "workers": workers, "amp": amp})
    source = parse_source(data)
    checked = do_check(spec, params, limits=limits)
    task = infer_task(checked)
    world = dist.World()
    dev = select_device(recipe.device, world)
    check_settings(recipe, task, dev, world)
    ds = open_data(source, task)
    chosen = ds.train if split == "train" else ds.val
    if chosen is None:
        raise DataError(f"'{source}' has no validation split", fix="pass --split train, or add a val/ folder")
    stats = _run_stats(Path(weights))
    if stats is not None:
        ds.mean, ds.std = stats
    model = do_compile(checked.graph, weights=weights, limits=limits).to(dev)
    loader = _loader(chosen, None, batch_size, _workers(recipe, ds), dev, 0, False)
    meter = evaluate_model(model, loader, task, _Prep(ds, task, dev, False), recipe, dev)
    metrics = {k.removeprefix("val_"): v for k, v in meter.summary("val").items()}
    return Evaluation(str(source), split, meter.n, metrics)
