"""Data sources for ``archspec train``: generated, CIFAR, and folders of images.

A source is written as one string (``--data``):

=====================  ==============================================================
``synthetic[:N]``      random samples shaped from the spec (N for training, N/4 to
                       validate; default 1024): runs on any spec, learnable in a few steps
``cells[:N]``          generated cell images with masks at the spec's input size (512)
``cifar10:DIR``        the CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``)
``cifar100:DIR``       the CIFAR-100 python files (``train``, ``test``)
``imagefolder:DIR``    one folder per class (``DIR/train`` and ``DIR/val`` if present)
``segfolder:DIR``      ``images/`` and ``masks/`` with matching names (same split rule)
=====================  ==============================================================

Nothing is downloaded. Every sample is a uint8 tensor of the spec's input shape and a
target: a class index, or a mask of class indices (``-100``: ignored). Floats, the
normalisation and the device copy come later, in the loop, on the whole batch.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import DataError
from .task import Task

if TYPE_CHECKING:
    import torch


class Samples(Protocol):
    """A map-style data set: ``len`` samples, each ``(input, target)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]: ...

IGNORE = -100  # the mask value the loss and the metrics skip (torch's ignore_index)
KINDS = ("synthetic", "cells", "cifar10", "cifar100", "imagefolder", "segfolder")
GENERATED = ("synthetic", "cells")
MAX_GENERATED = 1 << 20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CIFAR_STATS = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
               "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))}


@dataclass(frozen=True)
class Source:
    """A parsed ``--data`` string."""

    kind: str
    path: Path | None = None
    size: int | None = None

    def __str__(self) -> str:
        arg = self.path if self.path is not None else self.size
        return self.kind if arg is None else f"{self.kind}:{arg}"


def parse_source(text: str) -> Source:
    """``cifar10:/data/cifar`` → Source('cifar10', Path('/data/cifar'))."""
    from ..errors import close_matches

    kind, sep, arg = text.partition(":")
    if kind not in KINDS:
        raise DataError(f"unknown data source '{kind}'{close_matches(kind, KINDS)}",
                        expected="synthetic[:N], cells[:N], cifar10:DIR, cifar100:DIR, imagefolder:DIR or segfolder:DIR")
    if kind in GENERATED:
        if not sep:
            return Source(kind)
        if not arg.isdigit() or not 1 <= int(arg) <= MAX_GENERATED:
            raise DataError(f"'{text}': the sample count after '{kind}:' must be a whole number from 1 to "
                            f"{MAX_GENERATED}", fix=f"write e.g. {kind}:2048")
        return Source(kind, size=int(arg))
    if not arg:
        raise DataError(f"data source '{kind}' needs a folder: {kind}:DIR", fix=f"write e.g. --data {kind}:data/{kind}")
    return Source(kind, path=Path(arg))


@dataclass
class Data:
    """The two splits of a source, and what normalises them (per channel, in [0, 1] units)."""

    source: Source
    train: Samples
    val: Samples | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str] = field(default_factory=list)


