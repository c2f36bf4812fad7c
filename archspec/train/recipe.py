"""The training recipe: every setting of a run, validated like a spec.

A recipe is a YAML file (``--config train.yaml``) of these settings; flags on the
command line override it, and the defaults are the classic CIFAR recipe (SGD, lr 0.1,
momentum 0.9, weight decay 5e-4, cosine schedule, random crop with padding 4 and a
horizontal flip, per-channel normalisation, cross-entropy). The resolved recipe is
written to the run folder as ``recipe.yaml``, which is itself a valid ``--config``.

>>> resolve(None, {"epochs": 2}).epochs
2
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import SpecValidationError, close_matches
from ..loader import Document, load_file, load_text


class Recipe(BaseModel):
    """The settings of one run. Frozen, unknown keys refused, types strict."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    data: str | None = None  # a data source (see archspec.train.data); the command line's --data wins
    epochs: int = Field(200, ge=1, le=100_000)
    batch_size: int = Field(128, ge=1, le=1 << 20)  # the global batch, split over the processes
    lr: float = Field(0.1, gt=0, le=100)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    schedule: Literal["cosine", "step", "none"] = "cosine"
    augment: bool = True  # random crop (padding 4) and horizontal flip of image inputs
    seed: int = Field(0, ge=0, lt=1 << 63)
    workers: int | None = Field(None, ge=0, le=256)  # None: 0 for generated data, up to 8 for folders
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["bf16", "fp16"] | None = None
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False

    def to_yaml(self) -> str:
        """The recipe as YAML, every setting written out, loadable with :func:`load_recipe`."""
        import json

        lines = ["# archspec training recipe (archspec train --config FILE)"]
        for k, v in self.model_dump().items():
            lines.append(f"{k}: {json.dumps(v)}")
        return "\n".join(lines) + "\n"


FIELDS = tuple(Recipe.model_fields)


def load_recipe(source: str | Path | Document) -> dict[str, Any]:
    """The settings written in a recipe file, validated; a SpecValidationError at the
    offending line otherwise. Returns only the keys the file sets."""
    doc = source if isinstance(source, Document) else (
        load_file(source) if isinstance(source, Path) or "\n" not in source else load_text(source, "<recipe>"))
    if not isinstance(doc.data, dict):
        raise SpecValidationError(f"a recipe must be a mapping of settings, got {type(doc.data).__name__}",
                                  loc=doc.loc(()), source=doc.text, expected="settings such as 'epochs: 30'")
    for key in doc.data:
        if key not in FIELDS:
            raise SpecValidationError(f"unknown setting '{key}'{close_matches(str(key), FIELDS)}",
                                      loc=doc.loc((key,), key=True), path=str(key), source=doc.text,
                                      expected="one of: " + ", ".join(FIELDS))
    try:
        Recipe.model_validate(doc.data)
    except ValidationError as e:
        from ..spec import from_pydantic

        raise from_pydantic(e, doc) from None
    return dict(doc.data)


def resolve(config: str | Path | None, flags: Mapping[str, Any]) -> Recipe:
    """Defaults, then the recipe file, then the flags that were given (None: not given)."""
    settings: dict[str, Any] = load_recipe(Path(config)) if config is not None else {}
    settings.update({k: v for k, v in flags.items() if v is not None})
    try:
        return Recipe.model_validate(settings)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SpecValidationError(f"setting '{where}': {err['msg']}", path=where, got=repr(err.get("input"))) from None
