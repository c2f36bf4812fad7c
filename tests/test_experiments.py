"""archspec gradflow and filters: numbers held against a direct autograd computation on
the hand-written reference network, pictures checked through the figures they draw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from helpers import ROOT
from reference_models import resnet_cifar

import archspec
from archspec.analyse import parse_vary
from archspec.cli import main
from archspec.errors import ArchSpecError, SpecValidationError
from archspec.experiments import (
    filter_grid,
    filters_figure,
    gradflow,
    gradflow_figure,
    png_bytes,
    variants,
)
from archspec.weights import save_weights

SPEC = ROOT / "specs" / "resnet_cifar.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args: object, ok: int = 0) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == ok, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    return r.output


def trained_like_weights(tmp_path: Path, residual: bool) -> Path:
    """Weights that differ from any initialisation (running stats included)."""
    torch.manual_seed(11)
    m = archspec.compile(SPEC, {"n": 1, "residual": residual})
    with torch.no_grad():
        for k, v in m.state_dict().items():
            if v.is_floating_point():
                v.add_(0.05 * torch.randn_like(v)) if not k.endswith("running_var") else v.uniform_(0.5, 1.5)
    return save_weights(m, tmp_path / f"w_{residual}.safetensors")


@pytest.mark.parametrize("residual,train", [(True, True), (False, True), (False, False)])
def test_gradflow_equals_direct_autograd_on_the_reference(tmp_path: Path, residual: bool, train: bool):
    weights = trained_like_weights(tmp_path, residual)
    (flow,) = gradflow(SPEC, {"n": 1, "residual": residual}, weights=weights, batch=4, seed=3, train=train)

    # The oracle: the hand-written network, the same weights, the batch drawn as documented.
    ref = resnet_cifar(n=1, residual=residual)
    from safetensors.torch import load_file

    ref.load_state_dict(load_file(str(weights)), strict=True)
    ref.train(train)
    g = torch.Generator().manual_seed(3)
    x = torch.randn((4, 3, 32, 32), generator=g)
    y = torch.randint(10, (4,), generator=g)
    loss = F.cross_entropy(ref(x), y)
    loss.backward()
    expected = []
    for name, mod in ref.named_modules():
        own = list(mod.parameters(recurse=False))
        if own:
            grad = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in own))
            weight = torch.sqrt(sum((p.detach().double() ** 2).sum() for p in own))
            expected.append((name, float(grad), float(weight)))

    assert flow.loss == pytest.approx(loss.item(), rel=1e-6)
    assert [la.name for la in flow.layers] == [e[0] for e in expected]
    assert len(flow.layers) == 15  # conv1, bn1, 3 blocks x (conv, bn, conv, bn), fc
    for la, (name, grad, weight) in zip(flow.layers, expected, strict=True):
        assert la.grad_norm == pytest.approx(grad, rel=1e-5), name
        assert la.weight_norm == pytest.approx(weight, rel=1e-9), name
        assert la.ratio == pytest.approx(grad / weight, rel=1e-5), name
    assert [la.op for la in flow.layers][:3] == ["conv", "bn", "conv"] and flow.layers[-1].op == "linear"
    assert [la.depth for la in flow.layers] == list(range(1, len(expected) + 1))
    assert flow.first_to_last == pytest.approx(expected[0][1] / expected[-1][1], rel=1e-5)  # conv1 / fc
    assert flow.to_dict()["mode"] == ("train" if train else "eval")


def test_gradflow_on_a_train_data_source_equals_the_reference(tmp_path: Path):
    weights = trained_like_weights(tmp_path, True)
    (flow,) = gradflow(SPEC, {"n": 1}, data="synthetic:8", weights=weights, batch=4)
    from safetensors.torch import load_file

    from archspec.api import check
    from archspec.train.data import open_data
    from archspec.train.task import infer_task

    data = open_data("synthetic:8", infer_task(check(SPEC, {"n": 1})))
    x = torch.stack([data.train[i][0] for i in range(4)]).float() / 255  # the first four, in order
    x = (x - torch.tensor(data.mean).view(1, 3, 1, 1)) / torch.tensor(data.std).view(1, 3, 1, 1)
    y = torch.tensor([int(data.train[i][1]) for i in range(4)])
    ref = resnet_cifar(n=1)
    ref.load_state_dict(load_file(str(weights)), strict=True)
    loss = F.cross_entropy(ref(x), y)
    loss.backward()
    assert flow.loss == pytest.approx(loss.item(), rel=1e-5) and flow.data == "synthetic:8"
    assert flow.layers[0].grad_norm == pytest.approx(float(ref.conv1.weight.grad.norm()), rel=1e-4)
    assert flow.layers[-1].grad_norm == pytest.approx(
        float(torch.cat([ref.fc.weight.grad.reshape(-1), ref.fc.bias.grad]).norm()), rel=1e-4)


def test_gradflow_vary_makes_one_network_per_value_from_the_same_seed():
    flows = gradflow(SPEC, {"n": 1}, vary={"residual": [True, False]}, batch=2, seed=5)
    assert [f.label for f in flows] == ["resnet_cifar residual=true", "resnet_cifar residual=false"]
    assert [f.params for f in flows] == [{"n": 1, "residual": True}, {"n": 1, "residual": False}]
    # The same seed gives both the same initial weights (they have the same modules)...
    assert [la.weight_norm for la in flows[0].layers] == [la.weight_norm for la in flows[1].layers]
    # ... but the skips change the gradients.
    assert flows[0].layers[0].grad_norm != flows[1].layers[0].grad_norm
    again = gradflow(SPEC, {"n": 1, "residual": False}, batch=2, seed=5)[0]
    assert again.layers == flows[1].layers and again.label == "resnet_cifar"


def test_gradflow_figure_has_one_line_per_network_in_each_panel():
    flows = gradflow(SPEC, {"n": 1}, vary={"residual": [True, False]}, batch=2)
    fig = gradflow_figure(flows)
    for ax in fig.axes:
        lines = ax.get_lines()
        assert [ln.get_label() for ln in lines] == [f.label for f in flows]
        assert ax.get_yscale() == "log"
        # x: the weight layers (conv/linear) 1..8; y: their gradient norms (left panel)
    left = fig.axes[0].get_lines()
    weight_layers = [la for la in flows[0].layers if la.family != "norm"]
    assert list(left[0].get_xdata()) == list(range(1, len(weight_layers) + 1))
    assert list(left[0].get_ydata()) == [la.grad_norm for la in weight_layers]
    assert png_bytes(fig).startswith(PNG_MAGIC)


def test_gradflow_command_table_json_and_png(tmp_path: Path):
    png = tmp_path / "gf.png"
    out = run("gradflow", SPEC, "-p", "n=1", "--vary", "residual=true,false", "--batch-size", "2", "-o", png)
    assert "resnet_cifar residual=true: loss" in out and "resnet_cifar residual=false: loss" in out
    assert "layer3.0.conv2" in out and "grad/weight" in out and f"wrote {png}" in out
    assert "(seed 0, training mode)" in out and "first / last weight layer" in out
    assert "(seed 0, eval mode)" in run("gradflow", SPEC, "-p", "n=1", "--batch-size", "2", "--eval")
    assert png.read_bytes().startswith(PNG_MAGIC)
    data = json.loads(run("gradflow", SPEC, "-p", "n=1", "-p", "residual=false", "--batch-size", "2", "--json"))
    py = gradflow(SPEC, {"n": 1, "residual": False}, batch=2)[0]
    assert data["ok"] and [n["label"] for n in data["networks"]] == ["resnet_cifar"]
    assert [la["grad_norm"] for la in data["networks"][0]["layers"]] == [la.grad_norm for la in py.layers]
    # an existing picture is kept without --force
    err = run("gradflow", SPEC, "-p", "n=1", "-o", png, ok=2)
    assert "exists" in err and "--force" in err


def test_gradflow_errors():
    assert "DataError: cifar10 folder '/x' does not exist" in run("gradflow", SPEC, "-p", "n=1", "--data",
                                                                   "cifar10:/x", ok=2)
    assert "unknown data source 'nonsense'" in run("gradflow", SPEC, "-p", "n=1", "--data", "nonsense", ok=2)
    assert "--vary expects KEY=V1,V2,..." in run("gradflow", SPEC, "--vary", "residual", ok=2)
    with pytest.raises(ArchSpecError, match="--vary residual has no values"):
        variants(SPEC, vary={"residual": []})
    with pytest.raises(ArchSpecError, match="no spec to compare"):
        variants([])
    with pytest.raises(ArchSpecError, match="the batch size must be at least 1, got 0"):
        gradflow(SPEC, {"n": 1}, batch=0)
    with pytest.raises(SpecValidationError, match=r"--vary a=\[1: YAML syntax error"):
        parse_vary("a=[1")
    assert parse_vary("depth=18, 34,50") == ("depth", [18, 34, 50])


def test_variants_label_specs_of_the_same_name_by_file(tmp_path: Path):
    other = tmp_path / "cifar_copy.yaml"
    other.write_text(SPEC.read_text())
    assert [v.label for v in variants([SPEC, other], {"n": 1})] == ["resnet_cifar", "cifar_copy"]


# -- filters ---------------------------------------------------------------------------------

def test_filter_grid_one_normalised_tile_per_filter():
    w = torch.randn(7, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    w[4] = 0.7  # a constant filter: mid gray
    grid = filter_grid(w, "conv1")
    assert (grid.tiles, grid.rows, grid.cols, grid.mode) == (7, 3, 3, "rgb")
    assert grid.image.shape == (3 * 4 - 1, 3 * 4 - 1, 3)
    for i in range(7):
        tile = torch.from_numpy(grid.tile(i).copy())
        f = w[i].permute(1, 2, 0).double()  # (kh, kw, rgb)
        want = (f - f.min()) / (f.max() - f.min()) if i != 4 else torch.full_like(f, 0.5)
        assert torch.allclose(tile, want), i
    assert (grid.image[3] == 1).all() and (grid.image[:, 3] == 1).all()  # white gaps between tiles
    assert grid.image[8:, 4:].min() == 1  # the last two places of the 3x3 grid are empty
    assert grid.image[8:, :3].min() < 1
    gray = filter_grid(torch.randn(4, 1, 5, 5), "c")
    assert gray.mode == "gray" and (gray.tile(0)[..., 0] == gray.tile(0)[..., 2]).all()
    norm = filter_grid(torch.randn(5, 8, 3, 3), "c")
    assert norm.mode == "norm" and norm.tiles == 5
    with pytest.raises(ArchSpecError, match=r"filters draws 2-d convolutions; 'c' has a weight of 3 dims"):
        filter_grid(torch.randn(4, 2, 3), "c")


def test_filters_command_draws_the_first_conv_of_a_checkpoint(tmp_path: Path):
    weights = trained_like_weights(tmp_path, True)
    png = tmp_path / "f.png"
    out = run("filters", weights, "--spec", SPEC, "-p", "n=1", "-o", png)
    assert "conv1: 16 filters (16x3x3x3, rgb) in 4x4 tiles" in out and png.read_bytes().startswith(PNG_MAGIC)
    data = json.loads(run("filters", weights, "--spec", SPEC, "-p", "n=1", "--json"))
    assert data["tiles"] == 16 and data["written"] == str(tmp_path / "filters.png")
    grid = archspec.filters(weights, SPEC, {"n": 1})
    from safetensors.torch import load_file

    conv1 = load_file(str(weights))["conv1.weight"]
    assert grid.layer == "conv1" and grid.weight_shape == tuple(conv1.shape)
    f = conv1[5].permute(1, 2, 0).double()
    assert torch.allclose(torch.from_numpy(grid.tile(5).copy()), (f - f.min()) / (f.max() - f.min()))
    assert filters_figure(grid).axes[0].images[0].get_array().shape == grid.image.shape
    err = run("filters", weights, "--spec", SPEC, "-o", tmp_path / "g.png", ok=2)  # weights for n=1, spec n=3
    assert "WeightsError" in err and not (tmp_path / "g.png").exists()
    err = run("filters", weights, "--spec", SPEC, "-p", "n=1", "-o", png, ok=2)
    assert "exists" in err


# -- plot --------------------------------------------------------------------------------------

def write_run(folder: Path, rows: list[dict[str, float]]) -> Path:
    """A run folder's metrics.csv as archspec train writes it: the columns any row has,
    in its column order, empty cells where a row lacks one."""
    columns = ("epoch", "train_loss", "train_acc", "train_dice", "val_loss", "val_acc", "val_dice", "val_iou",
               "lr", "images_per_s", "seconds")
    cols = [c for c in columns if any(c in r for r in rows)]
    lines = [",".join(cols)] + [",".join("" if c not in r else (str(int(r[c])) if c == "epoch" else f"{r[c]:.6g}")
                                         for c in cols) for r in rows]
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_plot_overlays_two_runs(tmp_path: Path):
    a = write_run(tmp_path / "plain20", [{"epoch": e, "train_loss": 2 / e, "train_acc": 0.1 * e, "val_loss": 2.5 / e,
                                          "val_acc": 0.09 * e, "lr": 0.1, "seconds": 1.0} for e in (1, 2, 3)])
    b = write_run(tmp_path / "unet", [{"epoch": 1, "train_loss": 1.0, "train_dice": 0.5, "val_loss": 1.2,
                                       "val_dice": 0.4, "val_iou": 0.3},
                                      {"epoch": 2, "train_loss": 0.5, "train_dice": 0.8}])  # no validation yet
    png = tmp_path / "curves.png"
    out = run("plot", a, b, "-o", png)
    assert "plain20: 3 epochs; last: train_loss 0.6667, train_acc 0.3, val_loss 0.8333, val_acc 0.27" in out
    assert "unet: 2 epochs" in out and png.read_bytes().startswith(PNG_MAGIC)
    from archspec.experiments import plot_runs

    loss, metric = plot_runs([a, b]).axes
    assert loss.get_yscale() == "log" and metric.get_yscale() == "linear"
    assert {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in loss.get_lines()} == {
        "plain20 train_loss": ([1, 2, 3], [2.0, 1.0, pytest.approx(2 / 3, rel=1e-5)]),
        "plain20 val_loss": ([1, 2, 3], [2.5, 1.25, pytest.approx(2.5 / 3, rel=1e-5)]),
        "unet train_loss": ([1, 2], [1.0, 0.5]), "unet val_loss": ([1], [1.2])}
    lines = {ln.get_label(): ln for ln in metric.get_lines()}
    assert set(lines) == {"plain20 train_acc", "plain20 val_acc", "unet train_dice", "unet val_dice", "unet val_iou"}
    assert lines["plain20 val_acc"].get_linestyle() == "--" and lines["plain20 train_acc"].get_linestyle() == "-"
    assert lines["plain20 val_acc"].get_color() != lines["unet val_dice"].get_color()


def test_plot_errors(tmp_path: Path):
    png = tmp_path / "c.png"
    assert "run folder '" in run("plot", tmp_path / "nope", "-o", png, ok=2)
    (tmp_path / "empty").mkdir()
    assert "has no metrics.csv" in run("plot", tmp_path / "empty", "-o", png, ok=2)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n2,oops\n")
    assert "metrics.csv:3: column 'train_loss' holds 'oops', not a number" in run("plot", bad, "-o", png, ok=2)
    (bad / "metrics.csv").write_text("step,loss\n1,0.5\n")
    assert "metrics.csv:1: metrics.csv has no 'epoch' column" in run("plot", bad, "-o", png, ok=2)
    (bad / "metrics.csv").write_text("epoch,loss\n1\n")
    assert "metrics.csv:2: 1 cells for 2 columns" in run("plot", bad, "-o", png, ok=2)
    (bad / "metrics.csv").write_text("epoch,loss\n")
    assert "metrics.csv has no epochs yet" in run("plot", bad, "-o", png, ok=2)
    (bad / "metrics.csv").write_text("epoch,loss\n,1\n")
    assert "metrics.csv:2: the row has no epoch" in run("plot", bad, "-o", png, ok=2)
    assert not png.exists()
    from archspec.experiments import RunFolderError, plot_runs, run_labels

    with pytest.raises(RunFolderError, match="no run folder to plot"):
        plot_runs([])
    assert run_labels([Path("a/r1"), Path("b/r1"), Path("c/r2")]) == ["a/r1", "b/r1", "r2"]
