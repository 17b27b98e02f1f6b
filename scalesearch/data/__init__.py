"""Data sets as uint8 tensors: the embedded synthetic default and the user's own files.

Everything is loaded once into memory as uint8 [N, 3, H, W]; the trainer moves
it to the device and does resizing, cropping and flipping there (a 2-core host
cannot feed a DataLoader fast enough for a GPU, and a proxy trains many times).

Modules: dataset (ImageData), synthetic (the default), images (image files and
folders), npz, cifar, split (the validation split), augment (on-device pipeline).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from .augment import augment_batch, resize_on_device
from .cifar import load_cifar
from .dataset import ImageData
from .hf import is_hf_folder, load_hf_folder
from .images import ALPHA_BACKGROUND, IMAGE_SUFFIXES, load_image_folder, read_image
from .npz import load_npz
from .split import stratified_split
from .synthetic import SYNTHETIC_CLASSES, make_synthetic, synthetic_data

__all__ = [
    "ALPHA_BACKGROUND", "IMAGE_SUFFIXES", "SYNTHETIC_CLASSES", "ImageData", "augment_batch", "load_cifar",
    "load_data", "load_image_folder", "load_npz", "make_synthetic", "read_image", "resize_on_device",
    "stratified_split", "synthetic_data",
]


def load_data(
    source: str | Path = "synthetic",
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    image_size: int = 64,
    synthetic_sizes: tuple[int, int, int] = (6000, 1000, 1000),
    synthetic_image_size: int | None = None,
    synthetic_base_resolution: int = 42,
    device: torch.device | str = "cpu",
    skip_bad_images: bool = False,
    image_column: str | None = None,
    label_column: str | None = None,
) -> ImageData:
    """`synthetic`, or a path whose format is detected: CIFAR folder, Hugging Face dataset folder (save_to_disk or
    parquet; `image_column`/`label_column` where its columns are named otherwise), ImageFolder tree, or .npz file.

    The validation split is held out of the training data, stratified by class (see split.py).
    skip_bad_images: leave unreadable image files out (listed in ImageData.skipped_files) instead of
    stopping at the first one; applies to image folders (an .npz or CIFAR file is one file).
    image_size: the size image folders are decoded at; synthetic_image_size: the size the embedded data is
    drawn at (default image_size), for a proxy of synthetic_base_resolution px (its cues follow that size).
    device: where the embedded data is drawn (files are decoded on the host and moved per candidate).
    """
    hf = str(source) != "synthetic" and is_hf_folder(Path(source))
    if (image_column is not None or label_column is not None) and not hf:
        raise UserError("--image-column and --label-column name a Hugging Face dataset's columns; --data "
                        f"{source} is not one")
    if str(source) == "synthetic":
        n_train, n_val, n_test = synthetic_sizes
        return synthetic_data(n_train, n_val, n_test, synthetic_image_size or image_size, seed,
                              base_resolution=synthetic_base_resolution, device=device)
    path = Path(source)
    if not path.exists():
        raise UserError(f"--data {source}: no such file or directory (or write 'synthetic')")
    classes: list[str] = []
    skipped: list[str] = []
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise UserError(f"--data {source}: a file must be an .npz with images and labels")
        name, (x, y, tx, ty) = path.stem, load_npz(path)
        num_classes = int(y.max()) + 1
    else:
        cifar = load_cifar(path)
        if cifar is not None:
            name, (x, y), (tx, ty), num_classes = cifar
        elif hf:
            classes, (x, y), test, skipped = load_hf_folder(path, image_size, image_column=image_column,
                                                            label_column=label_column,
                                                            skip_bad_images=skip_bad_images)
            tx, ty = test if test is not None else (None, None)
            name, num_classes = path.name, len(classes)
        else:
            folder = load_image_folder(path, image_size, skip_bad_images=skip_bad_images)
            if folder is None:
                raise UserError(f"--data {source}: found no CIFAR files and no class folders with images")
            classes, (x, y), test, skipped = folder
            tx, ty = test if test is not None else (None, None)
            name, num_classes = path.name, len(classes)
    _check_labels(path, y, ty, num_classes)
    train, val = stratified_split(y, val_fraction, seed)
    if len(val) == 0:
        raise UserError(f"--data {source}: too few images to hold out a validation split "
                        "(a class needs at least 2 images to give one to validation)")
    return ImageData(name, x[train], y[train], x[val], y[val], num_classes, tx, ty, classes, skipped)


def _check_labels(path: Path, y: torch.Tensor, ty: torch.Tensor | None, num_classes: int) -> None:
    """What must hold between labels and classes, whatever the format."""
    if len(y) == 0:
        raise UserError(f"{path}: the data set is empty")
    present = torch.unique(y).tolist()
    if len(present) < 2:
        raise UserError(f"{path}: every training label is {present[0]}; needs at least two classes")
    for split, labels in (("training", y), ("test", ty)):
        if labels is not None and len(labels) and int(labels.max()) >= num_classes:
            raise UserError(f"{path}: a {split} label is {int(labels.max())}, but there are {num_classes} "
                            f"classes (labels 0-{num_classes - 1})")
