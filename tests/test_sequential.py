"""Sequential groups (`nodes:` as a list, named by position as nn.Sequential) and dotted
references into scopes (`encoder.layer2`, `conv1.0`), against hand-written torch modules."""

from __future__ import annotations

import pytest
import torch
from helpers import one_thread, run_passes  # noqa: F401  (one_thread: autouse fixture)
from torch import nn

import archspec
from archspec.errors import GraphError, SpecValidationError

HEAD = """
archspec: 1
name: t
inputs: {x: [3, 16, 16]}
"""


def _same(model: nn.Module, ref: nn.Module, shape: tuple[int, ...] = (2, 3, 16, 16)) -> None:
    """Same keys in the same order, a strict load, equal eval outputs."""
    assert list(model.state_dict()) == list(ref.state_dict())
    torch.manual_seed(1)
    for p in ref.parameters():
        nn.init.normal_(p)
    for name, b in ref.named_buffers():
        if name.endswith("running_var"):
            b.uniform_(0.5, 2.0)
        elif name.endswith("running_mean"):
            b.normal_()
    model.load_state_dict(ref.state_dict(), strict=True)
    model.eval()
    ref.eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert torch.equal(got, want)


class DeepStem(nn.Module):
    """timm's ResNet-D deep stem (resnet50d): conv1 is an nn.Sequential of seven modules."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, stride=1, padding=1, bias=False))
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.act1(self.bn1(self.conv1(x))))


def test_deep_stem_loads_with_sequential_names():
    model = archspec.compile(HEAD + """
defaults: {conv: {bias: false}}
nodes:
  conv1:
    nodes:
      - {op: conv, out: 32, k: 3, stride: 2}
      - {op: bn}
      - {op: relu}
      - {op: conv, out: 32, k: 3}
      - {op: bn}
      - {op: relu}
      - {op: conv, out: 64, k: 3}
  bn1: {op: bn}
  act1: {op: relu}
  maxpool: {op: maxpool, k: 3, stride: 2, padding: 1}
outputs: [maxpool]
""")
    assert "conv1.6.weight" in model.state_dict()
    _same(model, DeepStem())


class Conv2dReLU(nn.Sequential):
    """smp's Conv2dReLU: conv, bn, relu as positions 0, 1, 2."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    """smp's Unet DecoderBlock: upsample, concat the skip, two Conv2dReLU."""

    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.conv1 = Conv2dReLU(cin + skip, cout)
        self.conv2 = Conv2dReLU(cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv2(self.conv1(torch.cat([x, skip], dim=1)))


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return s, self.layer1(s)


class EncDec(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = nn.Module()
        self.decoder.block = DecoderBlock(16, 8, 8)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, f = self.encoder(x)
        return self.head(self.decoder.block(f, s))


ENCDEC = HEAD + """
defaults: {conv: {bias: false}}
blocks:
  conv_relu:
    params: [out]
    nodes:
      - {op: conv, out: $out, k: 3}
      - {op: bn}
      - {op: relu}
  decoder_block:
    params: [out]
    inputs: [x, skip]
    nodes:
      up: {op: upsample, scale: 2, in: x}
      cat: {op: concat, in: [up, skip]}
      conv1: {block: conv_relu, args: {out: $out}}
      conv2: {block: conv_relu, args: {out: $out}}
nodes:
  encoder:
    nodes:
      stem:
        nodes:
          - {op: conv, out: 8, k: 3}
          - {op: bn}
          - {op: relu}
      layer1:
        nodes:
          - {op: maxpool, k: 2}
          - {op: conv, out: 16, k: 3}
          - {op: relu}
  decoder:
    in: encoder
    nodes:
      block: {block: decoder_block, in: {x: input, skip: encoder.stem}, args: {out: 8}}
  head: {op: conv, out: 2, k: 1, bias: true}
outputs: [head]
"""


def test_encoder_and_decoder_scopes_read_each_others_stages():
    """smp's layout: the decoder is a scope of its own and reads the encoder's stages by
    dotted name; block bodies may be sequential lists (Conv2dReLU)."""
    model = archspec.compile(ENCDEC)
    assert "decoder.block.conv1.0.weight" in model.state_dict()
    _same(model, EncDec())


def test_top_level_list_is_a_tutorial_sequential():
    ref = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                        nn.Flatten(), nn.Linear(16, 10))
    model = archspec.compile(spec := """
archspec: 1
name: seq
inputs: {x: [3, 14, 14]}
nodes:
  - {op: conv, out: 6, k: 5, padding: 0}
  - {op: relu}
  - {op: maxpool, k: 2}
  - {op: conv, out: 16, k: 5, padding: 0}
  - {op: relu}
  - {op: flatten}
  - {op: linear, out: 10}
outputs: ["6"]
""")
    assert [n.name for n in run_passes(spec).nodes] == [str(k) for k in range(7)]
    _same(model, ref, (2, 3, 14, 14))


def test_nested_lists_name_model_2_0():
    ref = nn.Module()
    ref.model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)))
    ref.forward = ref.model.forward  # type: ignore[method-assign]
    model = archspec.compile(HEAD + """
