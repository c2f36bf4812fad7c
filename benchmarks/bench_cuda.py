"""GPU throughput: archspec's models against torchvision's, side by side in one run.

Run on a machine with a CUDA GPU (one call, a few minutes):

    .venv/bin/python benchmarks/bench_cuda.py --write docs/performance-cuda.md

and on the CPU as a smoke test of the script itself (tiny images, one round; ``--no-compile``
leaves out the torch.compile rows, most of its minute):

    .venv/bin/python benchmarks/bench_cuda.py --device cpu --smoke

For ResNet-18, ResNet-50 and DenseNet-121 (torchvision's weights loaded into archspec's
model, so both compute the same function), images/s of:

- a training step (forward, backward, SGD step) under bf16 autocast with channels_last;
- the same, both models under ``torch.compile`` (inductor): the ceiling;
- eval forward under ``torch.no_grad``: torchvision eager against
  ``archspec.compile(..., optimize="inference")``, in fp32 and under bf16 autocast.

Each figure is the median of interleaved rounds (both sides back to back each round),
timed with CUDA events after a warm-up. A row that fails says why and the run goes on.
Reports; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench import publish  # noqa: E402 - after the path it is found on

SPECS = {"resnet18": ("resnet.yaml", {"depth": 18}), "resnet50": ("resnet.yaml", {"depth": 50}),
         "densenet121": ("densenet.yaml", {"depth": 121})}
LABEL = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "densenet121": "DenseNet-121"}
BATCH = {"resnet18": 256, "resnet50": 128, "densenet121": 128}


def pair(name: str, size: int, optimize: str | None = None) -> tuple[Any, Any]:
    """archspec's model (torchvision's weights loaded) and torchvision's, on the CPU."""
    import torchvision

    import archspec

    spec, params = SPECS[name]
    ref = getattr(torchvision.models, name)()
    ours = archspec.compile(ROOT / "specs" / spec, {**params, "H": size, "W": size})
    ours.load_state_dict(ref.state_dict(), strict=True)
    if optimize is not None:
        from archspec.optimize import optimize as apply

        apply(ours, optimize)
    return ours, ref


class Clock:
    """Seconds of device work between start() and stop(): CUDA events, or the wall clock on the CPU."""

    def __init__(self, device: str) -> None:
        import torch

        self.cuda = device.startswith("cuda")
        self.torch = torch

    def time(self, fn: Callable[[], None], iters: int) -> float:
        torch = self.torch
        if self.cuda:
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        return time.perf_counter() - t


def interleaved(clock: Clock, fns: dict[str, Callable[[], None]], rounds: int, iters: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each fn, rounds interleaved."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(clock.time(fn, iters) / iters)
    return {k: statistics.median(v) for k, v in times.items()}


def train_step(model: Any, x: Any, amp: bool) -> Callable[[], None]:
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    device_type = x.device.type

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
            out = model(x)
        out.float().sum().backward()
        opt.step()
    return step


def infer_step(model: Any, x: Any, amp: bool) -> Callable[[], None]:
    import torch

    device_type = x.device.type

    def step() -> None:
        with torch.no_grad(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
            model(x)
    return step


def row(label: str, batch: int, fn: Callable[[], dict[str, float]]) -> list[str]:
    try:
        t = fn()
    except Exception as e:  # noqa: BLE001 - a failing row is reported, and the run goes on
        return [label, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}", "", ""]
    ours, ref = batch / t["archspec"], batch / t["torchvision"]
    return [label, f"{ours:,.0f}", f"{ref:,.0f}", f"{ours / ref:.2f}"]


def measure(name: str, args: argparse.Namespace, clock: Clock) -> list[list[str]]:
    import torch

    size, batch, dev = args.size, args.batch or BATCH[name], args.device
    x = torch.randn(batch, 3, size, size, device=dev)
    xl = x.contiguous(memory_format=torch.channels_last)
    timing = {"rounds": args.rounds, "iters": args.iters, "warmup": args.warmup}
    rows = []

    def train(compiled: bool) -> dict[str, float]:
        ours, ref = pair(name, size)
        ours = ours.to(dev, memory_format=torch.channels_last).train()
        ref = ref.to(dev, memory_format=torch.channels_last).train()
        if compiled:
            ours, ref = torch.compile(ours), torch.compile(ref)
        return interleaved(clock, {"archspec": train_step(ours, xl, True), "torchvision": train_step(ref, xl, True)},
                           **timing)

    rows.append(row(f"train step, bf16 + channels_last, {LABEL[name]} b{batch}", batch, lambda: train(False)))
    if not args.no_compile:
        rows.append(row(f"train step, bf16 + channels_last, torch.compile, {LABEL[name]} b{batch}", batch,
                        lambda: train(True)))

    def infer(amp: bool) -> dict[str, float]:
        ours, _ = pair(name, size, optimize="inference")
        _, ref = pair(name, size)
        ours, ref = ours.to(dev), ref.to(dev).eval()
        return interleaved(clock, {"archspec": infer_step(ours, x, amp), "torchvision": infer_step(ref, x, amp)},
                           **timing)

    rows.append(row(f'eval, `optimize="inference"` vs eager, fp32, {LABEL[name]} b{batch}', batch,
                    lambda: infer(False)))
    rows.append(row(f'eval, `optimize="inference"` vs eager, bf16, {LABEL[name]} b{batch}', batch,
                    lambda: infer(True)))
    return rows


def machine(device: str) -> str:
    import platform

    import torch
    import torchvision

    what = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({platform.processor() or 'unknown'})"
    cuda = f", CUDA {torch.version.cuda}" if device.startswith("cuda") else ""
    return f"{what}; Python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}{cuda}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--write", type=Path, help="write the Markdown page here")
    ap.add_argument("--smoke", action="store_true", help="64x64 images, batch 2, one round: checks the script runs")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    ap.add_argument("--models", default="resnet18,resnet50,densenet121")
    ap.add_argument("--batch", type=int, default=None)
    args = ap.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU machine, or pass --device cpu --smoke for a smoke test")
    torch.backends.cudnn.benchmark = True
    args.size = 64 if args.smoke else 224
    args.batch = args.batch or (2 if args.smoke else None)
    args.rounds, args.iters, args.warmup = (1, 1, 1) if args.smoke else (5, 10, 5)
    clock = Clock(args.device)
    start = time.perf_counter()
    rows: list[list[str]] = []
    for name in args.models.split(","):
        rows += measure(name, args, clock)
        print(*("| " + " | ".join(r) + " |" for r in rows[-4:]), sep="\n", flush=True)
    lines = ["# Performance on a GPU", "",
             "Generated by `benchmarks/bench_cuda.py --write docs/performance-cuda.md` on a CUDA machine; do not",
             "edit by hand. Images per second, archspec and torchvision side by side (torchvision's weights",
             "loaded into archspec's model), medians of interleaved rounds timed with CUDA events; ratio",
             "archspec / torchvision, above 1.00 archspec is faster.", "",
             f"Machine: {machine(args.device)}. The run took {(time.perf_counter() - start) / 60:.1f} min"
             f"{' (--smoke: not reference figures)' if args.smoke else ''}.", "",
             "| what | archspec img/s | torchvision img/s | ratio |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    publish(text, args.write)


if __name__ == "__main__":
    main()
