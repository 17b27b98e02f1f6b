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
