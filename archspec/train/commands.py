"""The ``archspec train`` and ``archspec evaluate`` commands: parse, call, print.

``archspec.cli`` calls :func:`register` with its group and its ``spec_command``
decorator (shared options and the error contract); this module imports neither torch
nor ``archspec.cli``, so ``python -m archspec.cli`` has no import cycle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import ArchSpecError
from ..loader import Limits

_TRAIN_OPTIONS = [
    click.argument("spec", type=click.Path(dir_okay=False, path_type=Path), required=False),
    click.option("--data", default=None, metavar="SOURCE",
                 help="synthetic[:N], cells[:N], cifar10:DIR, cifar100:DIR, imagefolder:DIR or segfolder:DIR."),
    click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="A recipe YAML file of these settings; the flags given override it."),
    click.option("--epochs", type=int, default=None, help="Epochs (default 200)."),
    click.option("--batch-size", type=int, default=None, help="The global batch, split over processes (default 128)."),
    click.option("--lr", type=float, default=None, help="Peak learning rate (default 0.1)."),
    click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default=None, help="Default sgd (momentum 0.9)."),
    click.option("--momentum", type=float, default=None, help="SGD momentum (default 0.9)."),
    click.option("--schedule", type=click.Choice(["cosine", "step", "none"]), default=None,
                 help="Learning-rate schedule over the run, per step (default cosine; step: x0.1 at 50% and 75%)."),
    click.option("--weight-decay", type=float, default=None, help="Default 5e-4."),
    click.option("--augment/--no-augment", default=None, help="Random crop (pad 4) and flip of images (default on)."),
    click.option("--seed", type=int, default=None, help="Seed of the weights, order and augmentation (default 0)."),
    click.option("--workers", type=int, default=None, help="Loader processes (default 0 for generated data, else 8)."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Default auto."),
    click.option("--amp", type=click.Choice(["bf16", "fp16"]), default=None,
                 help="Mixed precision (fp16 with a grad scaler, CUDA only)."),
    click.option("--channels-last/--no-channels-last", default=None, help="NHWC memory layout (GPU)."),
    click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile the model."),
    click.option("--sync-bn/--no-sync-bn", default=None, help="SyncBatchNorm across processes (CUDA)."),
    click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="The run folder (default runs/<name>, runs/<name>-2, ...)."),
    click.option("--force", is_flag=True, help="Start over in an --out folder that holds a run."),
    click.option("--resume", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
                 help="Continue the run in DIR with its own settings (only --epochs, --workers, --device change)."),
    click.option("--init-from", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
                 help="Start from these weights (.safetensors, .pt): every key of matching name and shape."),
    click.option("--nproc", type=click.IntRange(min=1), default=None, metavar="N",
                 help="Run N processes on this machine through torchrun (DistributedDataParallel)."),
]


def train_cmd(spec: Path | None, data: str | None, config: Path | None, out: Path | None, force: bool,
              resume: Path | None, init_from: Path | None, nproc: int | None, compile_: bool | None,
              params: dict[str, Any], limits: Limits, as_json: bool, **recipe: Any) -> None:
    """Train SPEC on a data source and write a run folder.

    The defaults are the classic CIFAR recipe: SGD with lr 0.1, momentum 0.9, weight
    decay 5e-4, a cosine schedule, random crop (padding 4) and flip, per-channel
    normalisation, cross-entropy. The task comes from the spec's output: a vector is
    classification, a map the size of the input is segmentation (cross-entropy + Dice;
    metrics Dice and IoU). Ctrl-C or SIGTERM saves a checkpoint and exits (130 or 143);
    --resume continues it.

    \b
    Examples:
      archspec train specs/resnet18_cifar.yaml --data cifar10:data/cifar --epochs 30
      archspec train specs/unet.yaml -p depth=3 -p base=16 --data cells --epochs 4 --batch-size 16
      archspec train specs/resnet_cifar.yaml --data synthetic --epochs 2 --config recipe.yaml
      archspec train --resume runs/resnet_cifar
      archspec train specs/resnet18_cifar.yaml -p num_classes=100 --data cifar100:data \\
          --init-from runs/resnet18_cifar/best.safetensors
      archspec train specs/resnet18_cifar.yaml --data cifar10:data --nproc 4 --amp bf16
    """
    recipe["compile"] = compile_
    if nproc is not None and nproc > 1 and "LOCAL_RANK" not in os.environ:
        args = _forward(spec, data, config, out, force, resume, init_from, params, recipe, as_json)
        from .dist import torchrun_command

        sys.exit(subprocess.call(torchrun_command(nproc, args)))
    if resume is None and spec is None:
        raise ArchSpecError("archspec train needs a SPEC, or --resume DIR",
                            fix="e.g. archspec train specs/resnet_cifar.yaml --data synthetic")
    if resume is not None and spec is not None:
        raise ArchSpecError("--resume continues a run with the spec in its folder; leave SPEC out",
                            fix=f"archspec train --resume {resume}")
    from .loop import train

    result = train(spec, data, params=params, out=out, force=force, resume=resume, init_from=init_from,
                   config=config, limits=limits, verbose=not as_json, **recipe)
    if result.rank != 0:
        pass
    elif as_json:
        click.echo(json.dumps({"ok": result.status == "complete", **result.to_dict()}, indent=2))
    elif result.status == "complete":
        click.echo(f"done: {result.out} (best {result.best:.4f})" if result.best is not None else
                   f"done: {result.out}")
    if result.signal is not None:
        sys.exit(128 + result.signal)


def _forward(spec: Path | None, data: str | None, config: Path | None, out: Path | None, force: bool,
             resume: Path | None, init_from: Path | None, params: dict[str, Any], recipe: dict[str, Any],
             as_json: bool) -> list[str]:
    """The arguments of this command again, for each process torchrun starts."""
    args = [str(spec)] if spec is not None else []
    for k, v in params.items():
        args += ["-p", f"{k}={json.dumps(v)}"]
    for flag, v in (("--data", data), ("--config", config), ("--out", out), ("--resume", resume),
                    ("--init-from", init_from)):
        if v is not None:
            args += [flag, str(v)]
    for k, v in recipe.items():
        if v is None:
            continue
        name = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            args.append(name if v else f"--no-{k.replace('_', '-')}")
        else:
            args += [name, str(v)]
    return args + (["--force"] if force else []) + (["--json"] if as_json else [])


_EVALUATE_OPTIONS = [
    click.argument("spec", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), required=True,
                 help="The weights (.safetensors or .pt), e.g. a run's best.safetensors."),
    click.option("--data", required=True, metavar="SOURCE", help="A data source, as for archspec train."),
    click.option("--split", type=click.Choice(["val", "train"]), default="val", show_default=True,
                 help="Which split of the source."),
    click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("--workers", type=click.IntRange(min=0), default=None),
    click.option("--amp", type=click.Choice(["bf16", "fp16"]), default=None),
]


def evaluate_cmd(spec: Path, weights: Path, data: str, split: str, batch_size: int, device: str,
                 workers: int | None, amp: str | None, params: dict[str, Any], limits: Limits,
                 as_json: bool) -> None:
    """The loss and metrics of SPEC with WEIGHTS on a data source.

    A run folder's run.json beside the weights gives the normalisation used in training.

    \b
    Example:
      archspec evaluate specs/resnet18_cifar.yaml --weights runs/resnet18_cifar/best.safetensors \\
          --data cifar10:data/cifar
    """
    from .evaluate import evaluate

    result = evaluate(spec, weights, data, params=params, split=split,  # type: ignore[arg-type]
                      batch_size=batch_size, device=device, workers=workers, amp=amp, limits=limits)
    if as_json:
        click.echo(json.dumps({"ok": True, **result.to_dict()}, indent=2))
        return
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    click.echo(f"{result.data} ({result.split}, {result.samples} samples): {metrics}")


def register(group: click.Group, spec_command: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Add ``train`` and ``evaluate`` to ``group``, with the options every spec command shares."""
    for name, fn, options in (("train", train_cmd, _TRAIN_OPTIONS), ("evaluate", evaluate_cmd, _EVALUATE_OPTIONS)):
        cmd = spec_command(fn)
        for option in reversed(options):
            cmd = option(cmd)
        group.add_command(click.command(name)(cmd))
