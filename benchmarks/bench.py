"""archspec against torchvision, side by side in one run: `make bench` writes docs/performance.md.

Every figure is a ratio archspec / torchvision (or optimised / plain) of medians of
interleaved runs: in each round both sides run back to back, in alternating order, so a
busy machine slows both alike; the clock is CPU time by default (--clock wall for elapsed
time), so other programs on a shared machine do not count. One torch thread. Memory is the peak resident memory a
training step adds, measured in a fresh process per model (glibc returns every large
block at once: MALLOC_MMAP_THRESHOLD_ is fixed, so the peak is the tensors', not the
allocator's). The script reports; it asserts nothing.

    python benchmarks/bench.py                 # print the tables
    python benchmarks/bench.py --write docs/performance.md
    python benchmarks/bench.py --quick         # small inputs, 3 rounds: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPECS = {
    "resnet18": ("resnet.yaml", {"depth": 18}), "resnet50": ("resnet.yaml", {"depth": 50}),
    "resnet152": ("resnet.yaml", {"depth": 152}), "densenet121": ("densenet.yaml", {"depth": 121}),
    "mobilenet_v2": ("mobilenet_v2.yaml", {}),
}
LABEL = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "resnet152": "ResNet-152", "densenet121": "DenseNet-121",
         "mobilenet_v2": "MobileNetV2"}


def archspec_model(name: str, size: int = 224, **kw: Any) -> Any:
    import archspec

    spec, params = SPECS[name]
    return archspec.compile(ROOT / "specs" / spec, {**params, "H": size, "W": size, **kw.pop("params", {})}, **kw)


def torchvision_model(name: str, **kw: Any) -> Any:
    import torchvision

    return getattr(torchvision.models, name)(**kw)


CLOCK = "cpu"  # --clock: "cpu" (this process's and its children's CPU time) or "wall"


def now() -> float:
    """Seconds on the chosen clock. CPU time (user + system, this process and the children
    it has waited for) leaves out the time other programs hold the cores, so a shared,
    busy machine measures what an idle one would; wall time is the plain elapsed time."""
    if CLOCK == "wall":
        return time.perf_counter()
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each function, the functions run in turn each round (order flipped
    every other round), after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    for r in range(rounds):
        for k in (order if r % 2 == 0 else order[::-1]):
            t = now()
            fns[k]()
            times[k].append(now() - t)
    return {k: statistics.median(v) for k, v in times.items()}


# -- the measurements ------------------------------------------------------------------------

def runtime(rounds: int, size: int, batches: dict[str, int]) -> list[list[str]]:
    import torch

    from archspec.optimize import optimize

    rows = []
    for name, batch in batches.items():
        ours, ref = archspec_model(name, size), torchvision_model(name)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(batch, 3, size, size)

        def step(m: Any, x: Any = x) -> Callable[[], None]:
            def run() -> None:
                m.zero_grad(set_to_none=True)
                m(x).sum().backward()
            return run

        def infer(m: Any, x: Any = x) -> Callable[[], None]:
            def run() -> None:
                with torch.no_grad():
                    m(x)
            return run

        ours.train()
        ref.train()
        t = interleaved({"archspec": step(ours), "torchvision": step(ref)}, rounds)
        rows.append([f"forward+backward, {LABEL[name]} b{batch}", *ratio_cells(t["archspec"], t["torchvision"])])
        ours.eval()
        ref.eval()
        opt = archspec_model(name, size)
        opt.load_state_dict(ref.state_dict())  # torchvision's weights, then optimised: folding reads them
        fns = {"archspec": infer(ours), "torchvision": infer(ref), "optimized": infer(optimize(opt, "inference"))}
        t = interleaved(fns, rounds)
        rows.append([f"eval forward, {LABEL[name]} b{batch}", *ratio_cells(t["archspec"], t["torchvision"])])
        rows.append([f'`optimize="inference"`, {LABEL[name]} b{batch}', *ratio_cells(t["optimized"], t["torchvision"])])
    return rows


def inductor(rounds: int, size: int) -> list[list[str]]:
    """Both models under ``torch.compile(fullgraph=True)`` with inductor, which on the CPU
    generates C++ and needs a compiler: a row says so when it cannot run."""
    import torch
    from torch._dynamo.utils import counters
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

    from archspec.optimize import optimize

    name, batch = "resnet18", 8
    ref = torchvision_model(name)
    ours = archspec_model(name, size)
    ours.load_state_dict(ref.state_dict())
    opt = archspec_model(name, size)
    opt.load_state_dict(ref.state_dict())
    opt = optimize(opt, "inference")
    x = torch.randn(batch, 3, size, size)
    fast_ref, fast_ours = torch.compile(ref, fullgraph=True), torch.compile(ours, fullgraph=True)

    def step(m: Any) -> Callable[[], None]:
        def run() -> None:
            m.zero_grad(set_to_none=True)
            m(x).sum().backward()
        return run

    def infer(m: Any) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                m(x)
        return run

    label = LABEL[name]

    def compiled(fns: list[Callable[[], None]]) -> tuple[int, int]:
        """Run each (compiling it): inductor's graph cache hits and misses meanwhile."""
        hits, misses = counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]
        for fn in fns:
            fn()
        return counters["inductor"]["fxgraph_cache_hit"] - hits, counters["inductor"]["fxgraph_cache_miss"] - misses

    # A cache of its own, empty: each graph is compiled for torchvision first, then for archspec,
    # and a hit on archspec's says inductor was handed a graph it had already compiled.
    with tempfile.TemporaryDirectory() as cache, temporary_cache_dir(cache):
        try:
            compiled([step(fast_ref)])
        except Exception as e:  # noqa: BLE001 - any failure of inductor's toolchain is reported, not raised
            return [[f"`torch.compile` (inductor) not measured: {type(e).__name__}: "
                     f"{str(e).splitlines()[0][:120]}", "", "", ""]]
        hits, misses = compiled([step(fast_ours)])
        train = interleaved({"archspec": step(fast_ours), "torchvision": step(fast_ref), "eager": step(ref)}, rounds)
        ref.eval()
        ours.eval()
        compiled([infer(fast_ref)])
        more = compiled([infer(fast_ours)])
        hits, misses = hits + more[0], misses + more[1]
        evals = interleaved({"archspec": infer(fast_ours), "torchvision": infer(fast_ref), "eager": infer(ref),
                             "optimized": infer(opt)}, rounds)
    return [
        [f"forward+backward, {label} b{batch}, both compiled (compiled torchvision / eager: "
         f"{train['torchvision'] / train['eager']:.2f})", *ratio_cells(train["archspec"], train["torchvision"])],
        [f"eval forward, {label} b{batch}, both compiled (compiled torchvision / eager: "
         f"{evals['torchvision'] / evals['eager']:.2f})", *ratio_cells(evals["archspec"], evals["torchvision"])],
        [f'`optimize="inference"` (eager) / compiled torchvision, {label} b{batch}',
         *ratio_cells(evals["optimized"], evals["torchvision"])],
        [f"archspec's graphs (forward, backward, eval forward) that inductor found already compiled for "
         f"torchvision's: {hits} of {hits + misses}", "", "", ""],
    ]


