"""Compile time of archspec against torchvision's own constructors, side by side.

Run: .venv/bin/python benchmarks/bench_compile.py  (or `make bench`)

Reports the median of several runs for each and the ratio archspec / torchvision.
The target is a ratio within 1.2x; this script reports, it does not assert.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
import torchvision

import archspec

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    ("resnet18", lambda: archspec.compile(ROOT / "specs/resnet18.yaml"), torchvision.models.resnet18),
]
if (ROOT / "specs/resnet.yaml").exists():
    CASES.append(("resnet50", lambda: archspec.compile(ROOT / "specs/resnet.yaml", params={"depth": 50}),
                  torchvision.models.resnet50))


def median_time(fn, runs: int = 7) -> float:
    fn()  # warm caches (imports, pydantic model build)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'model':<10} {'archspec':>10} {'torchvision':>12} {'ratio':>7}")
    for name, ours, ref in CASES:
        a = median_time(ours)
        b = median_time(ref)
        print(f"{name:<10} {a * 1e3:>8.1f}ms {b * 1e3:>10.1f}ms {a / b:>6.2f}x")


if __name__ == "__main__":
    main()
