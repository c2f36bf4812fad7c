"""What a spec is trained for, read from its checked shapes (no torch).

A vector output ``(K,)`` is classification into K classes; an output ``(K, *S)`` whose
spatial size ``S`` is the input's is segmentation into K classes (one score map per
class). Anything else cannot be trained by ``archspec train`` and is an error that says
both shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..api import CheckResult
from .errors import RunError

Kind = Literal["classification", "segmentation"]


@dataclass(frozen=True)
class Task:
    """``input``: the per-sample input shape, e.g. ``(3, 32, 32)``; ``classes``: K."""

    kind: Kind
    input: tuple[int, ...]
    output: tuple[int, ...]
    classes: int
    key: str | None = None  # outputs: {out: head, aux: ...}: the key of the output trained on

    def logits(self, result: Any) -> Any:
        """The trained output from what the model returns (the ``key`` entry of a dict)."""
        return result[self.key] if self.key is not None else result

    @property
    def metric(self) -> str:
        """The validation metric the best weights are chosen by (higher is better)."""
        return "val_acc" if self.kind == "classification" else "val_dice"


TRAINED_KEY = "out"


def _fmt(shape: tuple[object, ...]) -> str:
    return "x".join(str(d) for d in shape)


def infer_task(result: CheckResult) -> Task:
    """The task of a checked spec; a RunError naming the shapes when there is none."""
    key = None
    if result.graph.output_keys is not None:
        # A dict of outputs (torchvision's segmentation models: {"out": ..., "aux": ...}):
        # train on "out", or on the only one.
        keys = result.graph.output_keys
        if TRAINED_KEY not in keys and len(keys) != 1:
            raise RunError(f"archspec train uses the output named '{TRAINED_KEY}' of a spec whose outputs: is a "
                           f"mapping; this one has {', '.join(repr(k) for k in keys)}",
                           fix=f"name the output to train '{TRAINED_KEY}' in outputs:, e.g. outputs: "
                               f"{{{TRAINED_KEY}: {result.graph.outputs[0]}}}")
        key = TRAINED_KEY if TRAINED_KEY in keys else keys[0]
        result = CheckResult(result.graph.replace(outputs=(dict(result.graph.named_outputs())[key],),
                                                  output_keys=(key,)))
    if len(result.inputs) != 1 or len(result.outputs) != 1:
        raise RunError(f"archspec train needs a spec with one input and one output, got "
                       f"{len(result.inputs)} input(s) and {len(result.outputs)} output(s)",
                       fix="train a spec with inputs: {x: [...]} and outputs: [one node]")
    (in_name, ishape), = result.inputs.items()
    (out_name, oshape), = result.outputs.items()
    if not all(isinstance(d, int) for d in (*ishape, *oshape)):
        raise RunError(f"input '{in_name}' has a symbolic size {_fmt(ishape)}",
                       fix="give the sizes a value with -p, e.g. -p H=128 -p W=128")
    ishape_i = tuple(int(d) for d in ishape)
    oshape_i = tuple(int(d) for d in oshape)
    if len(oshape_i) == 1:
        kind: Kind = "classification"
    elif len(oshape_i) == len(ishape_i) and len(ishape_i) >= 2 and oshape_i[1:] == ishape_i[1:]:
        kind = "segmentation"
    else:
        raise RunError(f"cannot tell the task from output '{out_name}' {_fmt(oshape_i)} for input "
                       f"{_fmt(ishape_i)}",
                       expected="a vector (K,) for classification, or (K, "
                                f"{_fmt(ishape_i[1:]) or '...'}) for segmentation")
    if oshape_i[0] < 2:
        raise RunError(f"output '{out_name}' {_fmt(oshape_i)} has {oshape_i[0]} class; the loss is a softmax "
                       "cross-entropy over at least 2", fix="give the output one channel per class (2 for binary)")
    return Task(kind, ishape_i, oshape_i, oshape_i[0], key)
