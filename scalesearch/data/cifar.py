"""CIFAR-10/100 from their distributed files: the binary version or the python (pickle) version."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .checks import as_labels, one_line

CIFAR_IMAGE_BYTES = 3 * 32 * 32


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for something outside the allow-list."""


class _AllowListUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR's python-version batches contain: dicts, lists, bytes and numpy arrays."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise _RefusedGlobal(f"refusing to unpickle {module}.{name}: not CIFAR data")


def _read_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _AllowListUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as exc:
        raise UserError(f"{path}: unsafe CIFAR pickle ({exc})") from None
    except Exception as exc:  # truncated or foreign files
        raise UserError(f"{path}: cannot read as a CIFAR python batch ({one_line(exc)})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: a CIFAR python batch is a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_python_batch(path: Path):
    d = _read_cifar_pickle(path)
    label_key = "fine_labels" if "fine_labels" in d else "labels"
    if "data" not in d or label_key not in d:
        raise UserError(f"{path}: CIFAR batch without data/labels")
    try:
        data = np.asarray(d["data"], dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: CIFAR 'data' is not an array of bytes ({one_line(exc)})") from None
    if data.size == 0 or data.size % CIFAR_IMAGE_BYTES:
        raise UserError(f"{path}: CIFAR 'data' holds {data.size} bytes, not a whole number of "
                        f"32x32 RGB images ({CIFAR_IMAGE_BYTES} bytes each): truncated?")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    labels = as_labels(d[label_key], str(path))
    if len(labels) != len(images):
        raise UserError(f"{path}: {len(images)} CIFAR images but {len(labels)} labels: truncated?")
    return images, labels


def _cifar_binary(path: Path, label_bytes: int):
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + CIFAR_IMAGE_BYTES
    if raw.size == 0 or raw.size % record:
        raise UserError(f"{path}: size {raw.size} is not a whole number of CIFAR records ({record} bytes)")
    raw = raw.reshape(-1, record)
    # CIFAR-100 records hold (coarse, fine) labels: the fine label is the last label byte.
    labels = torch.from_numpy(raw[:, label_bytes - 1].astype(np.int64))
    return torch.from_numpy(raw[:, label_bytes:].reshape(-1, 3, 32, 32).copy()), labels


def _cat(parts):
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def load_cifar(root: Path):
    """(name, train split, test split or (None, None), number of classes), or None if `root` holds no CIFAR files."""
    bins10 = sorted(root.glob("data_batch_*.bin"))
    if bins10:
        train = _cat([_cifar_binary(p, 1) for p in bins10])
        test = _cifar_binary(root / "test_batch.bin", 1) if (root / "test_batch.bin").exists() else (None, None)
        return "cifar10", train, test, 10
    if (root / "train.bin").exists():
        test = _cifar_binary(root / "test.bin", 2) if (root / "test.bin").exists() else (None, None)
        return "cifar100", _cifar_binary(root / "train.bin", 2), test, 100
    py10 = sorted(p for p in root.glob("data_batch_*") if p.suffix == "")
    if py10:
        train = _cat([_cifar_python_batch(p) for p in py10])
        test = _cifar_python_batch(root / "test_batch") if (root / "test_batch").exists() else (None, None)
        return "cifar10", train, test, 10
    if (root / "train").is_file():
        test = _cifar_python_batch(root / "test") if (root / "test").is_file() else (None, None)
        return "cifar100", _cifar_python_batch(root / "train"), test, 100
    return None
