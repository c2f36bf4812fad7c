"""The data sources of `archspec train` on small files in their real formats, and every error."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train import SEG, TINY, run_cli, write_spec

import archspec
from archspec.train.cells import cell_sample
from archspec.train.data import IGNORE, Augmented, open_data, parse_source
from archspec.train.errors import DataError
from archspec.train.task import Task

CIFAR_TASK = Task("classification", (3, 32, 32), (10,), 10)


def write_cifar(root: Path, kind: str = "cifar10", n: int = 8) -> Path:
    """The python-pickle batches, as the CIFAR archives hold them (n images per file)."""
    rng = np.random.default_rng(0)
    if kind == "cifar10":
        folder, files, key, k = root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], \
            "labels", 10
        meta = {"label_names": [f"c{i}" for i in range(10)]}
        meta_name = "batches.meta"
    else:
        folder, files, key, k = root / "cifar-100-python", ["train", "test"], "fine_labels", 100
        meta = {"fine_label_names": [f"f{i}" for i in range(100)]}
        meta_name = "meta"
    folder.mkdir(parents=True)
    for name in files:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 key: [int(v) for v in rng.integers(0, k, n)], "filenames": [f"{name}_{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / meta_name).write_bytes(pickle.dumps(meta))
    return folder


def test_cifar10_and_cifar100_read_the_python_batches(tmp_path: Path):
    write_cifar(tmp_path / "c10")
    data = open_data(f"cifar10:{tmp_path / 'c10'}", CIFAR_TASK)
    assert (len(data.train), len(data.val or []), data.classes[:2]) == (40, 8, ["c0", "c1"])
    x, y = data.train[0]
    assert (x.shape, x.dtype, y.dtype) == ((3, 32, 32), torch.uint8, torch.int64)
    raw = pickle.loads((tmp_path / "c10/cifar-10-batches-py/data_batch_1").read_bytes())
    assert torch.equal(x, torch.from_numpy(raw["data"][0].reshape(3, 32, 32))) and int(y) == raw["labels"][0]
    write_cifar(tmp_path / "c100", "cifar100")
    folder = tmp_path / "c100" / "cifar-100-python"
    data = open_data(f"cifar100:{folder}", Task("classification", (3, 32, 32), (100,), 100))  # the folder itself
    assert (len(data.train), len(data.val or []), data.classes[99]) == (8, 8, "f99")


def test_training_on_cifar_files(tmp_path: Path):
    write_cifar(tmp_path, n=16)
    spec = write_spec(tmp_path, TINY)
    out = run_cli("train", spec, "-p", "size=32", "-p", "num_classes=10", "--data", f"cifar10:{tmp_path}",
                  "--epochs", "1", "--batch-size", "16", "--out", tmp_path / "run")
    assert f"on cifar10:{tmp_path}: 80 samples, 5 steps of 16 per epoch" in out


def test_cifar_errors(tmp_path: Path):
    with pytest.raises(DataError, match=r"cifar10 folder '.*nowhere' does not exist") as e:
        open_data(f"cifar10:{tmp_path / 'nowhere'}", CIFAR_TASK)
    assert e.value.expected is not None and "cifar-10-batches-py/ with data_batch_1" in e.value.expected
    folder = write_cifar(tmp_path / "c")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"cifar10 folder '.*cifar-10-batches-py' lacks data_batch_3"):
        open_data(f"cifar10:{tmp_path / 'c'}", CIFAR_TASK)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"'.*data_batch_3' is not a CIFAR python batch: "):
        open_data(f"cifar10:{tmp_path / 'c'}", CIFAR_TASK)

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": Evil(), "labels": []}))
    with pytest.raises(DataError, match=r"the pickle names builtins.print, which a CIFAR file never does"):
        open_data(f"cifar10:{tmp_path / 'c'}", CIFAR_TASK)
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DataError, match=r"data_batch_3' holds data of shape 2x100 \(uint8\) and 2 labels"):
        open_data(f"cifar10:{tmp_path / 'c'}", CIFAR_TASK)
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [12]}))
    with pytest.raises(DataError, match=r"data_batch_3' has labels outside 0..9"):
        open_data(f"cifar10:{tmp_path / 'c'}", CIFAR_TASK)
    (folder / "data_batch_3").write_bytes(pickle.dumps({"pixels": 1}))
    with pytest.raises(DataError, match=r"it has no 'data' and 'labels'"):
        open_data(f"cifar10:{tmp_path / 'c'}", CIFAR_TASK)
    with pytest.raises(DataError, match=r"cifar10 images are 3x32x32, but the spec's input is 3x8x8"):
        open_data(f"cifar10:{tmp_path / 'c'}", Task("classification", (3, 8, 8), (10,), 10))
    with pytest.raises(DataError, match=r"cifar10 has 10 classes, but the spec's output is 4") as e:
        open_data(f"cifar10:{tmp_path / 'c'}", Task("classification", (3, 32, 32), (4,), 4))
    assert e.value.fix == "compile the spec with 10 outputs, e.g. -p num_classes=10"


def _png(path: Path, size: tuple[int, int], value: int = 128, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode != "RGB" else (value, value // 2, 255 - value)).save(path)


def test_imagefolder_with_a_val_split_resizes_to_the_spec(tmp_path: Path):
    for split, n in (("train", 6), ("val", 2)):
        for c, value in (("cat", 40), ("dog", 200)):
            for i in range(n):
                _png(tmp_path / split / c / f"{i}.png", (20 + i, 12), value)
    task = Task("classification", (3, 16, 16), (2,), 2)
    data = open_data(f"imagefolder:{tmp_path}", task)
    assert (len(data.train), len(data.val or []), data.classes) == (12, 4, ["cat", "dog"])
    x, y = data.train[7]
    assert (x.shape, x.dtype, int(y)) == ((3, 16, 16), torch.uint8, 1)
    gray = open_data(f"imagefolder:{tmp_path / 'train'}", Task("classification", (1, 16, 16), (2,), 2))
    assert gray.val is None and gray.train[0][0].shape == (1, 16, 16)
    spec = write_spec(tmp_path, TINY)
    result = archspec.train(spec, data=f"imagefolder:{tmp_path}", params={"size": 16, "num_classes": 2}, epochs=3,
                            batch_size=4, lr=0.05, out=tmp_path / "run", verbose=False)
    assert result.metrics[-1]["val_acc"] == 1.0  # two colours


def test_imagefolder_errors(tmp_path: Path):
    task = Task("classification", (3, 16, 16), (2,), 2)
    with pytest.raises(DataError, match=r"image folder '.*none' does not exist") as e:
        open_data(f"imagefolder:{tmp_path / 'none'}", task)
    assert e.value.expected == ("imagefolder:DIR with one subfolder of images per class "
                                "(or DIR/train/<class>/ and DIR/val/<class>/)")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match=r"image folder '.*empty' has no class folders with images in them"):
        open_data(f"imagefolder:{tmp_path / 'empty'}", task)
    for c in "abc":
        _png(tmp_path / "three" / c / "0.png", (8, 8))
    with pytest.raises(DataError, match=r"image folder '.*three' has 3 classes, but the spec's output is 2"):
        open_data(f"imagefolder:{tmp_path / 'three'}", task)
    with pytest.raises(DataError, match=r"imagefolder gives images of 1 or 3 channels, but the spec's input is 4x16x16"):
        open_data(f"imagefolder:{tmp_path / 'three'}", Task("classification", (4, 16, 16), (3,), 3))
    with pytest.raises(DataError, match=r"imagefolder is a classification set, but the spec's output is 2x16x16"):
        open_data(f"imagefolder:{tmp_path / 'three'}", Task("segmentation", (3, 16, 16), (2, 16, 16), 2))
    for c in "ab":
        _png(tmp_path / "split" / "train" / c / "0.png", (8, 8))
    _png(tmp_path / "split" / "val" / "a" / "0.png", (8, 8))
    _png(tmp_path / "split" / "val" / "z" / "0.png", (8, 8))
    with pytest.raises(DataError, match=r"'.*val' has the classes a, z, '.*train' a, b"):
        open_data(f"imagefolder:{tmp_path / 'split'}", task)
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "0.png").write_bytes(b"not an image")
    _png(tmp_path / "bad" / "b" / "0.png", (8, 8))
    with pytest.raises(DataError, match=r"cannot read image '.*0.png': cannot identify image file"):
        open_data(f"imagefolder:{tmp_path / 'bad'}", task)


def _seg_pair(root: Path, name: str, size: tuple[int, int], classes: int = 2) -> None:
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[: size[1] // 2] = classes - 1
    mask[0, 0] = 255  # ignored
    image = np.stack([mask * 60 + 20] * 3, axis=-1).astype(np.uint8)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{name}.jpg")
    Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def test_segfolder_pairs_images_and_masks(tmp_path: Path):
    for i in range(8):
        _seg_pair(tmp_path / "train", f"im{i}", (16, 16))
    for i in range(2):
        _seg_pair(tmp_path / "val", f"v{i}", (16, 16))
    task = Task("segmentation", (3, 16, 16), (2, 16, 16), 2)
    data = open_data(f"segfolder:{tmp_path}", task)
    x, y = data.train[0]
    assert (x.shape, y.shape, y.dtype, int(y[0, 0]), int(y[0, 1]), int(y[15, 0])) == \
        ((3, 16, 16), (16, 16), torch.int64, IGNORE, 1, 0)
    result = archspec.train(write_spec(tmp_path, SEG.replace("c: 1}", "c: 3}"), "seg.yaml"), data=f"segfolder:{tmp_path}",
                            epochs=1, batch_size=4, out=tmp_path / "run", verbose=False)
    assert result.task == "segmentation" and "val_dice" in result.metrics[0]


def test_segfolder_errors(tmp_path: Path):
    task = Task("segmentation", (3, 16, 16), (2, 16, 16), 2)
    with pytest.raises(DataError, match=r"segmentation folder '.*none' does not exist"):
        open_data(f"segfolder:{tmp_path / 'none'}", task)
    (tmp_path / "a" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match=r"segmentation folder '.*a' has no masks/ folder") as e:
        open_data(f"segfolder:{tmp_path / 'a'}", task)
    assert e.value.expected is not None and e.value.expected.startswith("segfolder:DIR with DIR/images/ and DIR/masks/")
    (tmp_path / "a" / "masks").mkdir()
    with pytest.raises(DataError, match=r"'.*images' holds no images"):
        open_data(f"segfolder:{tmp_path / 'a'}", task)
    _seg_pair(tmp_path / "b", "x", (16, 16))
    _png(tmp_path / "b" / "images" / "y.png", (16, 16))
    with pytest.raises(DataError, match=r"1 image\(s\) in '.*images' have no mask in '.*masks', e.g. y.png"):
        open_data(f"segfolder:{tmp_path / 'b'}", task)
    _seg_pair(tmp_path / "c", "x", (20, 16))
    with pytest.raises(DataError, match=r"image '.*x.jpg' is 16x20, but the spec's input is 16x16"):
        open_data(f"segfolder:{tmp_path / 'c'}", task)
    _seg_pair(tmp_path / "d", "x", (16, 16), classes=4)
    with pytest.raises(DataError, match=r"mask '.*x.png' has the class 3, but the spec's output has 2 classes"):
        open_data(f"segfolder:{tmp_path / 'd'}", task)
    _seg_pair(tmp_path / "e", "x", (16, 16))
    _png(tmp_path / "e" / "masks" / "x.png", (8, 8), mode="L")
    with pytest.raises(DataError, match=r"mask '.*x.png' is 8x8, its image '.*x.jpg' 16x16"):
        open_data(f"segfolder:{tmp_path / 'e'}", task)
    _png(tmp_path / "e" / "masks" / "x.png", (16, 16), mode="RGB")
    with pytest.raises(DataError, match=r"mask '.*x.png' is a RGB image"):
        open_data(f"segfolder:{tmp_path / 'e'}", task)
    with pytest.raises(DataError, match=r"segfolder is a segmentation set, but the spec's output is 2"):
        open_data(f"segfolder:{tmp_path / 'e'}", Task("classification", (3, 16, 16), (2,), 2))


def test_source_strings():
    assert (str(parse_source("synthetic")), str(parse_source("cells:64")), str(parse_source("cifar10:/d"))) == \
        ("synthetic", "cells:64", "cifar10:/d")
    with pytest.raises(DataError, match=r"unknown data source 'cifar' \(did you mean 'cifar10' or 'cifar100'\?\)"):
        parse_source("cifar:/data")
    with pytest.raises(DataError, match=r"'synthetic:0': the sample count after 'synthetic:' must be a whole number"):
        parse_source("synthetic:0")
    with pytest.raises(DataError, match=r"data source 'imagefolder' needs a folder: imagefolder:DIR"):
        parse_source("imagefolder")


def test_cells_are_deterministic_and_fit_only_a_two_class_segmenter():
    a, ma = cell_sample(0, "train", 3, (2, 32, 48))
    b, mb = cell_sample(0, "train", 3, (2, 32, 48))
    c, _ = cell_sample(0, "val", 3, (2, 32, 48))
    assert torch.equal(a, b) and torch.equal(ma, mb) and not torch.equal(a, c)
    assert (a.shape, ma.shape) == ((2, 32, 48), (32, 48)) and 0.1 < ma.float().mean() < 0.7
    # cells are brighter than the background, whatever the illumination
    assert a[0][ma.bool()].float().mean() > a[0][~ma.bool()].float().mean() + 20
    with pytest.raises(DataError, match=r"'cells' has 2 classes \(background, cell\), but the spec's output has 3"):
        open_data("cells:4", Task("segmentation", (1, 16, 16), (3, 16, 16), 3))
    with pytest.raises(DataError, match=r"'cells' is a segmentation set of images, but the spec maps 1x16x16 to 2"):
        open_data("cells:4", Task("classification", (1, 16, 16), (2,), 2))
    data = open_data("cells:16", Task("segmentation", (1, 16, 16), (2, 16, 16), 2))
    assert (len(data.train), len(data.val or [])) == (16, 2)


def test_augmentation_moves_the_mask_with_its_image():
    x = torch.arange(2 * 8 * 8, dtype=torch.uint8).view(2, 8, 8)
    y = torch.arange(64).view(8, 8)
    aug = Augmented([(x, y)], seed=1)
    seen = set()
    for epoch in range(8):
        aug.set_epoch(epoch)
        ax, ay = aug[0]
        assert ax.shape == x.shape and ay.shape == y.shape
        valid = ay != IGNORE
        assert torch.equal(ax[0][valid], x[0].flatten()[ay[valid]])  # the same pixels moved the same way
        assert bool((ax[0][~valid] == 0).all())
        seen.add(ay.flatten().tolist().__repr__())
        assert torch.equal(aug[0][1], ay)  # one draw per (seed, epoch, index)
    assert len(seen) > 1


def test_synthetic_data_is_shaped_from_the_spec():
    data = open_data("synthetic:16", Task("segmentation", (2, 12, 20), (3, 12, 20), 3))
    x, y = data.train[0]
    assert (x.shape, y.shape, len(data.val or []), len(data.mean)) == ((2, 12, 20), (12, 20), 4, 2)
    assert set(torch.unique(y).tolist()) <= {0, 1, 2}
