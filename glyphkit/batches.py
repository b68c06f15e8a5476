"""uint8 glyphs -> normalised, augmented batches on the device, held as tensors (no per-sample Python).

Images stay uint8 until a batch is on the device; the glyph is padded to the network's input size there, and
augmentation is one `affine_grid` + `grid_sample` over the whole batch (airbench's way), driven by one
generator so runs are reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F


def pad_to_unit_float(images: torch.Tensor, input_size: int) -> torch.Tensor:
    """uint8 [B, 28, 28] -> float [B, 1, S, S] in [0, 1], glyph centred on a zero border."""
    return pad_to_size(images.unsqueeze(1).float().div_(255), input_size)


def pad_to_size(x: torch.Tensor, input_size: int) -> torch.Tensor:
    """[B, 1, 28, 28] -> [B, 1, S, S]: the glyph centred on a zero border (the spec's 32x32 network pads by 2)."""
    pad = input_size - x.shape[-1]
    if pad > 0:
        x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
    return x


def random_affine(
    x: torch.Tensor,
    rotation: float,
    affine_rotation: float,
    translate: float,
    scale: float,
    generator: torch.Generator,
    share: float = 1.0,
) -> torch.Tensor:
    """Random rotation, shift and zoom of a whole batch [B, 1, H, W] (pixel values in [0, 1]) in one grid_sample.

    Matches the spec's RandomRotation(rotation) followed by RandomAffine(affine_rotation, translate): the two
    rotations add up. `share`: the chance that a glyph is warped at all (as torchvision's RandomApply); the others
    come back exactly as they were. Random numbers come from `generator` (on the CPU) so runs are reproducible.
    """
    b = x.shape[0]
    if share < 1:
        chosen = torch.rand(b, generator=generator) < share  # drawn and checked on the CPU: no device sync
        out = x.clone()
        if chosen.any():
            chosen = chosen.to(x.device)
            out[chosen] = random_affine(x[chosen], rotation, affine_rotation, translate, scale, generator)
        return out
    u = lambda: torch.rand(b, generator=generator) * 2 - 1  # noqa: E731 - uniform in [-1, 1]
    angle = torch.deg2rad(u() * rotation + u() * affine_rotation)
    zoom = 1 + u() * scale
    # affine_grid works in normalised coordinates ([-1, 1] spans the image), so a shift of t*W pixels is 2t.
    tx, ty = u() * translate * 2, u() * translate * 2
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    mean: float,
    std: float,
    input_size: int = 32,
    device: torch.device | str = "cpu",
    shuffle: bool = False,
    augment: dict | None = None,
    generator: torch.Generator | None = None,
    channels_last: bool = False,
    max_batches: int | None = None,
    shard: tuple[int, int] = (0, 1),
    shrink_to: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, labels) batches. `augment` holds random_affine's keyword arguments (None: no augmentation).
    `shrink_to`: a side the (padded, augmented) glyphs are shrunk to, for progressive resizing.

    Images stay uint8 until a batch is on the device; augmentation runs on the whole batch at once.
    `shard=(rank, world_size)`: this rank's share of the (shuffled) order, every world_size-th image; all ranks
    draw the same order from equally seeded generators and get equally long shares (the last n % world_size
    images of the order sit this pass out), so every rank runs the same number of steps.
    """
    n = len(labels)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    rank, world_size = shard
    if world_size > 1:
        order = order[: n - n % world_size][rank::world_size]
    for count, start in enumerate(range(0, len(order), batch_size)):
        if max_batches is not None and count >= max_batches:
            return
        idx = order[start : start + batch_size]
        x = images[idx].to(device, non_blocking=True)
        y = labels[idx].to(device, non_blocking=True)
        x = pad_to_unit_float(x, input_size)
        if augment:
            x = random_affine(x, generator=generator, **augment)
        if shrink_to:  # antialiased: each small pixel averages the pixels it covers, as a photo reduction does
            x = F.interpolate(x, size=(shrink_to, shrink_to), mode="bilinear", antialias=True, align_corners=False)
        x = x.sub_(mean).div_(std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


def num_batches(n: int, batch_size: int, max_batches: int | None = None) -> int:
    full = math.ceil(n / batch_size)
    return full if max_batches is None else min(full, max_batches)