def _fmt(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def open_data(source: Source | str, task: Task) -> Data:
    """Open ``source`` for ``task``: a DataError if it is missing, malformed or does not
    fit the spec's input shape and class count."""
    src = parse_source(source) if isinstance(source, str) else source
    if src.kind == "synthetic":
        data = _synthetic(src, task)
    elif src.kind == "cells":
        data = _cells(src, task)
    elif src.kind in ("cifar10", "cifar100"):
        data = _cifar(src, task)
    elif src.kind == "imagefolder":
        data = _imagefolder(src, task)
    else:
        data = _segfolder(src, task)
    return data


# -- in-memory sets -----------------------------------------------------------------------

class TensorSet:
    """Samples held in memory: ``x`` (N, *input) uint8 and ``y`` (N,) or (N, *map) int64."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def _stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 samples ``(N, C, ...)``, in [0, 1] units."""
    import torch

    sample = x[: min(len(x), 512)].transpose(0, 1).reshape(x.shape[1], -1).to(torch.float64) / 255
    std = sample.std(dim=1).clamp(min=1e-3)
    return tuple(float(v) for v in sample.mean(dim=1)), tuple(float(v) for v in std)


def _synthetic(src: Source, task: Task) -> Data:
    """Class k's samples are a fixed per-channel offset plus noise (learnable, shift and
    flip invariant); a segmentation map is blocks of random classes, each painted with
    its class's offset."""
    import torch

    n_train = src.size or 1024
    n_val = max(1, n_train // 4)
    g = torch.Generator().manual_seed(20240611)
    k, shape = task.classes, task.input
    view = (k, shape[0], *([1] * (len(shape) - 1))) if len(shape) > 1 else (k, *shape)
    offsets = torch.randn(view, generator=g)  # (K, C, 1, 1) for an image, (K, D) for a vector

    def make(n: int) -> TensorSet:
        noise = torch.randn((n, *shape), generator=g)
        if task.kind == "classification":
            y = torch.randint(0, k, (n,), generator=g)
            x = offsets[y] + 0.8 * noise
        else:
            spatial = shape[1:]
            coarse = tuple(max(1, s // 8) for s in spatial)
            y = torch.randint(0, k, (n, *coarse), generator=g)
            for d, (s, cs) in enumerate(zip(spatial, coarse, strict=True)):
                reps = -(-s // cs)
                y = y.repeat_interleave(reps, dim=d + 1).narrow(d + 1, 0, s)
            x = _paint(offsets, y) + 0.5 * noise
        return TensorSet((128 + 40 * x).round().clamp(0, 255).to(torch.uint8), y)

    train, val = make(n_train), make(n_val)
    mean, std = _stats(train.x)
    return Data(src, train, val, mean, std, [str(i) for i in range(k)])


def _paint(offsets: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``offsets`` (K, C, 1, ...) indexed by a label map ``y`` (N, *S): (N, C, *S)."""
    flat = offsets.reshape(offsets.shape[0], offsets.shape[1])  # (K, C)
    return flat[y].movedim(-1, 1)


def _cells(src: Source, task: Task) -> Data:
    import torch

    from .cells import cell_sample

    if task.kind != "segmentation" or len(task.input) != 3:
        raise DataError(f"'cells' is a segmentation set of images, but the spec maps {_fmt(task.input)} to "
                        f"{_fmt(task.output)}", expected="an image input (C, H, W) and an output (2, H, W)")
    if task.classes != 2:
        raise DataError(f"'cells' has 2 classes (background, cell), but the spec's output has {task.classes}",
                        fix="compile the spec with 2 output channels, e.g. -p num_classes=2")
    n_train = src.size or 512
    n_val = max(1, n_train // 8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of small ops: threads only add overhead
    try:
        sets = []
        for split, n in (("train", n_train), ("val", n_val)):
            pairs = [cell_sample(0, split, i, task.input) for i in range(n)]
            sets.append(TensorSet(torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])))
    finally:
        torch.set_num_threads(threads)
    mean, std = _stats(sets[0].x)
    return Data(src, sets[0], sets[1], mean, std, ["background", "cell"])


# -- CIFAR ----------------------------------------------------------------------------------

_CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", "labels", "label_names", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names", 100),
}


class _CifarUnpickler(pickle.Unpickler):
    """Reads the CIFAR pickles and nothing else: dicts, lists, strings and numpy arrays.

    A pickle can run any code it names; this one may only name numpy's array
    reconstruction, so a hostile file is refused instead of executed.
    """

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"the pickle names {module}.{name}, which a CIFAR file never does")
        return super().find_class(module, name)


def _read_cifar_file(path: Path, labels_key: str, expected: str) -> tuple[Any, list[int]]:
    try:
        with path.open("rb") as f:
            entry = _CifarUnpickler(f, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise DataError(f"'{path}' is not a CIFAR python batch: {e}", expected=expected) from None
    if not isinstance(entry, dict) or "data" not in entry or labels_key not in entry:
        raise DataError(f"'{path}' is not a CIFAR python batch: it has no 'data' and '{labels_key}'",
                        expected=expected)
    return entry["data"], list(entry[labels_key])


def _cifar(src: Source, task: Task) -> Data:
    import numpy as np
    import torch

    assert src.path is not None
    folder, train_files, test_files, meta_file, labels_key, names_key, k = _CIFAR_LAYOUT[src.kind]
    expected = (f"the {src.kind} python version: {folder}/ with " + ", ".join(train_files + test_files)
                + f" and {meta_file} (from https://www.cs.toronto.edu/~kriz/cifar.html, unpacked)")
    root = src.path / folder if (src.path / folder).is_dir() else src.path
    if not root.is_dir():
        raise DataError(f"{src.kind} folder '{src.path}' does not exist", expected=expected)
    missing = [f for f in train_files + test_files if not (root / f).is_file()]
    if missing:
        raise DataError(f"{src.kind} folder '{root}' lacks {', '.join(missing)}", expected=expected)
    if task.input != (3, 32, 32):
        raise DataError(f"{src.kind} images are 3x32x32, but the spec's input is {_fmt(task.input)}",
                        fix="train a spec with inputs: {x: [3, 32, 32]}")
    if task.kind != "classification" or task.classes != k:
        raise DataError(f"{src.kind} has {k} classes, but the spec's output is {_fmt(task.output)}",
                        fix=f"compile the spec with {k} outputs, e.g. -p num_classes={k}")

    def load(files: list[str]) -> TensorSet:
        xs, ys = [], []
        for name in files:
            data, labels = _read_cifar_file(root / name, labels_key, expected)
            arr = np.asarray(data)
            if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != 3072 or len(labels) != arr.shape[0]:
                raise DataError(f"'{root / name}' holds data of shape {_fmt(arr.shape)} ({arr.dtype}) and "
                                f"{len(labels)} labels", expected="uint8 data of shape Nx3072 and N labels")
            if any(not isinstance(v, int) or not 0 <= v < k for v in labels):
                raise DataError(f"'{root / name}' has labels outside 0..{k - 1}", expected=expected)
            xs.append(torch.from_numpy(arr.reshape(-1, 3, 32, 32).copy()))
            ys.append(torch.tensor(labels, dtype=torch.long))
        return TensorSet(torch.cat(xs), torch.cat(ys))

    names: list[str] = [str(i) for i in range(k)]
    if (root / meta_file).is_file():
        meta = _read_cifar_file_meta(root / meta_file, names_key)
        names = meta or names
    mean, std = CIFAR_STATS[src.kind]
    return Data(src, load(train_files), load(test_files), mean, std, names)


def _read_cifar_file_meta(path: Path, names_key: str) -> list[str] | None:
    try:
        with path.open("rb") as f:
            meta = _CifarUnpickler(f, encoding="latin1").load()
    except Exception:  # noqa: BLE001 - the class names are only for display
        return None
    names = meta.get(names_key) if isinstance(meta, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else None


# -- folders --------------------------------------------------------------------------------

def _splits(root: Path) -> tuple[Path, Path | None]:
    """``root/train`` and ``root/val`` when ``root/train`` exists, else ``root`` alone."""
    if (root / "train").is_dir():
        return root / "train", (root / "val") if (root / "val").is_dir() else None
    return root, None


def _pil_mode(task: Task, kind: str) -> str:
    if len(task.input) != 3 or task.input[0] not in (1, 3):
        raise DataError(f"{kind} gives images of 1 or 3 channels, but the spec's input is {_fmt(task.input)}",
                        expected="an input (1, H, W) or (3, H, W)")
    return "L" if task.input[0] == 1 else "RGB"


class FolderSet:
    """Image files and their targets, decoded on demand to ``(C, H, W)`` uint8."""

    def __init__(self, items: list[tuple[Path, Any]], mode: str, size: tuple[int, int], masks: bool,
                 classes: int) -> None:
        self.items, self.mode, self.size, self.masks, self.classes = items, mode, size, masks, classes

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        import torch
        from PIL import Image

        path, target = self.items[i]
        image = _open_image(path).convert(self.mode)
        if not self.masks:
            if image.size != (self.size[1], self.size[0]):
                image = image.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
            return _to_tensor(image), torch.tensor(target)
        if image.size != (self.size[1], self.size[0]):
            raise DataError(f"image '{path}' is {image.size[1]}x{image.size[0]}, but the spec's input is "
                            f"{self.size[0]}x{self.size[1]}", fix="crop or resize the images and masks to the "
                            "spec's size, or give the spec that size")
        mask = _open_image(target)
        if mask.size != image.size:
            raise DataError(f"mask '{target}' is {mask.size[1]}x{mask.size[0]}, its image '{path}' "
                            f"{image.size[1]}x{image.size[0]}", expected="a mask the size of its image")
        if mask.mode not in ("L", "P", "1", "I", "I;16"):
            raise DataError(f"mask '{target}' is a {mask.mode} image", expected="a one-channel image of class "
                            "indices (mode L or P; 255 is ignored)")
        y = torch.from_numpy(_array(mask)).long()
        y[y == 255] = IGNORE
        bad = y[(y != IGNORE) & ((y < 0) | (y >= self.classes))]
        if bad.numel():
            raise DataError(f"mask '{target}' has the class {int(bad[0])}, but the spec's output has "
                            f"{self.classes} classes", expected=f"class indices 0..{self.classes - 1} (255: ignored)")
        return _to_tensor(image), y


def _open_image(path: Path) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"cannot read image '{path}': {e}", expected="an image file (PNG, JPEG, ...)") from None


def _array(image: Any) -> Any:
    import numpy as np

    return np.array(image, copy=True)


def _to_tensor(image: Any) -> torch.Tensor:
    import torch

    arr = torch.from_numpy(_array(image))  # (H, W) or (H, W, C)
    return arr[None] if arr.dim() == 2 else arr.permute(2, 0, 1).contiguous()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _folder_stats(ds: FolderSet) -> tuple[tuple[float, ...], tuple[float, ...]]:
    import torch

    n = len(ds)
    picks = sorted({int(i * n / min(n, 64)) for i in range(min(n, 64))})
    return _stats(torch.stack([ds[i][0] for i in picks]))


def _imagefolder(src: Source, task: Task) -> Data:
    assert src.path is not None
    expected = "imagefolder:DIR with one subfolder of images per class (or DIR/train/<class>/ and DIR/val/<class>/)"
    if not src.path.is_dir():
        raise DataError(f"image folder '{src.path}' does not exist", expected=expected)
    if task.kind != "classification":
        raise DataError(f"imagefolder is a classification set, but the spec's output is {_fmt(task.output)}",
                        expected="an output (K,) of class scores")
    mode = _pil_mode(task, "imagefolder")
    train_dir, val_dir = _splits(src.path)

    def scan(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        items = [(f, i) for i, c in enumerate(classes) for f in _files(folder / c)]
        if not classes or not items:
            raise DataError(f"image folder '{folder}' has no class folders with images in them", expected=expected)
        return classes, items

    classes, items = scan(train_dir)
    if len(classes) != task.classes:
        raise DataError(f"image folder '{train_dir}' has {len(classes)} classes, but the spec's output is "
                        f"{_fmt(task.output)}", fix=f"compile the spec with {len(classes)} outputs, "
                        f"e.g. -p num_classes={len(classes)}")
    size = (task.input[1], task.input[2])
    train = FolderSet(items, mode, size, False, task.classes)
    val = None
    if val_dir is not None:
        val_classes, val_items = scan(val_dir)
        if val_classes != classes:
            raise DataError(f"'{val_dir}' has the classes {', '.join(val_classes)}, '{train_dir}' "
                            f"{', '.join(classes)}", expected="the same class folders in train/ and val/")
        val = FolderSet(val_items, mode, size, False, task.classes)
    mean, std = _folder_stats(train)
    return Data(src, train, val, mean, std, classes)


def _segfolder(src: Source, task: Task) -> Data:
    assert src.path is not None
    expected = "segfolder:DIR with DIR/images/ and DIR/masks/ of matching names (or DIR/train/ and DIR/val/ so)"
    if not src.path.is_dir():
        raise DataError(f"segmentation folder '{src.path}' does not exist", expected=expected)
    if task.kind != "segmentation":
        raise DataError(f"segfolder is a segmentation set, but the spec's output is {_fmt(task.output)}",
                        expected=f"an output (K, {_fmt(task.input[1:])}) of class score maps")
    mode = _pil_mode(task, "segfolder")
    train_dir, val_dir = _splits(src.path)

    def scan(folder: Path) -> FolderSet:
        images, masks = folder / "images", folder / "masks"
        for d in (images, masks):
            if not d.is_dir():
                raise DataError(f"segmentation folder '{folder}' has no {d.name}/ folder", expected=expected)
        by_stem = {p.stem: p for p in _files(masks)}
        files = _files(images)
        if not files:
            raise DataError(f"'{images}' holds no images", expected=expected)
        lost = [p.name for p in files if p.stem not in by_stem]
        if lost:
            raise DataError(f"{len(lost)} image(s) in '{images}' have no mask in '{masks}', e.g. {lost[0]}",
                            expected="a mask of the same name (any image suffix) for every image")
        ds = FolderSet([(p, by_stem[p.stem]) for p in files], mode, (task.input[1], task.input[2]), True,
                       task.classes)
        ds[0]  # the first sample's errors (size, mode, classes) now, not in a worker
        return ds

    train = scan(train_dir)
    val = scan(val_dir) if val_dir is not None else None
    mean, std = _folder_stats(train)
    return Data(src, train, val, mean, std, [str(i) for i in range(task.classes)])


# -- augmentation and loading ---------------------------------------------------------------

class Augmented:
    """A random crop (zero padding ``pad``) and a horizontal flip of image samples, the
    mask moved with its image. The draw depends only on ``(seed, epoch, index)``: the
    same on every rank and after a resume, whatever the batch or worker."""

    def __init__(self, base: Any, seed: int, pad: int = 4) -> None:
        self.base, self.seed, self.pad, self.epoch = base, seed, pad, 0

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any]:
        import torch.nn.functional as F

        x, y = self.base[i]
        if x.dim() != 3:
            return x, y
        rng = random.Random(f"augment/{self.seed}/{self.epoch}/{i}")
        is_map = hasattr(y, "dim") and y.dim() == 2
        if rng.random() < 0.5:
            x = x.flip(-1)
            y = y.flip(-1) if is_map else y
        p = self.pad
        h, w = x.shape[-2:]
        dy, dx = rng.randint(0, 2 * p), rng.randint(0, 2 * p)
        x = F.pad(x, (p, p, p, p))[:, dy:dy + h, dx:dx + w]
        if is_map:
            y = F.pad(y, (p, p, p, p), value=IGNORE)[dy:dy + h, dx:dx + w]
        return x, y


class SkipSampler:
    """The indices of a DistributedSampler, without the first ``skip`` (a resumed epoch)."""

    def __init__(self, base: Any, skip: int = 0) -> None:
        self.base, self.skip = base, skip

    def __iter__(self) -> Any:
        return iter(list(self.base)[self.skip:])

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)
