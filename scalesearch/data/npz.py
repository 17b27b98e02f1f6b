"""A user's .npz: `images` and `labels` (or x/y, ...), optionally `test_images` and `test_labels`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .checks import as_labels, one_line

TRAIN_IMAGE_KEYS = ("images", "x", "x_train", "data")
TRAIN_LABEL_KEYS = ("labels", "y", "y_train", "targets")
TEST_IMAGE_KEYS = ("test_images", "x_test")
TEST_LABEL_KEYS = ("test_labels", "y_test")


def load_npz(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(train images, train labels, test images or None, test labels or None) as uint8 N,3,H,W and int64.

    Label ranges are checked by load_data, which does so for every format.
    """
    try:
        archive = np.load(path, allow_pickle=False)  # never unpickle a user's file
    except Exception as exc:  # not a zip, a truncated zip, pickled data, ...
        raise UserError(f"{path}: not a readable .npz file ({one_line(exc)})") from None
    if not hasattr(archive, "files"):  # np.load also reads a bare .npy array
        raise UserError(f"{path}: holds a single array, not an .npz archive of images and labels; "
                        "write it with np.savez(path, images=..., labels=...)")
    with archive:  # closes the file
        keys = set(archive.files)
        img_key = next((k for k in TRAIN_IMAGE_KEYS if k in keys), None)
        lab_key = next((k for k in TRAIN_LABEL_KEYS if k in keys), None)
        if img_key is None or lab_key is None:
            raise UserError(f"{path}: expected arrays 'images' and 'labels' (or x/y); found {sorted(keys)}")
        x, y = _read_pair(archive, path, img_key, lab_key)
        test_img_key = next((k for k in TEST_IMAGE_KEYS if k in keys), None)
        test_lab_key = next((k for k in TEST_LABEL_KEYS if k in keys), None)
        if (test_img_key is None) != (test_lab_key is None):
            given = test_img_key or test_lab_key
            raise UserError(f"{path}: has '{given}' but not its partner; test data needs both "
                            "'test_images' and 'test_labels'")
        if test_img_key is None:
            return _rgb(x), y, None, None
        tx, ty = _read_pair(archive, path, test_img_key, test_lab_key)
    if tx.shape[1:] != x.shape[1:]:  # compared before grayscale is expanded: gray vs colour is a mix-up too
        raise UserError(f"{path}: test images are {_chw(tx)} but training images are {_chw(x)} "
                        "(channels x height x width); they must match")
    return _rgb(x), y, _rgb(tx), ty


def _read_pair(archive, path: Path, img_key: str, lab_key: str) -> tuple[np.ndarray, torch.Tensor]:
    images = _as_nchw_uint8(_read_array(archive, path, img_key), f"{path}: '{img_key}'")
    labels = as_labels(_read_array(archive, path, lab_key), f"{path}: '{lab_key}'")
    if len(images) != len(labels):
        raise UserError(f"{path}: {len(images)} images in '{img_key}' but {len(labels)} labels in '{lab_key}'")
    return images, labels


def _read_array(archive, path: Path, key: str) -> np.ndarray:
    # Members are decompressed on access: a damaged member, or an object array (which would need
    # unpickling), fails here rather than in np.load.
    try:
        return archive[key]
    except Exception as exc:
        raise UserError(f"{path}: cannot read array '{key}' ({one_line(exc)})") from None


def _as_nchw_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    """Square uint8 images shaped N,H,W,C / N,C,H,W (C = 1 or 3) / N,H,W -> uint8 N,C,H,W.

    Other dtypes are refused rather than cast: whether floats mean 0-1 or 0-255, and how 16-bit
    values map to 8 bits, is the user's call, and a wrong guess trains silently on garbage.
    """
    if arr.dtype != np.uint8:
        raise UserError(f"{what}: images must be uint8 (0-255), got {arr.dtype}; convert them before saving")
    if arr.ndim == 3:  # N, H, W grayscale
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise UserError(f"{what}: expected images shaped N,H,W,3 or N,3,H,W (or N,H,W grayscale); got {arr.shape}")
    if len(arr) == 0:
        raise UserError(f"{what}: holds no images (shape {arr.shape})")
    if arr.shape[2] != arr.shape[3]:
        raise UserError(f"{what}: images must be square, got height {arr.shape[2]} x width {arr.shape[3]}; "
                        "crop or resize them")
    return arr


def _rgb(images: np.ndarray) -> torch.Tensor:
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    return torch.from_numpy(np.ascontiguousarray(images))


def _chw(images: np.ndarray) -> str:
    return "x".join(map(str, images.shape[1:]))
