"""Hypothesis strategies: valid specs, and mutations of them.

:func:`specs` draws a *valid* spec together with what it must compile to: the set of
merge nodes whose inputs differ in shape (a projection must be inserted exactly where they cannot broadcast)
and every output shape the generator worked out by hand. It covers conv (strides,
groups), bn, relu, max/avg pool, concat, residual ``add`` with channel and stride
mismatches under every projection policy, inline groups, blocks repeated as a chain
and as a dense (DenseNet) repeat, and a pooled linear head. Inputs stay tiny (1-4
channels, 4-16 px) so hundreds of examples compile and run in seconds.

:func:`mutated` takes such a spec (or a shipped one) and breaks it: deleted keys,
retyped values, swapped references, duplicated names, truncated text, random bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"
# Read once: the texts must not change between examples (hypothesis replays them).
ZOO = {p.name: p.read_text() for p in sorted(SPECS_DIR.glob("*.yaml")) if "archspec:" in p.read_text()}

Shape = tuple[int, ...]


@dataclass
class GenSpec:
    """A generated spec: its data, its YAML text, and the facts a compile must match."""

    data: dict[str, Any]
    projected: set[str] = field(default_factory=set)  # merges that need a projection
    shapes: dict[str, Shape] = field(default_factory=dict)  # IR node -> per-sample shape
    policy: str = "conv_bn"

    @property
    def text(self) -> str:
        return dump(self.data)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


def _joined(branch: tuple[int, ...], skip: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """A residual add's shape, and whether it needs a projection: the inputs broadcast
    dims of size 1 as torch does; only shapes that cannot broadcast are projected."""
    if branch == skip:
        return branch, False
    if all(a == b or 1 in (a, b) for a, b in zip(branch, skip, strict=True)):
        return tuple(max(a, b) for a, b in zip(branch, skip, strict=True)), False
    return branch, True


def _down(n: int, s: int) -> int:
    """Size after a 3x3 'auto'-padded conv (or a 1x1 projection) of stride s: ceil(n/s)."""
    return math.ceil(n / s)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def specs(draw: st.DrawFn, max_layers: int = 6) -> GenSpec:
    """A valid spec, its expected projections and shapes."""
    c = draw(st.integers(1, 4))
    h = draw(st.integers(4, 16))
    w = draw(st.integers(4, 16))
    policy = draw(st.sampled_from(["conv_bn", "avgpool_conv_bn", "zero_pad"]))
    g = GenSpec(data={}, policy=policy)
    nodes: dict[str, Any] = {}
    blocks: dict[str, Any] = {}
    shape: Shape = (c, h, w)
    n_layers = draw(st.integers(1, max_layers))

    def out_channels(cin: int, allow_fewer: bool = True) -> int:
        lo = cin if policy == "zero_pad" and not allow_fewer else 1
        return draw(st.integers(lo, max(lo, 8)))

    for k in range(n_layers):
        cin, hh, ww = shape
        kind = draw(st.sampled_from(["conv", "gconv", "bn_relu", "pool", "residual", "concat",
                                     "group", "chain", "dense"]))
        if kind == "conv":
            out = out_channels(cin)
            ksz = draw(st.sampled_from([1, 3]))
            stride = draw(st.sampled_from([1, 2]))
            nodes[f"conv{k}"] = {"op": "conv", "out": out, "k": ksz, "stride": stride}
            shape = (out, _down(hh, stride), _down(ww, stride))
            g.shapes[f"conv{k}"] = shape
        elif kind == "gconv":
            groups = draw(st.sampled_from(_divisors(cin)))
            out = groups * draw(st.integers(1, max(1, 8 // groups)))
            nodes[f"gconv{k}"] = {"op": "conv", "out": out, "k": 3, "groups": groups, "bias": False}
            shape = (out, hh, ww)
            g.shapes[f"gconv{k}"] = shape
        elif kind == "bn_relu":
            nodes[f"bn{k}"] = {"op": "bn"}
            nodes[f"relu{k}"] = {"op": "relu"}
            g.shapes[f"bn{k}"] = g.shapes[f"relu{k}"] = shape
        elif kind == "pool":
            if hh < 2 or ww < 2:
                continue
            op = draw(st.sampled_from(["maxpool", "avgpool"]))
            nodes[f"pool{k}"] = {"op": op, "k": 2}
            shape = (cin, hh // 2, ww // 2)
            g.shapes[f"pool{k}"] = shape
        elif kind == "residual":
            # add: [branch, skip]; the skip (input 1) is projected onto the branch's shape.
            src = list(nodes)[-1] if nodes else "x"
            out = out_channels(cin, allow_fewer=False)
            stride = draw(st.sampled_from([1, 2]))
            nodes[f"res{k}_conv"] = {"op": "conv", "in": src, "out": out, "k": 3, "stride": stride, "bias": False}
            nodes[f"res{k}_bn"] = {"op": "bn"}
            nodes[f"res{k}_add"] = {"op": "add", "in": [f"res{k}_bn", src]}
            new = (out, _down(hh, stride), _down(ww, stride))
            joined, projected = _joined(new, shape)
            if projected:
                g.projected.add(f"res{k}_add")
            g.shapes[f"res{k}_conv"] = g.shapes[f"res{k}_bn"] = new
            g.shapes[f"res{k}_add"] = joined
            shape = joined
        elif kind == "concat":
            src = list(nodes)[-1] if nodes else "x"
            a, b = draw(st.integers(1, 4)), draw(st.integers(1, 4))
            with_input = draw(st.booleans())
            nodes[f"br{k}a"] = {"op": "conv", "in": src, "out": a, "k": 1}
            nodes[f"br{k}b"] = {"op": "conv", "in": src, "out": b, "k": 3}
            ins = [f"br{k}a", f"br{k}b"] + ([src] if with_input else [])
            nodes[f"cat{k}"] = {"op": "concat", "in": ins}
            g.shapes[f"br{k}a"] = (a, hh, ww)
            g.shapes[f"br{k}b"] = (b, hh, ww)
            shape = (a + b + (cin if with_input else 0), hh, ww)
            g.shapes[f"cat{k}"] = shape
        elif kind == "group":
            out = out_channels(cin)
            nodes[f"grp{k}"] = {"nodes": {"conv": {"op": "conv", "out": out, "k": 3}, "act": {"op": "relu"}}}
            shape = (out, hh, ww)
            g.shapes[f"grp{k}.conv"] = g.shapes[f"grp{k}.act"] = shape
        elif kind == "chain":
            bname = f"basic{k}"
            residual = draw(st.booleans())
            bnodes: dict[str, Any] = {
                "conv": {"op": "conv", "out": "$out", "k": 3, "stride": "$stride", "bias": False},
                "bn": {"op": "bn"},
            }
            if residual:
                bnodes["add"] = {"op": "add", "in": ["bn", "input"]}
            bnodes["relu"] = {"op": "relu"}
            blocks[bname] = {"params": ["out", {"stride": 1}], "nodes": bnodes}
            reps = draw(st.integers(1, 3))
            out = out_channels(cin, allow_fewer=False)
            first_stride = draw(st.sampled_from([1, 2]))
            call: dict[str, Any] = {"block": bname, "repeat": reps,
                                    "args": {"out": out, "stride": f"${{{first_stride} if i == 0 else 1}}"}}
            nodes[f"stage{k}"] = call
            for i in range(reps):
                s = first_stride if i == 0 else 1
                new = (out, _down(shape[1], s), _down(shape[2], s))
                joined, projected = _joined(new, shape) if residual else (new, False)
                for leaf in bnodes:
                    g.shapes[f"stage{k}.{i}.{leaf}"] = new if leaf in ("conv", "bn") else joined
                if projected:
                    g.projected.add(f"stage{k}.{i}.add")
                shape = joined
        else:  # dense
            bname = f"dense{k}"
            blocks[bname] = {"params": ["growth"], "nodes": {
                "bn": {"op": "bn"}, "relu": {"op": "relu"},
                "conv": {"op": "conv", "out": "$growth", "k": 3, "bias": False}}}
            reps = draw(st.integers(1, 3))
            growth = draw(st.integers(1, 4))
            nodes[f"dense{k}"] = {"block": bname, "repeat": reps, "connect": "dense", "args": {"growth": growth}}
            for i in range(reps):
                g.shapes[f"dense{k}.{i}.conv"] = (growth, hh, ww)
            shape = (cin + reps * growth, hh, ww)
            g.shapes[f"dense{k}.cat"] = shape

    if not nodes:
        nodes["relu_only"] = {"op": "relu"}
        g.shapes["relu_only"] = shape
    out_name = list(nodes)[-1]
    if draw(st.booleans()):
        features = draw(st.integers(1, 8))
        nodes["gap"] = {"op": "adaptive_avgpool", "size": 1}
        nodes["flat"] = {"op": "flatten"}
        nodes["fc"] = {"op": "linear", "out": features}
        g.shapes["gap"] = (shape[0], 1, 1)
        g.shapes["flat"] = (shape[0],)
        g.shapes["fc"] = (features,)
        out_name = "fc"
    data: dict[str, Any] = {"archspec": 1, "name": "fuzz", "inputs": {"x": [c, h, w]},
                            "defaults": {"projection": {"kind": policy}}}
    if blocks:
        data["blocks"] = blocks
    data["nodes"] = nodes
    data["outputs"] = [out_name]
    g.data = data
    return g


# -- mutations ----------------------------------------------------------------------------

_WEIRD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0, -1, 10**9, 2**63, 10**19]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["$nope", "${1/0}", "${x}", "${[1]*9}", "no", "on", "prev", "input", "x", "enc[3]",
                     "a -> b", "${i}", "$$", "${", "forward", "a.b", "", " ", "0x10", "1e3"]),
    st.lists(st.integers(-1, 4), max_size=3), st.dictionaries(st.sampled_from(["a", "in", "op", "x"]),
                                                              st.integers(0, 3), max_size=2),
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a nested dict/list tree."""
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


