"""The validation split: held out of the training data, stratified by class, seeded."""

from __future__ import annotations

import torch


def val_count(class_size: int, val_fraction: float) -> int:
    """How many of one class's images go to validation.

    round(val_fraction * size), but at least 1 so every class is validated, and at most size - 1 so
    every class is still trained on; a class with a single image stays in train.
    """
    if class_size < 2:
        return 0
    return min(class_size - 1, max(1, round(val_fraction * class_size)))


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, val indices): disjoint, together exactly range(len(labels)), each in a seeded random order.

    Each class gives val_count() of its images to validation, so an imbalanced data set is
    validated in the same proportions it is trained on.
    """
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    is_val = torch.zeros(len(labels), dtype=torch.bool)  # indexed by position in `order`
    for c in torch.unique(labels).tolist():
        positions = (shuffled == c).nonzero().flatten()  # this class, in the seeded random order
        is_val[positions[:val_count(len(positions), val_fraction)]] = True
    return order[~is_val], order[is_val]


def _largest_remainder(weights: torch.Tensor, total: int) -> torch.Tensor:
    """`total` shared in proportion to `weights` (whole numbers: floors, then one more for the largest
    remainders, ties to the larger weight, then the lower index)."""
    exact = weights.double() * total / max(1, int(weights.sum()))
    share = exact.floor().long()
    remainder = (exact - share).tolist()
    extra = sorted(range(len(weights)), key=lambda i: (-remainder[i], -int(weights[i]), i))[:total - int(share.sum())]
    share[extra] += 1
    return share


def stratified_subset(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """Indices of `count` of `labels` (all of them where there are no more), each class in proportion to its
    share (every class keeps at least one image where `count` allows), drawn in a seeded random order: the same
    for the same labels, count and seed, in every worker and on resume."""
    if count >= len(labels):
        return torch.arange(len(labels))
    classes, sizes = torch.unique(labels, return_counts=True)
    if count >= len(classes):  # one each, the rest in proportion to what each class has beyond it
        take = 1 + _largest_remainder(sizes - 1, count - len(classes))
    else:
        take = _largest_remainder(sizes, count)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    chosen = torch.zeros(len(labels), dtype=torch.bool)  # indexed by position in `order`
    for c, k in zip(classes.tolist(), take.tolist()):
        chosen[(shuffled == c).nonzero().flatten()[:k]] = True
    return order[chosen]
