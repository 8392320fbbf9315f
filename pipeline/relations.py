"""Inter-pixel relations of IRN (Ahn et al., CVPR 2019): from a class-boundary map to
affinities between nearby pixels, the relation labels that train it, and the random
walk that spreads class maps over those affinities.

A pair is a pixel p and p + d for a direction d within `radius` (one half-plane of
directions: each unordered pair once). Its affinity is 1 minus the strongest boundary
value on the straight path between them, so two pixels are related unless a boundary
separates them.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F

from pipeline.datasets.masks import IGNORE_INDEX


@functools.lru_cache(maxsize=8)
def pair_paths(radius: int) -> tuple[tuple[tuple[int, int], tuple[tuple[int, int], ...]], ...]:
    """((direction (dy, dx), path cells from the source to the direction, both included)),
    for every direction with dy > 0, or dy = 0 and dx > 0, shorter than `radius`."""
    directions = [(0, dx) for dx in range(1, radius)]
    directions += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius)
                   if dy * dy + dx * dx < radius * radius]
    paths = []
    for dy, dx in directions:
        length_sq = dy * dy + dx * dx
        cells = [(y, x) for y in range(min(0, dy), max(0, dy) + 1) for x in range(min(0, dx), max(0, dx) + 1)
                 if (dy * x - dx * y) ** 2 < length_sq]  # within distance 1 of the segment's line
        paths.append(((dy, dx), tuple(cells)))
    return tuple(paths)


def _shifted(x: torch.Tensor, dy: int, dx: int, radius: int) -> torch.Tensor:
    """x[..., y + dy, x + dx] for x padded by `radius` on each side (see `_pad`)."""
    h, w = x.shape[-2] - 2 * radius, x.shape[-1] - 2 * radius
    return x[..., radius + dy:radius + dy + h, radius + dx:radius + dx + w]


def _pad(x: torch.Tensor, radius: int, value: float) -> torch.Tensor:
    return F.pad(x, (radius, radius, radius, radius), value=value)


def pair_affinity(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, H, W) boundary probabilities -> (B, D, H, W) affinities of p and p + d.
    Pairs that leave the image get 0 (the path crosses padding of boundary 1)."""
    padded = _pad(boundary, radius, 1.0)
    out = []
    for _, cells in pair_paths(radius):
        strongest = torch.stack([_shifted(padded, y, x, radius) for y, x in cells]).amax(0)
        out.append(1.0 - strongest)
    return torch.stack(out, 1)


def relation_labels(labels: torch.Tensor, radius: int) -> dict[str, torch.Tensor]:
    """(B, H, W) class indices (255 uncertain) -> (B, D, H, W) boolean pair masks:
    both background, both the same foreground class, different classes. Pairs with an
    uncertain pixel, or leaving the image, are in none."""
    padded = _pad(labels, radius, IGNORE_INDEX)
    src = labels.unsqueeze(1)
    dst = torch.stack([_shifted(padded, dy, dx, radius) for (dy, dx), _ in pair_paths(radius)], 1)
    known = (src != IGNORE_INDEX) & (dst != IGNORE_INDEX)
    same = known & (src == dst)
    return {"bg_pos": same & (src == 0), "fg_pos": same & (src != 0), "neg": known & (src != dst)}


