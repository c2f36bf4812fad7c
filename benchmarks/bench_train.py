"""Training throughput: the CIFAR ResNet-18 spec against a hand-written ResNet-18, same loop.

Run on a GPU: .venv/bin/python benchmarks/bench_train.py
(on the CPU, for a smoke test: benchmarks/bench_train.py --device cpu --size 256 --batch-size 64 --no-compile)

One epoch of `archspec train` on synthetic data of CIFAR's size (50,000 images of
3x32x32) with --amp bf16 --channels-last, eager and with --compile, first for
specs/resnet18_cifar.yaml and then for tests/reference_models.py's CifarResNet18 put in
the compiled model's place. Prints images/s of each (the epoch's training steps only;
the first epoch includes cuDNN autotuning and, with --compile, the compilation) and the
ratio. Reports; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import archspec
import archspec.api

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def images_per_s(hand_written: bool, compile_: bool, args: argparse.Namespace) -> float:
    from reference_models import resnet18_cifar

    real = archspec.api.compile

    def hand(*a: Any, **kw: Any) -> Any:
        return resnet18_cifar(10)

    archspec.api.compile = hand if hand_written else real  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = archspec.train(ROOT / "specs/resnet18_cifar.yaml", data=f"synthetic:{args.size}",
                                 epochs=args.epochs, batch_size=args.batch_size, amp=args.amp,
                                 channels_last=args.channels_last, compile=compile_, device=args.device,
                                 workers=args.workers, out=Path(tmp) / "run", verbose=False)
    finally:
        archspec.api.compile = real  # type: ignore[assignment]
    return float(run.metrics[-1]["images_per_s"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=50_000)
    p.add_argument("--epochs", type=int, default=1, help="the last epoch's images/s is reported")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--amp", default="bf16")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--no-compile", dest="with_compile", action="store_false")
    args = p.parse_args()
    modes = [False, True] if args.with_compile else [False]
    for compile_ in modes:
        spec = images_per_s(False, compile_, args)
        hand = images_per_s(True, compile_, args)
        print(f"{'compiled' if compile_ else 'eager':8}  spec {spec:9.0f} img/s   hand-written {hand:9.0f} img/s   "
              f"ratio {spec / hand:.3f}", flush=True)


if __name__ == "__main__":
    main()