nodes:
  model:
    nodes:
      - {op: conv, out: 4, k: 1}
      - {op: relu}
      - nodes:
          - {op: conv, out: 4, k: 1}
          - {op: bn}
outputs: [model]
""")
    assert list(model.state_dict())[2:4] == ["model.2.0.weight", "model.2.0.bias"]
    _same(model, ref)


def test_list_elements_take_blocks_repeats_and_when():
    g = run_passes(HEAD + """
params: {extra: false}
blocks:
  cbr:
    params: [out]
    nodes: [{op: conv, out: $out, k: 3}, {op: relu}]
nodes:
  features:
    nodes:
      - {block: cbr, args: {out: 4}}
      - {block: cbr, repeat: 2, args: {out: 8}}
      - {op: relu, when: $extra}
outputs: [features, features.1.0.0]
""")
    assert [n.name for n in g.nodes] == ["features.0.0", "features.0.1", "features.1.0.0", "features.1.0.1",
                                         "features.1.1.0", "features.1.1.1", "features.2"]
    assert g.node("features.2").disabled and g.outputs == ("features.2", "features.1.0.0")


def test_dotted_references_resolve_outward():
    g = run_passes(HEAD + """
nodes:
  enc:
    nodes:
      a: {op: conv, out: 4, k: 1}
      b: {op: conv, out: 4, k: 1}
  dec:
    nodes:
      enc: {op: relu, in: input}          # an inner 'enc' hides nothing: enc.a is looked up outward
      m: {op: add, in: [enc, enc.a]}
  late: {op: add, in: [early.0, dec.m]}   # a forward reference orders the nodes
  early: {in: enc.b, nodes: [{op: relu}]}
outputs: [late]
""")
    assert g.node("dec.m").inputs == ("dec.enc", "enc.a")
    assert g.node("late").inputs == ("early.0", "dec.m")


@pytest.mark.parametrize(("ref", "message"), [
    ("enc.layr2", r"unknown node 'enc.layr2': 'enc' has no node 'layr2' \(did you mean 'layer2'\?\)"),
    ("enc.c", r"unknown node 'enc.c': 'enc' has no node 'c' \(it has a, layer2\)"),
    ("enc.layer2.1", r"unknown node 'enc.layer2.1': 'enc.layer2' has no node '1' \(it has 0\)"),
    ("enc.a.weight", r"unknown node 'enc.a.weight': 'enc.a' is an op node, with no nodes inside"),
    ("enx.a", r"unknown node 'enx.a': 'enx' is not defined here \(did you mean 'enc'\?\)"),
])
def test_a_dotted_path_that_does_not_exist(ref: str, message: str):
    with pytest.raises(GraphError, match=message) as e:
        run_passes(HEAD + f"""
blocks:
  b: {{nodes: {{c: {{op: relu}}}}}}
nodes:
  enc:
    nodes:
      a: {{op: conv, out: 4, k: 1}}
      layer2: {{block: b, repeat: 1}}
  use: {{op: add, in: [enc, "{ref}"]}}
outputs: [use]
""")
    assert e.value.loc is not None and (e.value.loc.line, e.value.loc.col) == (12, 28)


def test_a_block_body_does_not_see_outside_by_dotted_name():
    with pytest.raises(GraphError, match=r"unknown node 'enc.a': 'enc' is not defined here"):
        run_passes(HEAD + """
blocks:
  b: {nodes: {c: {op: add, in: [input, enc.a]}}}
nodes:
  enc: {nodes: {a: {op: relu}}}
  call: {block: b}
outputs: [call]
""")


@pytest.mark.parametrize(("body", "message"), [
    ("g: {nodes: [{op: relu}, {op: relu, in: x}]}",
     r"element 1 of a sequential nodes: list has in:; each element reads the one before it"),
    ("g: {nodes: [{op: relu}], edges: ['x -> 0']}", r"g: a sequential nodes: list takes no edges:"),
    ("g: {nodes: [{op: relu}], output: '0'}", r"g: a sequential nodes: list takes no output:"),
])
def test_sequential_list_mistakes(body: str, message: str):
    with pytest.raises(GraphError, match=message):
        run_passes(HEAD + f"nodes:\n  {body}\noutputs: [g]\n")


def test_a_top_level_list_needs_one_input():
    with pytest.raises(GraphError, match=r"nodes: a sequential nodes: list reads the scope's one input, and there "
                                         r"is none to read"):
        run_passes("archspec: 1\nname: t\ninputs: {x: [3], y: [3]}\nnodes: [{op: relu}]\noutputs: ['0']\n")


def test_a_bad_element_is_reported_at_its_line():
    with pytest.raises(SpecValidationError, match=r"nodes.g.nodes.1.k") as e:
        run_passes(HEAD + "nodes:\n  g:\n    nodes:\n      - {op: relu}\n      - {op: conv, out: 4, k: -1}\n"
                   "outputs: [g]\n")
    assert e.value.loc is not None and e.value.loc.line == 8