def compile_time(rounds: int) -> list[list[str]]:
    rows = []
    for name in ("resnet18", "resnet50", "resnet152", "densenet121"):
        t = interleaved({"archspec": lambda n=name: archspec_model(n),  # type: ignore[misc]
                         "torchvision": lambda n=name: torchvision_model(n)}, rounds)  # type: ignore[misc]
        rows.append([f"`compile` vs constructor, {LABEL[name]}", *ratio_cells(t["archspec"], t["torchvision"])])
    return rows


def check_time(rounds: int) -> list[list[str]]:
    import archspec

    spec = ROOT / "specs/resnet.yaml"
    t = interleaved({"check": lambda: archspec.check(spec, {"depth": 152})}, rounds)
    rows = [["`check` ResNet-152, in process", f"{t['check'] * 1e3:.0f} ms", "", ""]]
    for units in (500, 1000, 2000):
        big = big_spec(units)
        n = len(archspec.load(big).nodes)
        t = interleaved({"check": lambda big=big: archspec.check(big)}, max(3, rounds // 2))  # type: ignore[misc]
        rows.append([f"`check` of a {n}-node spec ({units} block calls written out), in process",
                     f"{t['check']:.2f} s", "", f"{t['check'] / n * 1e6:.0f} µs a node"])
    py = sys.executable
    cli = [py, "-m", "archspec.cli", "check", str(spec), "-p", "depth=152"]
    imp = [py, "-c", "import torch"]
    # Byte-compiled modules, as an installed package has them (the first, warm-up run writes them).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(ROOT)}
    t = interleaved({"cli": lambda: subprocess.run(cli, check=True, capture_output=True, env=env),
                     "torch": lambda: subprocess.run(imp, check=True, capture_output=True, env=env)}, max(3, rounds // 2))
    rows.append(["`archspec check` ResNet-152, fresh process vs `import torch`",
                 f"{t['cli']:.2f} s", f"{t['torch']:.2f} s", f"{t['cli'] / t['torch']:.2f}"])
    return rows


def big_spec(units: int) -> str:
    """A spec of 7 * units + 3 nodes: ``units`` calls of a residual block, each written out
    on its own line (so the YAML grows with the graph, as a generated spec's does)."""
    lines = ["archspec: 1", "name: deep", "inputs: {x: [16, 8, 8]}", "blocks:", "  unit:",
             "    params: [{c: 16}]", "    nodes:",
             "      conv1: {op: conv, out: $c, k: 3}", "      bn1: {op: bn}", "      relu1: {op: relu}",
             "      conv2: {op: conv, out: $c, k: 3}", "      bn2: {op: bn}",
             "      add: {op: add, in: [bn2, input]}", "      relu2: {op: relu}", "nodes:"]
    lines += [f"  u{i}: {{block: unit, args: {{c: 16}}}}" for i in range(units)]
    lines += ["  pool: {op: adaptive_avgpool, size: 1}", "  flat: {op: flatten}", "  fc: {op: linear, out: 10}",
              "outputs: [fc]", ""]
    return "\n".join(lines)


def memory(size: int, batch: int) -> list[list[str]]:
    rows = []
    cases: list[tuple[str, dict[str, Any]]] = [("resnet50", {}), ("densenet121", {})]
    for name, kw in cases:
        ours = peak_in_subprocess("archspec", name, size, batch, kw)
        ref = peak_in_subprocess("torchvision", name, size, batch, kw)
        rows.append([f"training step peak memory, {LABEL[name]} b{batch}", f"{ours / 2**20:.0f} MiB",
                     f"{ref / 2**20:.0f} MiB", f"{ours / ref:.2f}"])
    plain = peak_in_subprocess("archspec", "densenet121", size, batch, {})
    lean = peak_in_subprocess("archspec", "densenet121", size, batch, {"memory_efficient": True})
    tv_lean = peak_in_subprocess("torchvision", "densenet121", size, batch, {"memory_efficient": True})
    tv_plain = peak_in_subprocess("torchvision", "densenet121", size, batch, {})
    rows.append([f"`memory_efficient: true` / without, DenseNet-121 b{batch} (torchvision's option: "
                 f"{tv_lean / tv_plain:.2f})", f"{lean / 2**20:.0f} MiB", f"{plain / 2**20:.0f} MiB",
                 f"{lean / plain:.2f}"])
    return rows


def peak_in_subprocess(side: str, name: str, size: int, batch: int, kw: dict[str, Any]) -> int:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 16), "PYTHONPATH": str(ROOT)}
    job = json.dumps({"side": side, "name": name, "size": size, "batch": batch, "kw": kw})
    out = subprocess.run([sys.executable, __file__, "--peak", job], check=True, capture_output=True, text=True, env=env)
    return int(out.stdout.strip().splitlines()[-1])


def _peak_child(job: dict[str, Any]) -> None:
    """In a fresh process: build the model, run one step, then the bytes the second training
    step adds at its peak (gradients set to None in between, so they are allocated again)."""
    import torch

    torch.set_num_threads(1)
    if job["side"] == "archspec":
        model = archspec_model(job["name"], job["size"], params=job["kw"])
    else:
        model = torchvision_model(job["name"], **job["kw"])
    model.train()
    x = torch.randn(job["batch"], 3, job["size"], job["size"])
    model(x).sum().backward()  # warm-up: lazy imports and one-time state are not the step's
    model.zero_grad(set_to_none=True)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident size (VmHWM)
    before = _status_kb("VmRSS")
    model(x).sum().backward()
    print((_status_kb("VmHWM") - before) * 1024)


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


# -- the page ------------------------------------------------------------------------------

def ratio_cells(ours: float, ref: float) -> list[str]:
    return [_t(ours), _t(ref), f"{ours / ref:.2f}"]


def _t(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 2 else f"{s:.2f} s"


def machine() -> str:
    import pydantic
    import torch
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; Python "
            f"{platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
            f"pydantic {pydantic.__version__}; one torch thread")


def page(sections: list[tuple[str, str, list[list[str]]]], args: argparse.Namespace, seconds: float) -> str:
    lines = ["# Performance", "",
             "Generated by `make bench` (`python benchmarks/bench.py --write docs/performance.md`); do not edit",
             "by hand. Every ratio is archspec / torchvision (or optimised / plain) from medians of runs",
             "interleaved in one process, both sides back to back each round, so a busy machine slows both",
             "alike. Below 1.00 archspec is faster or smaller. The script reports and asserts nothing; the",
             "tests assert no timing.", "",
             f"Machine: {machine()}.", "",
             f"Settings: {args.rounds} rounds per figure, {args.size}x{args.size} images"
             f"{' (--quick: a smoke test, not the reference figures)' if args.quick else ''}; the whole run took "
             f"{seconds / 60:.1f} min. Clock: {CLOCK_TEXT[CLOCK]}. Load average (1 min) at the start "
             f"{args.load[0]:.1f}, at the end {os.getloadavg()[0]:.1f}, on {os.cpu_count()} cores"
             f"{' (a shared, busy machine: every figure has more noise than on an idle one)' if max(args.load[0], os.getloadavg()[0]) > 1.5 else ''}.",
             ""]
    for title, note, rows in sections:
        lines += [f"## {title}", "", note, "", "| what | archspec | torchvision | ratio |", "|---|---:|---:|---:|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    lines += WHERE_THE_TIME_GOES
    lines += ["## How archspec gets there", "",
              "- **In place where autograd allows it** (archspec/passes/inplace.py): an activation or a residual",
              "  add overwrites its input when that tensor is fresh, read by nothing else, and not saved for",
              "  backward by the op that made it (`bn -> relu`, `bn2 += identity -> relu`), as torchvision",
              "  writes `ReLU(inplace=True)` and `out += identity`. `compile(..., inplace=False)` turns it off.",
              '- **`optimize="inference"`** (archspec/optimize.py): batch norms folded into the conv before them,',
              "  dropout dropped, everything in place, a relu after a conv applied by oneDNN in the conv's pass,",
              "  a residual `add` (and the `relu` after it) that reads a conv's output done by oneDNN's sum",
              "  post-op, the conv accumulating into the identity's memory when the add reads it last,",
              "  channels_last, and every 2-d conv on oneDNN's kernel with its weight kept in oneDNN's layout",
              "  (archspec/onednn.py:",
              "  PyTorch sends a 1x1 conv of a small batch on one thread to an im2col+GEMM path that also copies",
              "  channels_last tensors, twice as slow). Outputs equal the eval model within 1e-5 relative",
              "  (tests/test_optimize.py).",
              "- **`memory_efficient: true`** on a dense repeat (archspec/recompute.py): each layer's",
              "  concat-bn-relu-conv is recomputed in backward under `torch.utils.checkpoint`, with the",
              "  running statistics updated once, so outputs, gradients and statistics equal the plain model's.",
              "", "## Reproduce", "", "```", "make bench            # this page", "python benchmarks/bench.py --quick",
              "make bench-cuda       # on a CUDA machine: docs/performance-cuda.md (training and inference img/s)",
              "```", ""]
    return "\n".join(lines)


CLOCK_TEXT = {"cpu": "CPU time (user + system) of the measuring process and the processes it ran, so that "
                     "other programs on a shared machine do not count", "wall": "wall time"}

# Profiles (cProfile with the CPU clock, and torch.profiler) taken while making these figures.
WHERE_THE_TIME_GOES = [
    "## Where the time goes", "",
    '- **`optimize="inference"`, ResNet-50 b4**: convolutions are 94% of the time. Before archspec/onednn.py',
    "  the 33 1x1 convs (half of the MACs) took PyTorch's im2col+GEMM path (`_slow_conv2d_forward`, chosen",
    "  for batch < 16 on one thread) and 36 channels_last copies a forward; channels_last alone gave 1.10x",
    "  here and folding removed the batch norms' 6%. oneDNN runs those convs about 2x faster. The residual",
    "  add and relu were 3% (now written by the bottleneck's last conv into the identity's memory, which",
    "  also saves allocating a fresh output), as was each relu after a conv (now oneDNN's relu post-op, in",
    "  the conv's own pass). oneDNN reordered every conv's weight into its blocked layout on each call;",
    "  each conv now keeps the reordered weight. Side by side in one interleaved run (9 rounds, time /",
    "  torchvision's): relu post-op only 0.73, with the sum post-op 0.68, with kept weights 0.66; runs",
    "  of the whole benchmark on this machine gave 0.71 and 0.72.",
    "  What remains is the convolutions' arithmetic: 16.4 GMAC a batch of 4, which oneDNN's AVX-512",
    "  kernels (brgemm, NHWC, no reorders: `ONEDNN_VERBOSE=1`) ran at 64 to 79 GMAC/s on one core here,",
    "  against 42 to 57 for torchvision's eager model in the same runs (the machine's speed drifts).",
    "  Fewer operations (Winograd) would change the results by more than float rounding.",
    "- **`compile` DenseNet-121** (CPU clock): torchvision's constructor builds the modules, drawing",
    "  PyTorch's default initialisation, then draws its own (kaiming normal over fan_in for the 120 convs).",
    "  specs/densenet.yaml asks for the same init (`init: {scheme: kaiming_normal, mode: fan_in,",
    "  zero_linear_bias: true}`), so archspec builds those convs with `torch.nn.init` skipped (a",
    "  `TorchFunctionMode`) and draws once. Measured phase by phase in separate runs (medians, CPU clock),",
    "  when the whole took 95-106 ms for archspec and 78-84 ms for torchvision (this machine's speed drifts",
    "  by a fifth between runs): both spend about 23 ms constructing the same modules and 22-26 ms on the",
    "  kaiming draw (6.9 M values at 3.2 ns each, page faults included). Torchvision also spends 22 ms on",
    "  the default draw that its init then overwrites. archspec instead spends 12 ms on its",
    "  passes (YAML, expand, infer, project, check: 27 µs a node over 429 nodes) and 24 ms in torch.fx:",
    "  10 ms creating the nodes (4 ms of it fx's own `create_node`, half of that its walk of every",
    "  argument for symbolic sizes, which grows with each dense concat's input list), 5.4 ms generating",
    "  the 88 KB forward, 5.8 ms in Python's `compile()` of it and 2.6 ms installing it; the in-place",
    "  pass, `lint` and name checks take 3 ms. Tried and left out: copying a module whose op, attributes",
    "  and input shapes repeat an earlier one's (then `reset_parameters()`, so the draws match) instead",
    "  of constructing it saved 2 ms here (110 of 242 modules) and 5 ms on ResNet-152; naming fx nodes at",
    "  creation instead of renaming them did not measure above the noise. The gap left is per-node work",
    "  in archspec and fx; closing it would take a code generator other than fx's, or reusing generated",
    "  code across calls, which this benchmark, calling `compile` again and again, should not credit.",
    "  Building these convs on the meta device instead (as before) cost 9 ms more: the meta `uniform_` is",
    "  a Python decomposition. Removed earlier: fx's copy of the module tree (`GraphModule(root, graph)`",
    "  rebuilt every dotted path: a quarter of emit), a rename of every `call_module` node, a re-validation",
    "  of every node's attributes in the in-place pass, a re-parse of every expression per block instance,",
    "  and the expansion of 57 of the 58 dense layers (identical instances are copied: expand went from",
    "  16 ms to 7).",
    "- **`archspec check` from a fresh process**: about two thirds is importing: pydantic (0.09 s alone),",
    "  yaml and click, and archspec's own modules, where creating its 42 dataclasses and its op attribute",
    "  models is most of the time; then building the pydantic models for the ops the spec names (now",
    "  without a `defaults:` model for ops the spec's `defaults:` does not name) and the check itself.",
    "  With `PYTHONDONTWRITEBYTECODE` set (as on this machine) every archspec module is compiled from",
    "  source each run (about +0.1 s): the benchmark measures with byte-compiled modules, as installed.",
    "- **`check` of a large spec** (2,000 calls of one block): each call used to be bound, planned,",
    "  ordered and validated again, and expand was 60% of the time. Now a block instance that cannot",
    "  differ from an earlier one (same block, params and left-out inputs, and no read of an input's",
    "  shape) is copied, its names renamed; each scope is planned once and each distinct node's",
    "  attributes validated once; nodes already in dependency order skip the sort. Python's cyclic",
    "  collector is paused while the passes build (in a process that holds models, as this one does, it",
    "  walked the whole heap several times a check). What remains is about a third YAML (LibYAML's",
    "  events, PyYAML's composer, archspec's builder recording every value's place), a third expand",
    "  (copying: one new `Node` per node), infer and check the rest. On the (slower) machine these",
    "  changes were made on, the code before them took 1.35 s for this spec and the code after 0.61 s,",
    "  each in a fresh process.",
    "",
]


def publish(text: str, path: Path | None) -> None:
    """Write the page to ``path`` (atomically, as archspec writes files), or print it."""
    if path is None:
        print(text)
        return
    from archspec.io import write_text

    write_text(path, text, force=True)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="write the Markdown page here")
    ap.add_argument("--quick", action="store_true", help="small inputs and 3 rounds: checks the script runs")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--peak", help=argparse.SUPPRESS)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="what a timing counts (default: cpu)")
    args = ap.parse_args()
    global CLOCK
    CLOCK = args.clock
    args.load = os.getloadavg()
    if args.peak:
        _peak_child(json.loads(args.peak))
        return
    import torch

    torch.set_num_threads(1)
    args.rounds = args.rounds or (3 if args.quick else 9)
    args.size = 64 if args.quick else 224
    start = time.perf_counter()
    batches = {"resnet18": 8, "resnet50": 4, "densenet121": 4, "mobilenet_v2": 8}
    sections = [
        ("Runtime on the CPU", "Forward+backward in training mode and forward under `torch.no_grad` in eval "
         "mode, torchvision's weights loaded into archspec's model.", runtime(args.rounds, args.size, batches)),
        ("Memory", "Peak resident memory one training step adds (activations, gradients, workspace), each model "
         "in a fresh process.", memory(args.size, 4)),
        ("`torch.compile` with inductor", "Both models compiled with `torch.compile(fullgraph=True)` (inductor's "
         "C++ kernels on the CPU), torchvision's weights in both; the eager `optimize=\"inference\"` model against "
         "compiled torchvision.", inductor(args.rounds, args.size)),
        ("Compile time", "`archspec.compile(spec)` (YAML to an initialised GraphModule) against torchvision's "
         "constructor.", compile_time(args.rounds)),
        ("Checking without torch", "`check` never imports torch.", check_time(args.rounds)),
    ]
    text = page(sections, args, time.perf_counter() - start)
    publish(text, args.write)


if __name__ == "__main__":
    main()