def affinity_loss_terms(affinity: torch.Tensor, pairs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """IRN's loss: -log(a) over related pairs (background and foreground kept apart,
    each a mean over its pairs), -log(1 - a) over unrelated ones."""
    eps = 1e-5
    losses = {"bg_pos": -torch.log(affinity + eps), "fg_pos": -torch.log(affinity + eps),
              "neg": -torch.log(1.0 + eps - affinity)}
    return {name: (losses[name] * mask).sum() / (mask.sum() + eps) for name, mask in pairs.items()}


def transition_matrix(boundary: torch.Tensor, radius: int, beta: float) -> torch.Tensor:
    """(H, W) boundary -> the random walk's (N, N) sparse transition matrix, N = H*W:
    affinities (each pair both ways, 1 for a pixel and itself) raised to `beta`, each
    column divided by its sum, as IRN's `to_transition_matrix`."""
    h, w = boundary.shape
    affinity = pair_affinity(boundary[None].float(), radius)[0] ** beta  # (D, H, W)
    index = torch.arange(h * w, device=boundary.device).view(h, w)
    padded_index = _pad(index[None].float(), radius, -1.0)[0].long()
    rows, cols, values = [index.ravel()], [index.ravel()], [torch.ones(h * w, device=boundary.device)]
    for k, ((dy, dx), _) in enumerate(pair_paths(radius)):
        dst = _shifted(padded_index, dy, dx, radius).ravel()
        keep = dst >= 0
        src, dst, a = index.ravel()[keep], dst[keep], affinity[k].ravel()[keep]
        rows += [src, dst]
        cols += [dst, src]
        values += [a, a]
    rows, cols, values = torch.cat(rows), torch.cat(cols), torch.cat(values)
    column_sums = torch.zeros(h * w, device=boundary.device).index_add_(0, cols, values)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values / column_sums[cols], (h * w, h * w),
                                   check_invariants=False).coalesce()


def random_walk(maps: torch.Tensor, boundary: torch.Tensor, radius: int = 5, beta: float = 10.0,
                exp_times: int = 8) -> torch.Tensor:
    """(K, H, W) class maps, (H, W) boundary -> (K, H, W) maps after 2**exp_times steps.

    IRN: maps * (1 - boundary), then x T^(2^exp_times). IRN squares a dense T exp_times
    times; the same power applied step by step to the K maps through a sparse T costs
    K * nnz per step instead of N^3 per squaring, so it runs at VOC size on a CPU.
    T's columns sum to 1 (a walker's probability is kept), and x T replaces each
    pixel's value by the affinity-weighted mean over its neighbours: a constant map
    stays constant, a map spreads inside a region and not across a boundary."""
    k, h, w = maps.shape
    with warnings.catch_warnings():  # "sparse CSR support is in beta": CSR is 30x faster than COO here
        warnings.simplefilter("ignore", UserWarning)
        transition_t = transition_matrix(boundary, radius, beta).t().coalesce().to_sparse_csr()
    x = (maps * (1.0 - boundary)).reshape(k, h * w).t().contiguous()  # (N, K)
    for _ in range(2 ** exp_times):
        x = transition_t @ x
    return x.t().reshape(k, h, w)



def random_walk_mask(maps: torch.Tensor, classes, boundary: torch.Tensor, radius: int, beta: float,
                     exp_times: int, bg_threshold: float, map_power: float = 1.0) -> torch.Tensor:
    """IRN's pseudo-mask: (n, H, W) class maps at the image's size and the (h, w)
    boundary map at stride 4 -> (H, W) class indices. The maps are raised to `map_power`
    (BAS-Extension: 1.5, which sharpens BAS's flatter maps; IRN: 1), averaged down to the
    boundary's grid, walked, resized back, divided by their common maximum, and a pixel
    whose best value is below `bg_threshold` is background."""
    size = maps.shape[-2:]
    ids = torch.as_tensor([0, *[int(c) for c in classes]], device=maps.device)
    if len(maps) == 0:
        return torch.zeros(size, dtype=torch.long, device=maps.device)
    small = F.interpolate(maps[None].float() ** map_power, size=boundary.shape, mode="area")[0]
    walked = random_walk(small, boundary.float(), radius, beta, exp_times)
    walked = F.interpolate(walked[None], size=size, mode="bilinear", align_corners=False)[0]
    walked = walked / walked.max().clamp_min(1e-12)
    background = torch.full((1, *size), bg_threshold, device=maps.device)
    return ids[torch.cat([background, walked]).argmax(0)]
