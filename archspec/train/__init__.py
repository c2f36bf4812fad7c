"""Training a spec: ``archspec train`` and ``archspec.train(spec, data=...)``.

>>> import archspec
>>> run = archspec.train("specs/resnet_cifar.yaml", data="synthetic:64", epochs=1, batch_size=32,
...                      out=tmp / "run", verbose=False)    # doctest: +SKIP
>>> run.status, sorted(p.name for p in run.out.iterdir())[:3]  # doctest: +SKIP
('complete', ['best.safetensors', 'checkpoint.pt', 'curves.png'])

Importing this package does not import torch; the functions below do, when called.
The parts: ``recipe`` (settings), ``task`` (what the spec's shapes say to train),
``data`` and ``cells`` (sources), ``loop`` (training), ``metrics``, ``rundir`` (the run
folder and resume), ``finetune`` (``--init-from``), ``dist`` (torchrun and DDP),
``commands`` (the click commands).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .evaluate import Evaluation
    from .loop import RunResult


def train(spec: Any, data: str | None = None, **settings: Any) -> RunResult:
    """Train ``spec`` on ``data`` (a source such as ``"cells"`` or ``"cifar10:DIR"``).

    Returns the run's metrics and paths (:class:`~archspec.train.loop.RunResult`).
    Keywords: ``params``, ``out``, ``force``, ``resume``, ``init_from``, ``config``,
    ``verbose`` and every recipe setting (``epochs``, ``batch_size``, ``lr``, ...).
    """
    from .loop import train as run

    return run(spec, data, **settings)


def evaluate(spec: Any, weights: Any, data: str, **settings: Any) -> Evaluation:
    """The loss and metrics of ``spec`` with ``weights`` on ``data``'s validation split."""
    from .evaluate import evaluate as run

    return run(spec, weights, data, **settings)


__all__ = ["evaluate", "train"]