def _strings(data: Any) -> list[str]:
    return [v for p in _paths(data) if isinstance(v := _get(data, p), str)] + \
        [k for p in _paths(data) if isinstance(d := _get(data, p), dict) for k in d]


@st.composite
def mutate_data(draw: st.DrawFn, data: Any) -> Any:
    """One structural mutation of a spec tree (a deep copy is changed)."""
    import copy

    data = copy.deepcopy(data)
    paths = [p for p in _paths(data) if p]
    if not paths:
        return draw(_WEIRD_VALUES)
    path = draw(st.sampled_from(paths))
    parent = _get(data, path[:-1])
    key = path[-1]
    how = draw(st.sampled_from(["delete", "retype", "swap", "rename_key", "duplicate"]))
    if how == "delete":
        del parent[key]
    elif how == "retype":
        parent[key] = draw(_WEIRD_VALUES)
    elif how == "swap":
        words = _strings(data) or ["x"]
        parent[key] = draw(st.sampled_from(words))
    elif how == "rename_key" and isinstance(parent, dict):
        words = _strings(data) or ["x"]
        new = draw(st.sampled_from(words))
        value = parent.pop(key)
        parent[new] = value
    elif how == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    elif how == "duplicate" and isinstance(parent, dict):
        # A copy of the entry under the name of a sibling (two nodes, one name once emitted).
        other = draw(st.sampled_from(list(parent)))
        parent[other] = copy.deepcopy(parent[key])
    return data


