"""Cell-like images with masks, generated procedurally: a small segmentation task.

Each image holds round cells of varied size that touch and slightly overlap, each
with its own brightness and a darker rim, under uneven illumination (a tilted plane
and a broad bump of light), blurred a little and covered in noise. The mask is 1 on a
cell and 0 on the background. A sample depends only on ``(seed, split, index)``: the
same data on every machine and in every process.

>>> image, mask = cell_sample(0, "train", 0, (1, 64, 64))
>>> tuple(image.shape), image.dtype, tuple(mask.shape), int(mask.max())
((1, 64, 64), torch.uint8, (64, 64), 1)
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def cell_sample(seed: int, split: str, index: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """One image ``(C, H, W)`` uint8 and its mask ``(H, W)`` int64 (0 background, 1 cell)."""
    import torch
    import torch.nn.functional as F

    c, h, w = shape
    rng = random.Random(f"cells/{seed}/{split}/{index}")
    g = torch.Generator().manual_seed(rng.getrandbits(63))
    r_mean = max(3.0, min(h, w) / 12)
    yy = torch.arange(h, dtype=torch.float32)[:, None]  # (H, 1)
    xx = torch.arange(w, dtype=torch.float32)[None, :]  # (1, W)
    target = int(h * w * 0.45 / (math.pi * r_mean ** 2)) + rng.randint(-2, 2)
    cells: list[tuple[float, float, float]] = []
    for _ in range(max(1, target) * 20):
        if len(cells) >= max(1, target):
            break
        r = r_mean * rng.uniform(0.6, 1.4)
        cy, cx = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
        # Touching is allowed, swallowing is not: centres at least 0.8 of the two radii apart.
        if all(math.hypot(cy - y, cx - x) >= 0.8 * (r + q) for y, x, q in cells):
            cells.append((cy, cx, r))
    image = torch.full((h, w), rng.uniform(0.08, 0.22))  # (H, W) background
    mask = torch.zeros((h, w), dtype=torch.bool)
    for cy, cx, r in cells:
        dist = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)  # (H, W)
        theta = torch.atan2(yy - cy, xx - cx)
        k, phase, amp = rng.randint(2, 4), rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 0.12)
        edge = r * (1 + amp * torch.cos(k * theta + phase))  # a wobbly outline
        inside = dist <= edge
        rel = (dist / edge).clamp(max=1)
        brightness = rng.uniform(0.3, 0.9) * (1 - 0.4 * rel ** 2)  # a darker rim
        image = torch.where(inside, torch.maximum(image, brightness), image)
        mask |= inside
    ty, tx = rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)
    by, bx, bs = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.3, 0.7) * max(h, w)
    light = 0.75 + ty * (yy / h - 0.5) + tx * (xx / w - 0.5) \
        + 0.5 * torch.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * bs ** 2))  # (H, W)
    image = F.avg_pool2d((image * light)[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
    channels = []
    for _ in range(c):
        tint = rng.uniform(0.85, 1.15)
        noise = torch.randn((h, w), generator=g) * rng.uniform(0.04, 0.1)
        channels.append(image * tint + noise)
    out = (torch.stack(channels) * 255).round().clamp(0, 255).to(torch.uint8)  # (C, H, W)
    return out, mask.long()
