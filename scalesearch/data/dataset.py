"""ImageData: the splits every loader produces, and the fingerprint that proves which data a result used."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import torch


@dataclass
class ImageData:
    """Train/validation (and optional test) splits as uint8 NCHW tensors (on the CPU, or on the training
    device where the embedded data was drawn there).

    Treat the tensors as read-only once built: the fingerprint is computed on first read and cached.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    num_classes: int
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)  # unreadable images left out (skip_bad_images)
    subset: dict = field(default_factory=dict)  # split -> {asked, used, of}: what --train-images/--val-images drew

    def subsets(self, *, train: int | None, val: int | None, seed: int) -> "ImageData":
        """The training and validation splits cut to `train` and `val` images (None: all), class-stratified and
        drawn from `seed` (stratified_subset); the test split is kept whole. Where a split has no more images
        than asked, all are used, and `subset` says so (used == of < asked)."""
        from dataclasses import replace

        from .split import stratified_subset

        if train is None and val is None:
            return self
        splits, subset = {}, dict(self.subset)
        for name, count in (("train", train), ("val", val)):
            images, labels = getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")
            if count is None:
                continue
            keep = stratified_subset(labels.cpu(), count, seed).to(labels.device)
            splits[f"{name}_images"], splits[f"{name}_labels"] = images[keep], labels[keep]
            subset[name] = {"asked": count, "used": len(keep), "of": len(labels)}
        return replace(self, **splits, subset=subset)

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    @cached_property
    def fingerprint(self) -> str:
        """Short SHA-256 over every split's pixels and labels: proves which data a result came from.

        Cached because it reads every byte (gigabytes on a large preset) and is asked for at each write.
        """
        h = hashlib.sha256()
        for t in (self.train_images, self.train_labels, self.val_images, self.val_labels,
                  self.test_images, self.test_labels):
            if t is None:
                continue
            if t.device.type == "cpu":
                h.update(t.contiguous().numpy())  # the buffer itself: no copy into bytes
            else:
                for chunk in t.reshape(-1).split(1 << 26):  # 64 MiB at a time to the host
                    h.update(chunk.cpu().numpy())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "name": self.name, "num_classes": self.num_classes, "image_size": self.image_size,
            "train": len(self.train_labels), "val": len(self.val_labels),
            "test": 0 if self.test_labels is None else len(self.test_labels), "fingerprint": self.fingerprint,
            "skipped_files": len(self.skipped_files), **({"subset": self.subset} if self.subset else {}),
        }