@st.composite
def mutate_text(draw: st.DrawFn, text: str) -> bytes:
    """A text-level mutation: truncation, a duplicated line, random bytes, a YAML oddity."""
    raw = text.encode()
    how = draw(st.sampled_from(["truncate", "dup_line", "bytes", "splice", "indent"]))
    if how == "truncate":
        return raw[: draw(st.integers(0, len(raw)))]
    lines = text.splitlines(keepends=True)
    if how == "dup_line" and lines:
        i = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[: i + 1] + [lines[i]] + lines[i + 1:]).encode()
    if how == "indent" and lines:
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = draw(st.sampled_from([" ", "\t", "  - ", "? ", "&a ", "*a ", "!!python/name:os.system "])) + lines[i]
        return "".join(lines).encode()
    pos = draw(st.integers(0, len(raw)))
    if how == "bytes":
        junk = draw(st.binary(min_size=1, max_size=8))
    else:
        junk = draw(st.sampled_from([b"{", b"[", b"]", b"}", b":", b"- ", b"'", b'"', b"\n", b"&x ", b"*x", b"<<: ",
                                     b"!!binary ", b"%YAML 1.1\n", b"---\n", b"\xef\xbb\xbf", b"\x00", b"#"]))
    return raw[:pos] + junk + raw[pos:]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """Bytes of a broken spec: a generated or shipped spec after 1-3 mutations."""
    if ZOO and draw(st.booleans()):
        text = ZOO[draw(st.sampled_from(sorted(ZOO)))]
        data = yaml.safe_load(text)
    else:
        data = draw(specs(max_layers=3)).data
        text = dump(data)
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 3)) == 0:
            return draw(mutate_text(text))
        data = draw(mutate_data(data))
        text = dump(data)
    return text.encode()
