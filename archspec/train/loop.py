"""The training loop: one function from a spec, a data source and a recipe to a run folder.

Determinism: the model is initialised from the seed; each epoch's order is a
DistributedSampler's (seeded by seed + epoch, the same split for any number of
processes); each sample's augmentation is drawn from (seed, epoch, index); the global
RNG (dropout) is saved in every checkpoint. So on the CPU a run that is interrupted and
resumed ends with the same weights, bit for bit, as one that never stopped.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..loader import DEFAULT_LIMITS, Limits
from . import dist, rundir
from .data import Augmented, Data, SkipSampler, open_data, parse_source
from .errors import RunError
from .metrics import Meter, csv_text, curves_png, loss_fn
from .recipe import Recipe, load_recipe
from .task import Task, infer_task

if TYPE_CHECKING:
    import torch

RESUME_FLAGS = ("epochs", "workers", "device")  # what --resume lets the command line change


@dataclass
class RunResult:
    """What ``archspec.train`` returns: where the run is and how it went."""

    out: Path
    task: str
    status: str  # "complete" or "interrupted"
    metrics: list[dict[str, float]] = field(default_factory=list)
    best: float | None = None
    signal: int | None = None
    rank: int = 0  # the process's rank under torchrun: only rank 0 reports

    @property
    def last(self) -> Path:
        return self.out / "last.safetensors"

    @property
    def best_weights(self) -> Path:
        return self.out / "best.safetensors"

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "task": self.task, "status": self.status, "metrics": self.metrics,
                "best": self.best, "last_weights": str(self.last), "best_weights": str(self.best_weights)}


class _Stop:
    """SIGINT and SIGTERM ask the loop to stop at the next step; a second one stops now."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class _Reporter:
    """Rich progress bars on a terminal; one plain line per epoch otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.rich = enabled and sys.stdout.isatty()
        self._progress: Any = None
        self._task: Any = None

    def line(self, text: str) -> None:
        if self.enabled:
            if self._progress is not None:  # rich draws on the raw terminal: escape the text here
                from rich.markup import escape

                from ..errors import terminal_safe

                self._progress.console.print(escape(terminal_safe(text)), highlight=False)
            else:
                print(text, flush=True)

    def start(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        if not self.rich:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from ..errors import terminal_stream

        self._progress = Progress(TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=True,
                                  console=Console(file=terminal_stream()))  # its redraws pass on a terminal
        self._progress.start()
        self._task = self._progress.add_task("train", total=steps, completed=done, info="")

    def step(self, info: str) -> None:
        if self._progress is not None:
            from rich.markup import escape

            from ..errors import terminal_safe

            self._progress.update(self._task, advance=1, info=escape(terminal_safe(info)))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _fmt_row(row: Mapping[str, float], epochs: int) -> str:
    parts = [f"epoch {int(row['epoch'])}/{epochs}"]
    for k in ("train_loss", "train_acc", "train_dice", "val_loss", "val_acc", "val_dice", "val_iou"):
        if k in row:
            parts.append(f"{k} {row[k]:.4f}")
    parts.append(f"lr {row['lr']:.3g}")
    parts.append(f"{row['images_per_s']:.0f} img/s")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def select_device(name: str, world: dist.World) -> torch.device:
    import torch

    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RunError("--device cuda, but torch sees no CUDA device", fix="use --device cpu or auto")
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return torch.device("cpu")


def check_settings(recipe: Recipe, task: Task, device: torch.device, world: dist.World) -> None:
    """The settings that cannot work here, refused before anything is built."""
    if recipe.amp == "fp16" and device.type != "cuda":
        raise RunError("--amp fp16 needs a CUDA device (the CPU has no fp16 autocast with a grad scaler)",
                       fix="use --amp bf16 on the CPU, or train on a GPU")
    if recipe.channels_last and len(task.input) != 3:
        raise RunError(f"--channels-last is for image inputs (C, H, W), but the spec's input is "
                       f"{'x'.join(map(str, task.input))}", fix="leave --channels-last out")
    if recipe.sync_bn and device.type != "cuda":
        raise RunError("--sync-bn converts batch norms to SyncBatchNorm, which runs on CUDA only",
                       fix="leave --sync-bn out on the CPU")
    if recipe.batch_size % world.size:
        raise RunError(f"--batch-size {recipe.batch_size} is the global batch and must divide among "
                       f"{world.size} processes", fix=f"use a multiple of {world.size}")


def _schedule(recipe: Recipe, total: int) -> Callable[[int], float]:
    if recipe.schedule == "cosine":
        return lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / max(1, total)))
    if recipe.schedule == "step":  # x0.1 at half and three quarters of the run
        return lambda s: 0.1 ** ((s >= total // 2) + (s >= (3 * total) // 4))
    return lambda s: 1.0


def _workers(recipe: Recipe, data: Data) -> int:
    if recipe.workers is not None:
        return recipe.workers
    from .data import TensorSet

    return 0 if isinstance(data.train, TensorSet) else min(8, os.cpu_count() or 1)


def _loader(ds: Any, sampler: Any, batch: int, workers: int, device: torch.device, seed: int,
            drop_last: bool) -> Any:
    import torch
    from torch.utils.data import DataLoader

    # Its own generator: the loader then never draws from the global RNG (dropout's),
    # so a resumed run draws the same dropout masks.
    return DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", drop_last=drop_last,
                      generator=torch.Generator().manual_seed(seed))


class _Prep:
    """A uint8 batch to normalised floats on the device (non-blocking from pinned memory)."""

    def __init__(self, data: Data, task: Task, device: torch.device, channels_last: bool) -> None:
        import torch

        view = (1, len(data.mean), *([1] * (len(task.input) - 1)))
        self.mean = torch.tensor(data.mean, device=device).view(view) * 255
        self.std = torch.tensor(data.std, device=device).view(view) * 255
        self.device, self.channels_last = device, channels_last

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        nb = self.device.type == "cuda"
        x = (x.to(self.device, non_blocking=nb).float() - self.mean) / self.std  # (N, C, H, W)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=nb)


def _autocast(recipe: Recipe, device: torch.device) -> Any:
    import torch

    dtype = torch.bfloat16 if recipe.amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, enabled=recipe.amp is not None)


def evaluate_model(model: Any, loader: Any, task: Task, prep: _Prep, recipe: Recipe,
                   device: torch.device) -> Meter:
    """The loss and metrics of ``model`` over ``loader``, in eval mode."""
    import torch

    meter = Meter(task.kind, task.classes)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for xb, yb in loader:
            x, y = prep(xb, yb)
            with _autocast(recipe, device):
                out = task.logits(model(x))
            meter.add(loss_fn(task.kind, out, y), out.float(), y)
    model.train(was_training)
    return meter


def _spec_text(spec: Any, limits: Limits) -> tuple[Any, str]:
    from ..api import read
    from ..errors import ArchSpecError
    from ..ir import Graph

    if spec is None:
        raise ArchSpecError("archspec.train needs a spec (a path or YAML text), or resume=<run folder>")
    if isinstance(spec, Graph):
        raise ArchSpecError("archspec.train needs the spec (a path or YAML text), not a built graph: the run "
                            "folder keeps the spec's text")
    doc = read(spec, limits)
    return doc, doc.text


def train(spec: Any, data: str | None = None, *, params: Mapping[str, Any] | None = None,
          out: str | Path | None = None, force: bool = False, resume: str | Path | None = None,
          init_from: str | Path | None = None, config: str | Path | None = None,
          limits: Limits = DEFAULT_LIMITS, verbose: bool = True, **settings: Any) -> RunResult:
    """Train ``spec`` on ``data`` and write a run folder; see docs/training.md.

    ``settings`` are the recipe's (``epochs``, ``batch_size``, ``lr``, ``optimizer``,
    ``schedule``, ``weight_decay``, ``seed``, ``workers``, ``device``, ``amp``, ...);
    they override ``config``, a recipe YAML file. With ``resume`` (a run folder) the
    run's own spec, params, data and recipe are used; only ``epochs``, ``workers`` and
    ``device`` may be changed.
    """
    from ..api import check as do_check
    from ..api import compile as do_compile
    from ..weights import save_weights

    world = dist.world_from_env()
    given = {k: v for k, v in settings.items() if v is not None}
    unknown = [k for k in given if k not in Recipe.model_fields or k == "data"]
    if unknown:
        from ..errors import close_matches

        raise RunError(f"unknown setting '{unknown[0]}'{close_matches(unknown[0], Recipe.model_fields)}",
                       expected="one of: " + ", ".join(k for k in Recipe.model_fields if k != "data"))
    state: dict[str, Any] | None = None
    if resume is not None:
        run_dir = Path(resume)
        refused = [k for k in given if k not in RESUME_FLAGS]
        refused += [name for name, v in (("params", params), ("init_from", init_from), ("config", config),
                                         ("out", out)) if v]
        if refused:
            raise RunError(f"--resume continues a run with its own settings; cannot change "
                           f"{', '.join(sorted(refused))}", fix="only --epochs, --workers and --device may "
                           "be given with --resume; start a new run for other settings")
        info, state = rundir.read_run(run_dir)
        recipe_data = load_recipe(run_dir / "recipe.yaml")
        recipe = Recipe.model_validate({**recipe_data, **given})
        doc, text = _spec_text(run_dir / "spec.yaml", limits)
        params = dict(info.get("params") or {})
        source = parse_source(data if data is not None else str(info["data"]))
        out_dir: Path | None = run_dir
        if state["epoch"] >= recipe.epochs:
            raise RunError(f"the run in '{run_dir}' is complete ({state['epoch']}/{recipe.epochs} epochs)",
                           fix="pass --epochs with a larger number to train it further")
    else:
        from .recipe import resolve

        recipe = resolve(config, given)
        data = data if data is not None else recipe.data
        if data is None:
            raise RunError("no data source", fix="pass --data synthetic, cells, cifar10:DIR, cifar100:DIR, "
                                                 "imagefolder:DIR or segfolder:DIR")
        source = parse_source(data)
        recipe = recipe.model_copy(update={"data": str(source)})
        doc, text = _spec_text(spec, limits)
        params = dict(params or {})
        out_dir = Path(out) if out is not None else None  # chosen below, once the name is known

    checked = do_check(doc, params, limits=limits)
    task = infer_task(checked)
    device = select_device(recipe.device, world)
    check_settings(recipe, task, device, world)
    ds = open_data(source, task)
    if resume is None:
        out_dir = rundir.choose_out(out_dir, checked.graph.name, force=force)
    assert out_dir is not None
    dist.init(world, device)
    try:
        result = _run(doc, text, params, task, ds, recipe, device, world, out_dir, force, state,
                      Path(init_from) if init_from is not None else None, limits, verbose, do_compile,
                      save_weights)
        # Every process done before the group is torn down: gloo may abort a process whose
        # peer destroys the group while it still sends or receives.
        dist.barrier(world)
        return result
    finally:
        dist.shutdown(world)


def _run(doc: Any, text: str, params: dict[str, Any], task: Task, ds: Data, recipe: Recipe,
         device: torch.device, world: dist.World, out: Path, force: bool, state: dict[str, Any] | None,
         init_path: Path | None, limits: Limits, verbose: bool, do_compile: Any, save_weights: Any) -> RunResult:
    import random

    import torch
    from torch.utils.data.distributed import DistributedSampler

    report = _Reporter(verbose and world.main)
    per_rank = recipe.batch_size // world.size
    full_sampler: DistributedSampler[int] = DistributedSampler(
        ds.train, num_replicas=world.size, rank=world.rank, shuffle=True, seed=recipe.seed,  # type: ignore[arg-type]
        drop_last=True)
    steps = len(full_sampler) // per_rank
    if steps == 0:
        raise RunError(f"the training set has {len(ds.train)} samples, fewer than one batch of "
                       f"{recipe.batch_size}", fix="lower --batch-size or use more data")
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    base = do_compile(doc, params, limits=limits)
    init_lines: list[str] = []
    if init_path is not None:
        from .finetune import init_from as do_init

        init_lines = do_init(base, init_path).lines()
        for line in init_lines:
            report.line(line)
    if recipe.sync_bn and world.distributed:
        base = torch.nn.SyncBatchNorm.convert_sync_batchnorm(base)
    base.to(device)
    if recipe.channels_last:
        base.to(memory_format=torch.channels_last)
    model: Any = base
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(base, device_ids=[device.index] if device.type == "cuda" else None)
    if recipe.compile:
        model = torch.compile(model)

    train_set = Augmented(ds.train, recipe.seed) if recipe.augment else ds.train
    workers = _workers(recipe, ds)
    val_loader = None
    if ds.val is not None and world.main:
        val_loader = _loader(ds.val, None, per_rank, workers, device, recipe.seed, False)
    prep = _Prep(ds, task, device, recipe.channels_last)

    decay, params_all = recipe.weight_decay, [p for p in base.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(params_all, lr=recipe.lr, momentum=recipe.momentum, weight_decay=decay)
    else:
        opt = torch.optim.AdamW(params_all, lr=recipe.lr, weight_decay=decay)
    total = steps * recipe.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(recipe, total))
    scaler = torch.amp.GradScaler(device.type, enabled=recipe.amp == "fp16")

    epoch, done, rows, best, seconds = 0, 0, [], None, 0.0
    meter = Meter(task.kind, task.classes)
    if state is not None:
        base.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        epoch, done, rows, best, seconds = (state["epoch"], state["step"], list(state["rows"]), state["best"],
                                            state["seconds"])
        meter.load(state["meter"])
        report.line(f"resuming {out} at epoch {epoch + 1}, step {done}/{steps}")

    def checkpoint() -> dict[str, Any]:
        return {"format": 1, "epoch": epoch, "step": done, "model": base.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []},
                "meter": meter.state(), "rows": rows, "best": best, "seconds": seconds}

    info: dict[str, Any] = {
        "archspec": _version(), "torch": torch.__version__, "name": doc.data.get("name") if isinstance(doc.data, dict) else None,
        "spec_file": doc.file, "params": params, "data": str(ds.source), "task": task.kind,
        "classes": task.classes, "class_names": ds.classes, "input": list(task.input), "mean": list(ds.mean),
        "std": list(ds.std), "world_size": world.size, "device": str(device), "status": "running"}
    if world.main and state is None:
        if force:
            rundir.clear(out)
        from ..io import write_text

        write_text(out / "spec.yaml", text, force=True)
        write_text(out / "recipe.yaml", recipe.to_yaml(), force=True)
        if init_lines:
            write_text(out / "init_report.txt", "\n".join(init_lines) + "\n", force=True)
    if world.main:
        rundir.write_json(out, "run.json", info)
        report.line(f"training {info['name']} ({task.kind}, {task.classes} classes) on {ds.source}: "
                    f"{len(ds.train)} samples, {steps} steps of {recipe.batch_size} per epoch, {device}"
                    + (f", {world.size} processes" if world.distributed else "") + f" -> {out}")
    dist.barrier(world)

    status, signum = "complete", None
    last_plot = -math.inf
    model.train()
    with _Stop() as stop:
        while epoch < recipe.epochs:
            if isinstance(train_set, Augmented):
                train_set.set_epoch(epoch)
            full_sampler.set_epoch(epoch)
            loader = _loader(train_set, SkipSampler(full_sampler, done * per_rank), per_rank,
                             _workers(recipe, ds), device, recipe.seed, True)
            report.start(epoch + 1, recipe.epochs, steps, done)
            t0, images = time.perf_counter(), 0
            lr = float(opt.param_groups[0]["lr"])  # the epoch's first step's: the metrics row shows it
            it = iter(loader)
            while done < steps:
                if dist.any_flag(world, stop.signum is not None, device):
                    break
                try:
                    xb, yb = next(it)
                except (RuntimeError, StopIteration):
                    if stop.signum is not None:  # a worker took the Ctrl-C too
                        break
                    raise
                x, y = prep(xb, yb)
                with _autocast(recipe, device):
                    logits = task.logits(model(x))
                loss = loss_fn(task.kind, logits, y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
                meter.add(loss.detach(), logits.detach().float(), y)
                done += 1
                images += int(x.shape[0]) * world.size
                if report.rich:
                    report.step(f"loss {float(loss.detach()):.4f}")
            del it
            seconds += time.perf_counter() - t0
            report.stop()
            if done < steps:  # stopped by a signal
                signum = stop.signum if stop.signum is not None else int(signal.SIGTERM)
                status = "interrupted"
                break
            train_time = time.perf_counter() - t0
            sums = dist.all_sum(world, meter.state(), device)
            meter.load(sums)
            row: dict[str, float] = {"epoch": epoch + 1, **meter.summary("train")}
            if val_loader is not None:
                row.update(evaluate_model(base, val_loader, task, prep, recipe, device).summary("val"))
            row.update({"lr": lr, "images_per_s": images / max(train_time, 1e-9),
                        "seconds": seconds})
            rows.append(row)
            score = row.get(task.metric, -row.get("train_loss", 0.0))
            improved = best is None or score > best
            best = score if improved else best
            epoch, done, seconds = epoch + 1, 0, 0.0
            meter = Meter(task.kind, task.classes)
            if world.main:
                rundir.save_checkpoint(out, checkpoint())
                save_weights(base, out / "last.safetensors")
                if improved:
                    save_weights(base, out / "best.safetensors")
                last_plot = _write_metrics(out, rows, str(info["name"]), last_plot, epoch == recipe.epochs)
                report.line(_fmt_row(row, recipe.epochs))
            dist.barrier(world)
    if status == "interrupted":
        if world.main:
            rundir.save_checkpoint(out, checkpoint())
            save_weights(base, out / "last.safetensors")
            if rows:
                _write_metrics(out, rows, str(info["name"]), last_plot, True)
            name = signal.Signals(signum).name if signum else "a signal"
            report.line(f"stopped by {name} in epoch {epoch + 1} at step {done}/{steps}: saved {out}/checkpoint.pt; "
                        f"continue with: archspec train --resume {out}")
        dist.barrier(world)
    info["status"] = status
    identical = dist.replicas_identical(world, base, device)
    if world.distributed:
        info["replicas_identical"] = identical
    if world.main:
        rundir.write_json(out, "run.json", info)
    if not identical:
        raise RuntimeError("the processes ended with different weights: DistributedDataParallel lost sync")
    return RunResult(out, task.kind, status, rows, best, signum, world.rank)


PLOT_EVERY_S = 60.0  # plotting takes a second or so: redrawn at most this often, and at the end


def _write_metrics(out: Path, rows: list[dict[str, float]], title: str, last_plot: float, final: bool) -> float:
    """Write metrics.csv, and curves.png when it is due; returns when it was last drawn."""
    from ..io import write_bytes, write_text

    write_text(out / "metrics.csv", csv_text(rows), force=True)
    now = time.monotonic()
    if final or now - last_plot >= PLOT_EVERY_S:
        write_bytes(out / "curves.png", curves_png(rows, title), force=True)
        return now
    return last_plot


def _version() -> str:
    from .. import __version__

    return __version__
