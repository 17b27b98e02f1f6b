"""Checks the loaders share: label arrays to tensors, and exceptions to one-line messages."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError


def one_line(exc: BaseException) -> str:
    """An exception as one line of text (UserErrors are printed as a single line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def as_labels(values, what: str) -> torch.Tensor:
    """A 1-D array of non-negative integers -> int64 tensor."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged or foreign objects
        raise UserError(f"{what}: labels must be a 1-D array of non-negative integers ({one_line(exc)})") from None
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or (arr.size and arr.min() < 0):
        raise UserError(f"{what}: labels must be a 1-D array of non-negative integers, "
                        f"got shape {arr.shape} of {arr.dtype}")
    return torch.from_numpy(arr.astype(np.int64))
