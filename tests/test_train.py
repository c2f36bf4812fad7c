"""`archspec train`: the loop, the run folder, resume, interruption, fine-tuning, settings.

Every run here is a tiny spec on a few hundred generated samples, on the CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import ROOT
from safetensors.torch import load_file

import archspec
from archspec.cli import main
from archspec.errors import SpecValidationError
from archspec.train import loop
from archspec.train.errors import RunError
from archspec.train.recipe import Recipe, load_recipe, resolve

TINY = """\
archspec: 1
name: tiny
params: {num_classes: 4, size: 8, bn: true}
inputs: {x: [3, size, size]}
nodes:
  conv: {op: conv, in: x, out: 8, k: 3}
  bn:   {op: bn, when: $bn}
  relu: {op: relu}
  pool: {op: adaptive_avgpool, size: 1}
  flat: {op: flatten}
  fc:   {op: linear, out: $num_classes}
outputs: [fc]
"""

SEG = """\
archspec: 1
name: seg
params: {num_classes: 2, c: 1}
inputs: {x: [c, 16, 16]}
nodes:
  conv1: {op: conv, in: x, out: 8, k: 3}
  relu:  {op: relu}
  head:  {op: conv, out: $num_classes, k: 1}
outputs: [head]
"""

FAST = {"data": "synthetic:128", "epochs": 2, "batch_size": 32, "verbose": False}


def write_spec(folder: Path, text: str = TINY, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def run_cli(*args: object, ok: int = 0) -> str:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exit_code == ok, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    return r.output


def weights_equal(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a)), load_file(str(b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# -- a run and its folder -----------------------------------------------------------------------

def test_two_epochs_lower_the_loss_and_write_the_whole_run_folder(tmp_path: Path):
    spec = write_spec(tmp_path)
    out = run_cli("train", spec, "--data", "synthetic:256", "--epochs", "2", "--batch-size", "32",
                  "--out", tmp_path / "run")
    assert "epoch 1/2  train_loss" in out and "epoch 2/2" in out and f"done: {tmp_path / 'run'}" in out
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "best.safetensors", "checkpoint.pt", "curves.png", "last.safetensors", "metrics.csv", "recipe.yaml",
        "run.json", "spec.yaml"]
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,train_acc,val_loss,val_acc,lr,images_per_s,seconds"
    rows = [dict(zip(lines[0].split(","), map(float, line.split(",")), strict=True)) for line in lines[1:]]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert rows[0]["lr"] == pytest.approx(0.1) and rows[1]["lr"] == pytest.approx(0.05)  # cosine, per step
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "spec.yaml").read_text() == TINY
    info = json.loads((run / "run.json").read_text())
    assert (info["task"], info["classes"], info["input"], info["data"], info["status"]) == \
        ("classification", 4, [3, 8, 8], "synthetic:256", "complete")
    recipe = Recipe.model_validate(load_recipe(run / "recipe.yaml"))  # the resolved recipe is a valid --config
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.optimizer, recipe.data) == \
        (2, 32, 0.1, "sgd", "synthetic:256")
    model = archspec.compile(spec, weights=run / "last.safetensors")
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 4)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (2, 0)
    assert {"optimizer", "scheduler", "scaler", "rng", "model"} <= set(state)


def test_python_api_returns_metrics_and_paths(tmp_path: Path):
    result = archspec.train(write_spec(tmp_path), out=tmp_path / "run", **FAST)
    assert result.status == "complete" and result.task == "classification"
    assert len(result.metrics) == 2 and result.best == max(r["val_acc"] for r in result.metrics)
    assert result.last == tmp_path / "run" / "last.safetensors" and result.best_weights.is_file()
    assert result.to_dict()["best_weights"] == str(tmp_path / "run" / "best.safetensors")


def test_segmentation_is_read_from_the_output_shape(tmp_path: Path):
    result = archspec.train(write_spec(tmp_path, SEG, "seg.yaml"), out=tmp_path / "run", optimizer="adamw",
                            lr=0.01, schedule="step", **FAST)
    assert result.task == "segmentation"
    assert set(result.metrics[0]) == {"epoch", "train_loss", "train_dice", "val_loss", "val_dice", "val_iou", "lr",
                                      "images_per_s", "seconds"}
    assert 0 <= result.metrics[-1]["val_iou"] <= result.metrics[-1]["val_dice"] <= 1


def test_an_existing_run_folder_is_not_overwritten_without_force(tmp_path: Path):
    spec = write_spec(tmp_path)
    archspec.train(spec, out=tmp_path / "run", **{**FAST, "epochs": 1})
    before = (tmp_path / "run" / "last.safetensors").read_bytes()
    out = run_cli("train", spec, "--data", "synthetic:64", "--out", tmp_path / "run", ok=2)
    assert f"run folder '{tmp_path / 'run'}' already holds files" in out
    assert "fix: continue it with --resume" in out
    assert (tmp_path / "run" / "last.safetensors").read_bytes() == before
    result = archspec.train(spec, out=tmp_path / "run", force=True, **{**FAST, "epochs": 1, "seed": 3})
    assert result.status == "complete" and (tmp_path / "run" / "last.safetensors").read_bytes() != before


def test_the_default_run_folder_takes_the_next_free_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path)
    first = archspec.train(spec, **{**FAST, "epochs": 1})
    second = archspec.train(spec, **{**FAST, "epochs": 1})
    assert (first.out, second.out) == (Path("runs/tiny"), Path("runs/tiny-2"))


# -- resume and interruption ------------------------------------------------------------------------

def _interrupt_at(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """Send this process SIGTERM from inside the loss of the ``call``-th batch."""
    real = loop.loss_fn
    count = {"n": 0}

    def loss_fn(kind: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        count["n"] += 1
        if count["n"] == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(kind, logits, y)

    monkeypatch.setattr(loop, "loss_fn", loss_fn)


def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = write_spec(tmp_path, TINY.replace("relu: {op: relu}", "relu: {op: relu}\n  drop: {op: dropout, p: 0.3}"))
    settings = {**FAST, "data": "synthetic:256", "epochs": 3}
    whole = archspec.train(spec, out=tmp_path / "whole", **settings)
    _interrupt_at(monkeypatch, 13)  # epoch 2 (8 steps and 2 validation batches per epoch), step 3
    stopped = archspec.train(spec, out=tmp_path / "parts", **settings)
    assert (stopped.status, stopped.signal, len(stopped.metrics)) == ("interrupted", signal.SIGTERM, 1)
    state = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 3)
    assert json.loads((tmp_path / "parts" / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.undo()
    resumed = archspec.train(None, resume=tmp_path / "parts", verbose=False)
    assert resumed.status == "complete"
    assert weights_equal(tmp_path / "whole" / "last.safetensors", tmp_path / "parts" / "last.safetensors")
    assert [r["val_loss"] for r in resumed.metrics] == [r["val_loss"] for r in whole.metrics]


def test_sigterm_mid_epoch_saves_a_checkpoint_exits_cleanly_and_resumes(tmp_path: Path):
    spec = write_spec(tmp_path)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "archspec", "train", str(spec), "--data", "synthetic:256", "--batch-size", "8",
           "--epochs", "50", "--out", str(run)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # the first epoch's line: the second epoch has begun
        lines.append(line)
        if line.startswith("epoch 1/50"):
            break
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    stdout = "".join(lines) + stdout
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    epoch, step = state["epoch"], state["step"]
    assert epoch >= 1 and 0 <= step < 32
    assert f"stopped by SIGTERM in epoch {epoch + 1} at step {step}/32" in stdout
    assert f"continue with: archspec train --resume {run}" in stdout
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]  # nothing half-written
    out = run_cli("train", "--resume", run, "--epochs", epoch + 1)  # in this process: one torch start less
    assert f"resuming {run} at epoch {epoch + 1}, step {step}/32" in out
    assert f"epoch {epoch + 1}/{epoch + 1}  train_loss" in out
    assert len((run / "metrics.csv").read_text().splitlines()) == epoch + 2


def test_resume_refuses_new_settings_and_complete_runs(tmp_path: Path):
    spec = write_spec(tmp_path)
    archspec.train(spec, out=tmp_path / "run", **{**FAST, "epochs": 1})
    with pytest.raises(RunError, match=r"--resume continues a run with its own settings; cannot change lr$") as e:
        archspec.train(None, resume=tmp_path / "run", lr=0.5)
    assert e.value.fix == "only --epochs, --workers and --device may be given with --resume; start a new run " \
                          "for other settings"
    with pytest.raises(RunError, match=r"the run in '.*run' is complete \(1/1 epochs\)"):
        archspec.train(None, resume=tmp_path / "run")
    more = archspec.train(None, resume=tmp_path / "run", epochs=2, verbose=False)
    assert [r["epoch"] for r in more.metrics] == [1, 2]
    with pytest.raises(RunError, match=r"cannot resume '.*nowhere': no such folder"):
        archspec.train(None, resume=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match=r"it has no run.json, spec.yaml, recipe.yaml, checkpoint.pt"):
        archspec.train(None, resume=tmp_path / "empty")
    out = run_cli("train", spec, "--resume", tmp_path / "run", ok=2)
    assert "--resume continues a run with the spec in its folder; leave SPEC out" in out
    assert "archspec train needs a SPEC, or --resume DIR" in run_cli("train", ok=2)


# -- fine-tuning ------------------------------------------------------------------------------

def test_init_from_reports_every_key_and_skips_a_mismatched_head(tmp_path: Path):
    spec = write_spec(tmp_path)
    archspec.train(spec, out=tmp_path / "a", **{**FAST, "epochs": 1})
    out = run_cli("train", spec, "-p", "num_classes=6", "--data", "synthetic:64", "--epochs", "1", "--batch-size", "32",
                  "--init-from", tmp_path / "a" / "best.safetensors", "--out", tmp_path / "b")
    assert (f"init from {tmp_path / 'a' / 'best.safetensors'}: 7 loaded, 2 skipped (shape), "
            "0 missing (left as initialised), 0 unused") in out
    for line in ("  loaded   conv.weight", "  loaded   bn.running_mean", "  skipped  fc.weight: file 4x8, model 6x8",
                 "  skipped  fc.bias: file 4, model 6"):
        assert line in out
    assert "skipped  fc.weight" in (tmp_path / "b" / "init_report.txt").read_text()
    no_bn = write_spec(tmp_path, TINY.replace("params: {num_classes: 4, size: 8, bn: true}",
                                              "params: {num_classes: 4, size: 8, bn: false}"), "nobn.yaml")
    result = loop.train(no_bn, out=tmp_path / "c", init_from=tmp_path / "a" / "last.safetensors", **{**FAST, "epochs": 1})
    report = (result.out / "init_report.txt").read_text()
    assert "4 loaded, 0 skipped (shape), 0 missing (left as initialised), 5 unused" in report
    assert "  unused   bn.weight" in report


def test_init_from_with_nothing_in_common_is_an_error(tmp_path: Path):
    spec = write_spec(tmp_path)
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"head.weight": torch.zeros(2, 2)}, str(other))
    out = run_cli("train", spec, "--data", "synthetic:64", "--batch-size", "32", "--init-from", other, "--out",
                  tmp_path / "r", ok=2)
    assert f"--init-from '{other}': no key of the file matches the model by name and shape (1 keys in the file, " \
           "9 in the model)" in out
    out = run_cli("train", spec, "--data", "synthetic:64", "--batch-size", "32", "--init-from", tmp_path / "none.pt",
                  "--out", tmp_path / "r2", ok=2)
    assert f"WeightsError: weights file '{tmp_path / 'none.pt'}' does not exist" in out


# -- the recipe ------------------------------------------------------------------------------

def test_defaults_are_the_cifar_recipe():
    r = Recipe()
    assert (r.epochs, r.batch_size, r.lr, r.optimizer, r.momentum, r.weight_decay, r.schedule, r.augment) == \
        (200, 128, 0.1, "sgd", 0.9, 5e-4, "cosine", True)


def test_config_file_is_validated_with_its_lines_and_flags_override_it(tmp_path: Path):
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text("epochs: 3\nlr: 0.05\noptimizer: adamw\n")
    r = resolve(cfg, {"lr": 0.2, "epochs": None})
    assert (r.epochs, r.lr, r.optimizer) == (3, 0.2, "adamw")
    cfg.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(SpecValidationError, match=r"recipe.yaml:2:1: unknown setting 'learning_rate'") as e:
        resolve(cfg, {})
    assert e.value.expected is not None and e.value.expected.startswith("one of: data, epochs, batch_size, lr")
    cfg.write_text("epochs: ten\n")
    with pytest.raises(SpecValidationError, match=r"recipe.yaml:1:9: epochs: Input should be a valid integer"):
        resolve(cfg, {})
    cfg.write_text("optimizer: adam\n")
    with pytest.raises(SpecValidationError, match=r"recipe.yaml:1:12: optimizer: Input should be 'sgd' or 'adamw'"):
        resolve(cfg, {})
    cfg.write_text("- epochs\n")
    with pytest.raises(SpecValidationError, match="a recipe must be a mapping of settings, got list"):
        resolve(cfg, {})
    with pytest.raises(SpecValidationError, match=r"setting 'epochs': Input should be greater than or equal to 1"):
        resolve(None, {"epochs": 0})
    spec = write_spec(tmp_path)
    cfg.write_text("epochs: 1\nbatch_size: 32\ndata: synthetic:64\nseed: 5\n")
    out = run_cli("train", spec, "--config", cfg, "--out", tmp_path / "run", "--lr", "0.01")
    assert "epoch 1/1" in out
    saved = load_recipe(tmp_path / "run" / "recipe.yaml")
    assert (saved["lr"], saved["seed"], saved["epochs"]) == (0.01, 5, 1)
    cfg.write_text("epochs: 1\nbatch_size: 32\nlr: 1\n")  # an integer is a number
    assert resolve(cfg, {}).lr == 1.0


def test_python_api_refuses_unknown_settings(tmp_path: Path):
    with pytest.raises(RunError, match=r"unknown setting 'epoch' \(did you mean 'epochs'\?\)"):
        archspec.train(write_spec(tmp_path), data="synthetic", epoch=3)


def test_settings_that_cannot_work_on_the_cpu_are_refused(tmp_path: Path):
    spec = write_spec(tmp_path)
    args = ["train", spec, "--data", "synthetic:64", "--device", "cpu", "--out", tmp_path / "r"]
    out = run_cli(*args, "--amp", "fp16", ok=2)
    assert "--amp fp16 needs a CUDA device" in out and "fix: use --amp bf16 on the CPU" in out
    assert "--sync-bn converts batch norms to SyncBatchNorm, which runs on CUDA only" in run_cli(*args, "--sync-bn", ok=2)
    vec = write_spec(tmp_path, "archspec: 1\nname: mlp\ninputs: {x: [6]}\nnodes:\n  fc: {op: linear, in: x, out: 3}\n"
                               "outputs: [fc]\n", "mlp.yaml")
    out = run_cli("train", vec, "--data", "synthetic:64", "--channels-last", "--out", tmp_path / "r", ok=2)
    assert "--channels-last is for image inputs (C, H, W), but the spec's input is 6" in out
    out = run_cli(*args, "--batch-size", "1000", ok=2)
    assert "the training set has 64 samples, fewer than one batch of 1000" in out
    if not torch.cuda.is_available():
        assert "--device cuda, but torch sees no CUDA device" in run_cli(
            "train", spec, "--data", "synthetic:64", "--device", "cuda", "--out", tmp_path / "r", ok=2)
    assert "no data source" in run_cli("train", spec, "--out", tmp_path / "r", ok=2)


def test_bf16_autocast_and_channels_last_run_on_the_cpu(tmp_path: Path):
    result = archspec.train(write_spec(tmp_path), out=tmp_path / "run", amp="bf16", channels_last=True,
                            device="cpu", **{**FAST, "epochs": 1})
    assert result.status == "complete" and result.metrics[0]["train_loss"] > 0


def test_a_vector_spec_trains_on_synthetic_data(tmp_path: Path):
    vec = write_spec(tmp_path, "archspec: 1\nname: mlp\ninputs: {x: [6]}\nnodes:\n  h: {op: linear, in: x, out: 16}\n"
                               "  r: {op: relu}\n  fc: {op: linear, out: 3}\noutputs: [fc]\n", "mlp.yaml")
    result = archspec.train(vec, out=tmp_path / "run", **FAST)
    assert result.metrics[-1]["val_acc"] > 0.5


def test_the_task_must_be_readable_from_the_shapes(tmp_path: Path):
    odd = write_spec(tmp_path, "archspec: 1\nname: odd\ninputs: {x: [3, 8, 8]}\nnodes:\n"
                               "  c: {op: conv, in: x, out: 4, k: 3, stride: 2}\noutputs: [c]\n", "odd.yaml")
    out = run_cli("train", odd, "--data", "synthetic", "--out", tmp_path / "r", ok=2)
    assert "cannot tell the task from output 'c' 4x4x4 for input 3x8x8" in out
    assert "expected: a vector (K,) for classification, or (K, 8x8) for segmentation" in out
    one = write_spec(tmp_path, TINY, "one.yaml")
    assert "output 'fc' 1 has 1 class" in run_cli("train", one, "-p", "num_classes=1", "--data", "synthetic",
                                                  "--out", tmp_path / "r", ok=2)


def test_train_help_has_examples():
    out = run_cli("train", "--help")
    assert "Example" in out and "--resume DIR" in out and "--nproc N" in out
    assert "Example" in run_cli("evaluate", "--help")


# -- evaluate ----------------------------------------------------------------------------------

def test_evaluate_reports_the_metrics_of_trained_weights(tmp_path: Path):
    spec = write_spec(tmp_path)
    result = archspec.train(spec, out=tmp_path / "run", **FAST)
    out = run_cli("evaluate", spec, "--weights", result.best_weights, "--data", "synthetic:128", "--json")
    data = json.loads(out)
    assert (data["ok"], data["split"], data["samples"]) == (True, "val", 32)
    assert data["metrics"]["acc"] == pytest.approx(result.best)  # the run's normalisation, from run.json
    assert data["metrics"]["loss"] == pytest.approx(result.metrics[[r["val_acc"] for r in result.metrics].index(
        result.best)]["val_loss"], rel=1e-5)
    text = run_cli("evaluate", spec, "--weights", result.last, "--data", "synthetic:128", "--split", "train")
    assert text.startswith("synthetic:128 (train, 128 samples): loss ")
    out = run_cli("evaluate", spec, "-p", "num_classes=5", "--weights", result.last, "--data", "synthetic", ok=2)
    assert "WeightsError" in out and "fc.weight: file 4x8, model 5x8" in out
    folder = tmp_path / "imgs"
    for c in "abcd":
        (folder / c).mkdir(parents=True)
        from PIL import Image

        Image.new("RGB", (8, 8)).save(folder / c / "0.png")
    out = run_cli("evaluate", spec, "--weights", result.last, "--data", f"imagefolder:{folder}", ok=2)
    assert f"DataError: 'imagefolder:{folder}' has no validation split" in out
    assert "fix: pass --split train, or add a val/ folder" in out


def test_python_api_needs_a_spec_or_a_run_to_resume():
    with pytest.raises(archspec.ArchSpecError, match=r"archspec.train needs a spec \(a path or YAML text\), or resume="):
        archspec.train(None, data="synthetic")


def test_loader_processes_change_nothing(tmp_path: Path):
    """Augmentation is drawn per sample from (seed, epoch, index), not from a worker's RNG."""
    spec = write_spec(tmp_path)
    settings = {**FAST, "epochs": 1, "data": "synthetic:64"}
    archspec.train(spec, out=tmp_path / "w0", workers=0, **settings)
    archspec.train(spec, out=tmp_path / "w2", workers=2, **settings)
    assert weights_equal(tmp_path / "w0" / "last.safetensors", tmp_path / "w2" / "last.safetensors")


def test_a_terminal_gets_progress_bars_and_the_epoch_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    archspec.train(write_spec(tmp_path), out=tmp_path / "run", **{**FAST, "epochs": 1, "verbose": True})
    out = capsys.readouterr().out
    assert "training tiny (classification, 4 classes) on synthetic:128" in out
    assert "epoch 1/1  train_loss" in out
